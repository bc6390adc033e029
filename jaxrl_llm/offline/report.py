"""What an offline run reports: the locally measured reference returns, the final score
table printed on stdout and the training/evaluation curves (matplotlib PNG)."""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from jaxrl_llm.offline import datasets


def local_reference(config) -> Optional[Dict[str, float]]:
  """Random/expert returns measured when the Minari dataset was generated locally.

  Read from ``reference_scores.json`` beside the dataset (jaxrl_llm.offline.generation);
  None for other formats or when the file is absent.
  """
  if config.dataset_format != "minari" or not config.dataset_path:
    return None
  path = os.path.join(os.path.dirname(datasets.minari_dataset_dir(
      config.dataset_path, config.get("minari_datasets_path") or None)), "reference_scores.json")
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    ref = json.load(f).get("local_reference", {})
  if "random" in ref and "expert" in ref and ref["expert"] != ref["random"]:
    return {"random": float(ref["random"]), "expert": float(ref["expert"])}
  return None


def score_table(summary: Dict[str, Any]) -> str:
  """The run's evaluations (return ± std, D4RL-normalised and local-reference scores; or
  per-task zero-shot success for TD-JEPA), or its final training metrics when it had no
  environment evaluation."""
  lines = [f"{summary['agent']} | {summary['dataset']} | seed {summary['seed']} | "
           f"{summary['steps']} steps in {summary['wall_s']:.0f} s"]
  if summary["evaluations"] and "eval/success_mean" in summary["evaluations"][0]:
    tasks = sorted(k for k in summary["evaluations"][0] if k.startswith("eval/task"))
    lines.append(f"{'step':>10} {'zero-shot success':>18} " + " ".join(
        f"{k[len('eval/'):-len('_success')]:>7}" for k in tasks))
    for row in summary["evaluations"]:
      lines.append(f"{row['step']:>10d} {row['eval/success_mean']:>18.2f} " + " ".join(
          f"{row[k]:>7.2f}" for k in tasks))
  elif summary["evaluations"]:
    lines.append(f"{'step':>10} {'return':>18} {'D4RL-normalized score':>22}")
    local = "eval/local_normalized_score" in summary["evaluations"][0]
    if local:
      lines[-1] += f" {'local-ref score':>16}"
    for row in summary["evaluations"]:
      lines.append(f"{row['step']:>10d} {row['eval/return_mean']:>10.1f} ± "
                   f"{row['eval/return_std']:<6.1f} {row['eval/normalized_score']:>12.1f} ± "
                   f"{row['eval/normalized_score_std']:<6.1f}" +
                   (f" {row['eval/local_normalized_score']:>16.1f}" if local else ""))
  else:
    lines.append("no environment evaluation (eval_episodes = 0 or no env_name)")
    for k, v in summary["final_train"].items():
      if k != "step":
        lines.append(f"  {k:<28} {v:.4g}")
  return "\n".join(lines)


def plot_curves(train_rows: List[dict], eval_rows: List[dict], path: str, title: str) -> None:
  """Critic loss, actor loss and normalised score against gradient steps, as a PNG."""
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [("train/critic_loss", "critic loss"), ("train/actor_loss", "actor loss")]
  panels = [p for p in panels if train_rows and p[0] in train_rows[0]]
  if eval_rows:
    panels.append(("eval/success_mean", "zero-shot success") if "eval/success_mean" in eval_rows[0]
                  else ("eval/normalized_score", "normalized score"))
  fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4 * max(1, len(panels)), 3.2),
                           squeeze=False)
  for ax, (key, label) in zip(axes[0], panels):
    rows = eval_rows if key.startswith("eval/") else train_rows
    ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="." if len(rows) < 30 else None)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)

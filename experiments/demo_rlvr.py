"""The main job on a laptop CPU: SFT a tiny character-level Llama on clean
Countdown demonstrations (3 numbers <= 10, target <= 100, ``+-*``; one correct
solution each), then GRPO on many verifiable prompts; held-out greedy accuracy
before and after RL, over several seeds, beside an SFT-only control.

Per seed ``S`` (all three runs start from, or are, the same SFT policy):

  sft          SFT on clean reference solutions for ``--sft_steps`` steps: a
               well-formatted but weak policy (its pass@16 is far above its pass@1).
  grpo         GRPO from the SFT policy for ``--rl_steps`` steps on prompts with a
               verifier and no reference answers (DAPO's dynamic sampling: groups
               whose rewards are all equal are re-drawn; configs/demo_rlvr.py).
  sft_control  the SFT-only control given the same extra compute: SFT continued
               from the same SFT policy for ``--control_steps`` steps on fresh
               clean demonstrations (a new data stream).

The gain is ``grpo - sft`` greedy accuracy on the same held-out (test-split)
problems; the summary reports its mean over seeds with a 95 % Student-t
interval, the control's mean beside it, a final table and a plot
(``workdir/demo_accuracy.png``), and writes ``workdir/demo_summary.json``.

The workdir is started fresh on every call: each sub-run's earlier checkpoints,
metrics and TensorBoard events are deleted (``overwrite=True``), so ``make
demo`` can be run twice in a row. For a resumable run use experiments/sft.py and
experiments/rl.py with ``--config.resume=True``.

``--echo_fraction`` > 0 writes that share of the SFT demonstrations as
``"46=46"`` instead of ``"46"`` (``--task=arithmetic`` only): the older demo,
whose gain is mostly GRPO removing a format habit that the strict verifier
rejects; it is kept as an option, not the headline.

    python experiments/demo_rlvr.py [--workdir=/tmp/jaxrl_llm/demo --seeds=3 --quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from configs import demo_rlvr as demo_config  # noqa: E402
from experiments import rl, sft  # noqa: E402

STAGES = ("sft", "sft_control", "grpo")


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
  """``(mean, low, high)``: the Student-t confidence interval of the mean of ``values``.

      mean +- t_{(1 + confidence) / 2, n - 1} * s / sqrt(n),   s the sample std (ddof = 1)

  (Student 1908; for n = 3 seeds the 95 % quantile is t_{0.975, 2} = 4.303).
  Needs at least two values.
  """
  from scipy import stats as scipy_stats
  x = np.asarray(values, np.float64)
  if x.ndim != 1 or x.size < 2:
    raise ValueError(f"t_interval needs >= 2 values, got {x.size}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must be in (0, 1), got {confidence}")
  m = float(x.mean())
  half = float(scipy_stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
  return m, m - half, m + half


def seed_configs(workdir: str, seed: int, *, task: str, sft_steps: int, rl_steps: int,
                 control_steps: int, eval_size: int, echo_fraction: float = 0.0):
  """``(sft, grpo, sft_control)`` configs of one seed, in ``workdir/seed<seed>/<stage>``."""
  s, r = demo_config.get_configs(task)
  root = os.path.join(workdir, f"seed{seed}")
  if echo_fraction and task != "arithmetic":
    raise ValueError(f"--echo_fraction needs --task=arithmetic, got --task={task}")
  s.workdir = os.path.join(root, "sft")
  s.seed = seed
  s.steps = sft_steps
  s.eval_every = sft_steps
  s.eval_size = eval_size
  s.checkpoint_every = sft_steps
  s.echo_fraction = echo_fraction
  r.workdir = os.path.join(root, "grpo")
  r.seed = seed
  r.init_from = s.workdir
  r.steps = rl_steps
  r.eval_every = max(rl_steps // 4, 1)
  r.eval_size = eval_size
  r.checkpoint_every = rl_steps
  ctl = s.copy_and_resolve_references()
  ctl.workdir = os.path.join(root, "sft_control")
  ctl.init_from = s.workdir
  # A fresh demonstration stream (the seed only picks the data: the weights come from init_from).
  ctl.seed = seed + demo_config.CONTROL_SEED_OFFSET
  ctl.steps = control_steps
  ctl.eval_every = max(control_steps // 4, 1)
  ctl.checkpoint_every = control_steps
  for c in (s, r, ctl):
    c.overwrite = True  # the demo's workdir is started fresh (module docstring)
    c.resume = False
  return s, r, ctl


def run_seed(workdir: str, seed: int, progress_bar: bool = False, **kw) -> dict:
  """One seed: SFT, then GRPO and the SFT-only control from it; accuracies and wall times."""
  s, r, ctl = seed_configs(workdir, seed, **kw)
  for c in (s, r, ctl):
    c.progress_bar = progress_bar
  out = {"seed": seed}
  t0 = time.time()
  out["sft"] = sft.run(s)["eval/accuracy"]
  out["sft_s"] = time.time() - t0
  t0 = time.time()
  summary = rl.run(r)
  out["grpo_s"] = time.time() - t0
  out["grpo"] = summary["eval/accuracy"]
  out["grpo_initial"] = summary["initial_accuracy"]  # == sft: the same policy, greedy
  t0 = time.time()
  out["sft_control"] = sft.run(ctl)["eval/accuracy"]
  out["sft_control_s"] = time.time() - t0
  out["gain"] = out["grpo"] - out["sft"]
  out["control_gain"] = out["sft_control"] - out["sft"]
  return out


def summarize(rows: list) -> dict:
  """Mean gain (GRPO - SFT) and control gain with 95 % t-intervals (when >= 2 seeds)."""
  out = {}
  for key in ("gain", "control_gain", *STAGES):
    vals = [row[key] for row in rows]
    out[key] = {"mean": float(np.mean(vals)), "values": vals}
    if len(vals) >= 2:
      _, lo, hi = t_interval(vals)
      out[key]["ci95"] = [lo, hi]
  return out


def format_table(rows: list, stats: dict) -> str:
  pct = lambda x: f"{100 * x:5.1f}"  # noqa: E731
  lines = [f"{'seed':>6} | {'SFT':>6} | {'SFT-control':>11} | {'GRPO':>6} | {'gain':>6} | "
           f"{'ctl gain':>8} | {'wall s (sft/grpo/ctl)':>21}"]
  lines.append("-" * len(lines[0]))
  for row in rows:
    lines.append(f"{row['seed']:>6} | {pct(row['sft']):>6} | {pct(row['sft_control']):>11} | "
                 f"{pct(row['grpo']):>6} | {100 * row['gain']:+6.1f} | "
                 f"{100 * row['control_gain']:+8.1f} | "
                 f"{row['sft_s']:6.0f} /{row['grpo_s']:5.0f} /{row['sft_control_s']:5.0f}")
  lines.append("-" * len(lines[0]))
  lines.append(f"{'mean':>6} | {pct(stats['sft']['mean']):>6} | "
               f"{pct(stats['sft_control']['mean']):>11} | {pct(stats['grpo']['mean']):>6} | "
               f"{100 * stats['gain']['mean']:+6.1f} | {100 * stats['control_gain']['mean']:+8.1f} |")
  for key, name in (("gain", "GRPO gain"), ("control_gain", "SFT-control gain")):
    if "ci95" in stats[key]:
      lo, hi = stats[key]["ci95"]
      lines.append(f"{name}: {100 * stats[key]['mean']:+.1f} points, 95% t-interval over "
                   f"{len(rows)} seeds [{100 * lo:+.1f}, {100 * hi:+.1f}]")
  return "\n".join(lines)


def plot(rows: list, path: str) -> str:
  """Grouped bars: held-out greedy accuracy per seed for SFT, SFT-control and GRPO."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.5, 4))
  width = 0.27
  x = np.arange(len(rows))
  labels = {"sft": "SFT", "sft_control": "SFT-control (same extra compute)", "grpo": "GRPO"}
  for i, stage in enumerate(STAGES):
    vals = [100 * row[stage] for row in rows]
    ax.bar(x + (i - 1) * width, vals, width, label=labels[stage])
  ax.set_xticks(x, [f"seed {row['seed']}" for row in rows])
  ax.set_ylabel("held-out greedy accuracy (%)")
  ax.set_ylim(0, 100)
  ax.legend(loc="upper left", fontsize=8)
  ax.set_title("clean-data SFT, then GRPO vs continued SFT")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def enable_compilation_cache(path: str) -> None:
  """Persistent XLA cache: seeds after the first (and later demos) reuse compiled steps.

  A cache directory already configured (``JAX_COMPILATION_CACHE_DIR``, or set by the
  caller) is kept: `path` is only the default.
  """
  import jax
  if jax.config.jax_compilation_cache_dir:
    return
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def main(argv=None):
  d = demo_config.DEFAULTS
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="/tmp/jaxrl_llm/demo")
  parser.add_argument("--task", default=d["task"], choices=demo_config.TASKS)
  parser.add_argument("--seeds", type=int, default=d["seeds"], help="seeds 0 .. N-1")
  parser.add_argument("--first_seed", type=int, default=0)
  parser.add_argument("--sft_steps", type=int, default=d["sft_steps"])
  parser.add_argument("--rl_steps", type=int, default=d["rl_steps"])
  parser.add_argument("--control_steps", type=int, default=d["control_steps"],
                      help="continued-SFT steps of the control (about GRPO's wall time)")
  parser.add_argument("--eval_size", type=int, default=d["eval_size"])
  parser.add_argument("--quick", action="store_true",
                      help="one seed and shorter runs (a smoke run, not the reported numbers)")
  parser.add_argument("--echo_fraction", type=float, default=0.0,
                      help="share of SFT demonstrations written '46=46' instead of '46' "
                           "(the older format-correction demo; --task=arithmetic)")
  parser.add_argument("--progress_bar", type=int, default=1)
  args = parser.parse_args(argv)
  if args.quick:
    q = demo_config.QUICK
    args.seeds, args.sft_steps, args.rl_steps = 1, q["sft_steps"], q["rl_steps"]
    args.control_steps, args.eval_size = q["control_steps"], q["eval_size"]
  if args.seeds < 1:
    raise ValueError(f"--seeds must be >= 1, got {args.seeds}")
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  os.makedirs(args.workdir, exist_ok=True)
  enable_compilation_cache(os.path.join(args.workdir, "jax_cache"))
  t0 = time.time()
  rows = []
  for seed in range(args.first_seed, args.first_seed + args.seeds):
    row = run_seed(args.workdir, seed, progress_bar=bool(args.progress_bar), task=args.task,
                   sft_steps=args.sft_steps, rl_steps=args.rl_steps,
                   control_steps=args.control_steps, eval_size=args.eval_size,
                   echo_fraction=args.echo_fraction)
    rows.append(row)
    print(f"seed {seed}: SFT {100 * row['sft']:.1f}% -> GRPO {100 * row['grpo']:.1f}% "
          f"({100 * row['gain']:+.1f} pts); SFT-control {100 * row['sft_control']:.1f}%",
          flush=True)
  wall = time.time() - t0
  stats = summarize(rows)
  figure = plot(rows, os.path.join(args.workdir, "demo_accuracy.png"))
  result = {"rows": rows, "stats": stats, "wall_s": wall, "args": vars(args), "plot": figure}
  with open(os.path.join(args.workdir, "demo_summary.json"), "w") as f:
    json.dump(result, f, indent=1)
  print(f"\n{args.task}: SFT {args.sft_steps} steps; GRPO {args.rl_steps} steps; "
        f"SFT-control {args.control_steps} steps; {args.eval_size} held-out problems, greedy")
  print(format_table(rows, stats))
  print(f"total wall time {wall:.0f}s for {len(rows)} seed(s); plot: {figure}")
  return result


if __name__ == "__main__":
  main()

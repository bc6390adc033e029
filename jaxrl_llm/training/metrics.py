"""Metric logging (JSONL always, TensorBoard when installed), finiteness checks and plots."""

from __future__ import annotations

import json
import math
import os
from typing import Mapping, Optional, Sequence

import numpy as np


class NonFiniteError(FloatingPointError):
  """A loss or gradient metric became NaN/inf; the message names the step and metric."""


def check_finite(metrics: Mapping[str, float], step: int,
                 names: Sequence[str] = ("loss", "grad_norm")) -> None:
  """Raises :class:`NonFiniteError` if any of ``names`` (with any ``a/`` prefix) is NaN/inf."""
  for key, value in metrics.items():
    if key.split("/")[-1] in names and not math.isfinite(float(value)):
      raise NonFiniteError(f"non-finite {key}={float(value)} at step {step}; stopping "
                           f"(lower the learning rate or check the data)")


def to_floats(metrics: Mapping) -> dict:
  return {k: float(np.asarray(v)) for k, v in metrics.items()}


class MetricWriter:
  """Appends ``{"step": s, **metrics}`` lines to ``workdir/metrics.jsonl`` (+ TensorBoard).

  ``truncate_after(step)`` drops lines of steps > ``step`` (used on resume, so
  the file holds each step once).
  """

  def __init__(self, workdir: str, *, tensorboard: bool = True):
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if tensorboard:
      try:
        from torch.utils.tensorboard import SummaryWriter  # optional dependency
        self._tb = SummaryWriter(os.path.join(workdir, "tb"))
      except Exception:  # tensorboard not installed: JSONL only
        self._tb = None

  def truncate_after(self, step: int) -> None:
    if not os.path.exists(self.path):
      return
    with open(self.path) as f:
      lines = [l for l in f if l.strip() and json.loads(l)["step"] <= step]
    tmp = self.path + ".tmp"
    with open(tmp, "w") as f:
      f.writelines(lines)
    os.replace(tmp, self.path)

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
    with open(self.path, "a") as f:
      f.write(json.dumps(record) + "\n")
    if self._tb is not None:
      for k, v in metrics.items():
        self._tb.add_scalar(k, float(v), int(step))

  def close(self):
    if self._tb is not None:
      self._tb.close()


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]


def plot_rewards(metrics_path: str, out_path: str, *, keys: Sequence[str] = (
    "train/reward_mean", "eval/accuracy"), title: Optional[str] = None) -> str:
  """PNG of the given metrics against step (train reward and held-out accuracy)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  records = read_metrics(metrics_path)
  fig, ax = plt.subplots(figsize=(6, 4))
  for key in keys:
    pts = [(r["step"], r[key]) for r in records if key in r]
    if pts:
      xs, ys = zip(*pts)
      ax.plot(xs, ys, marker="o" if key.startswith("eval") else None, label=key)
  ax.set_xlabel("step")
  ax.set_ylabel("reward / accuracy")
  ax.set_title(title or os.path.basename(os.path.dirname(os.path.abspath(metrics_path))))
  ax.grid(alpha=0.3)
  ax.legend()
  fig.tight_layout()
  fig.savefig(out_path, dpi=100)
  plt.close(fig)
  return out_path

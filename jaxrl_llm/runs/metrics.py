"""Metric logging (JSONL always; TensorBoard with tensorboardX; Weights & Biases when
installed and asked for), finiteness checks and plots."""

from __future__ import annotations

import json
import math
import os
import warnings
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


WANDB_ID_FILE = "wandb_run_id"
WANDB_MODES = (None, "online", "offline", "disabled")


class MetricWriterWarning(UserWarning):
  """A requested metric backend is unavailable; the run goes on with the others (JSONL always)."""


class MetricBackendError(ImportError):
  """A metric backend that was asked for explicitly (Weights & Biases) is not installed."""


class MetricWriter:
  """Appends ``{"step": s, **metrics}`` lines to ``workdir/metrics.jsonl``; also
  TensorBoard event files in ``workdir/tb`` (``tensorboard=True``, written with
  ``tensorboardX``) and a Weights & Biases run (``wandb=True``).

  A requested TensorBoard writer that cannot be built (``tensorboardX``
  missing) is reported once, at construction, as a :class:`MetricWriterWarning`
  on stderr, and the run continues with JSONL; ``wandb=True`` without the
  ``wandb`` package is a :class:`MetricBackendError` (it is opt-in, so a missing
  package is a set-up mistake). ``truncate_after(step)`` drops lines of steps
  > ``step`` (used on resume, so the file holds each step once) and reopens
  the TensorBoard writer with ``purge_step=step + 1``, so TensorBoard hides the
  events the resumed run rewrites. The W&B run's id is kept in
  ``workdir/wandb_run_id``, so a resumed run logs to the same W&B run;
  ``wandb_mode`` is W&B's ``mode`` (``"offline"`` on a machine without
  network; ``None``: W&B's default / ``WANDB_MODE``).
  """

  def __init__(self, workdir: str, *, tensorboard: bool = True, wandb: bool = False,
               wandb_project: str = "jaxrl_llm", wandb_run_name: Optional[str] = None,
               wandb_mode: Optional[str] = None, run_config: Optional[Mapping] = None):
    if wandb_mode not in WANDB_MODES:
      raise ValueError(f"MetricWriter: wandb_mode must be one of {WANDB_MODES}, got {wandb_mode!r}")
    os.makedirs(workdir, exist_ok=True)
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.tb_dir = os.path.join(workdir, "tb")
    self._tb = None
    self._wandb_run = None
    if tensorboard:
      self._tb = _tensorboard_writer(self.tb_dir)
    if wandb:
      self._wandb_run = _wandb_run(workdir, wandb_project, wandb_run_name, wandb_mode, run_config)

  @property
  def backends(self) -> tuple:
    """Names of the backends being written: ``("jsonl", "tensorboard", "wandb")`` or a prefix of them."""
    return (("jsonl",) + (("tensorboard",) if self._tb is not None else ())
            + (("wandb",) if self._wandb_run is not None else ()))

  def truncate_after(self, step: int) -> None:
    if self._tb is not None:
      self._tb.close()
      self._tb = _tensorboard_writer(self.tb_dir, purge_step=int(step) + 1)
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
    if self._wandb_run is not None:
      self._wandb_run.log({k: float(v) for k, v in metrics.items()}, step=int(step))

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self):
    if self._tb is not None:
      self._tb.close()
      self._tb = None
    if self._wandb_run is not None:
      self._wandb_run.finish()
      self._wandb_run = None


class NullMetricWriter:
  """A ``MetricWriter`` that writes nothing: processes other than 0 of a multi-process
  run (process 0 logs). ``path`` names the file process 0 writes."""

  backends = ()

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, "metrics.jsonl")
    self.tb_dir = os.path.join(workdir, "tb")

  def truncate_after(self, step: int) -> None:
    del step

  def write(self, step: int, metrics: Mapping[str, float]) -> None:
    del step, metrics

  def flush(self) -> None:
    pass

  def close(self) -> None:
    pass


def _tensorboard_writer(logdir: str, purge_step: Optional[int] = None):
  """A ``tensorboardX.SummaryWriter`` on ``logdir``, or ``None`` with a warning if it cannot be made."""
  try:
    from tensorboardX import SummaryWriter  # declared in setup.cfg
  except ImportError as e:
    warnings.warn(f"tensorboard=True but no TensorBoard writer: {e}. Metrics go to metrics.jsonl "
                  f"only; install it with `pip install tensorboardX` (declared by jaxrl_llm) "
                  f"or pass tensorboard=False", MetricWriterWarning, stacklevel=3)
    return None
  return SummaryWriter(logdir, purge_step=purge_step, flush_secs=30)


def _wandb_run(workdir, project, name, mode, run_config):
  try:
    import wandb  # optional: pip install wandb
  except ImportError as e:
    raise MetricBackendError(
        f"wandb=True but the 'wandb' package is not installed ({e}); pip install wandb, "
        f"or pass wandb=False (metrics still go to metrics.jsonl and TensorBoard)") from e
  config = None
  if run_config is not None:
    config = run_config.to_dict() if hasattr(run_config, "to_dict") else dict(run_config)
  # One W&B run per workdir: a resumed run appends to it (its id is kept in the workdir).
  id_path = os.path.join(workdir, WANDB_ID_FILE)
  if os.path.isfile(id_path):
    with open(id_path) as f:
      run_id = f.read().strip()
  else:
    run_id = wandb.util.generate_id()
    with open(id_path, "w") as f:
      f.write(run_id + "\n")
  return wandb.init(project=project, name=name, dir=workdir, config=config, mode=mode,
                    id=run_id, resume="allow")


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

"""A run's working directory: refuse, resume or overwrite a used one; open its writer
and checkpointer. One rule for every loop (LLM SFT/RL and the offline agents).

A workdir already holds a run when it has committed checkpoints or metric lines.
Such a workdir is never mixed into:

* ``resume=True``: the latest committed checkpoint is restored (a workdir
  without one is a named error) and the metrics file is truncated after its step;
* ``overwrite=True`` (not resuming): the old run's files are deleted and the
  run starts fresh;
* neither: a ``ValueError`` that says how to resume or overwrite.
"""

from __future__ import annotations

import os
import shutil
from typing import Any, NamedTuple, Optional, Sequence

from jaxrl_llm.runs import metrics as metrics_lib
from jaxrl_llm.runs.checkpoint import Checkpointer, committed_steps

# What a run writes that a new run must not mix into.
RUN_FILES = ("checkpoints", "metrics.jsonl", "tb", "wandb", "wandb_run_id")


def previous_run(workdir: str) -> dict:
  """What an earlier run left in ``workdir``: ``{"steps": committed checkpoint steps,
  "metrics": whether workdir/metrics.jsonl holds lines}`` (both empty/False: unused)."""
  path = os.path.join(workdir, "metrics.jsonl")
  return {"steps": committed_steps(os.path.join(workdir, "checkpoints")),
          "metrics": os.path.isfile(path) and os.path.getsize(path) > 0}


def clear_run(workdir: str, run_files: Sequence[str] = RUN_FILES) -> None:
  """Deletes what a run wrote to ``workdir`` (``run_files``); exports (hf/, curves.png) are rewritten anyway."""
  for name in run_files:
    path = os.path.join(workdir, name)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)


def claim_workdir(c, run_files: Sequence[str] = RUN_FILES) -> None:
  """Applies the refuse / overwrite / resume rule to ``c.workdir`` before a run starts.

  Reads ``c.workdir``, ``c.resume`` and ``c.get("overwrite", False)``. Cheap (a
  directory listing), so a loop calls it before expensive set-up; ``open_run``
  calls it again. Raises ``ValueError`` for a used workdir that is neither
  resumed nor overwritten, and for ``resume=True`` without a committed checkpoint.
  """
  used = previous_run(c.workdir)
  if c.resume:
    if not used["steps"]:
      raise ValueError(
          f"resume=True but {os.path.join(c.workdir, 'checkpoints')!r} holds no committed "
          f"checkpoint (only an interrupted save?); run without --config.resume to start fresh")
    return
  if used["steps"] or used["metrics"]:
    if not c.get("overwrite", False):
      found = (f"checkpoints at steps {used['steps']}" if used["steps"] else
               "metrics.jsonl but no committed checkpoint")
      raise ValueError(
          f"workdir {c.workdir!r} already holds a run ({found}). Pass --config.resume=True "
          f"to continue it, --config.overwrite=True to delete it and start fresh, or choose "
          f"another --config.workdir")
    # Several processes share one workdir: process 0 deletes, the others wait for it.
    if _process_index() == 0:
      clear_run(c.workdir, run_files)
      print(f"overwrite: deleted the previous run in {c.workdir!r} "
            f"(checkpoints {used['steps']}); starting fresh", flush=True)
    _sync_processes("jaxrl_llm.runs.claim_workdir")


def _process_index() -> int:
  import jax
  return jax.process_index()


def _sync_processes(name: str) -> None:
  """A barrier across the processes of a multi-process run (nothing on one process)."""
  import jax
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def metric_writer(c) -> metrics_lib.MetricWriter:
  """The run's ``MetricWriter``: JSONL always; TensorBoard (``c.tensorboard``) and W&B
  (``c.wandb``, ``c.wandb_project``, ``c.wandb_mode``) when asked. Only process 0 of a
  multi-process run writes; the others get a ``NullMetricWriter``."""
  if _process_index() != 0:
    return metrics_lib.NullMetricWriter(c.workdir)
  return metrics_lib.MetricWriter(
      c.workdir, tensorboard=c.get("tensorboard", True), wandb=c.get("wandb", False),
      wandb_project=c.get("wandb_project", "jaxrl_llm"), wandb_mode=c.get("wandb_mode") or None,
      run_config=c)


class Run(NamedTuple):
  """An opened run: where it starts, its (restored) state, the checkpoint's metadata."""

  start: int  # the restored step, 0 for a fresh run
  state: Any  # the restored state, or the given one
  meta: dict  # the checkpoint's JSON metadata ({} for a fresh run)
  writer: metrics_lib.MetricWriter
  checkpointer: Optional[Checkpointer]  # None when checkpoint_every <= 0
  resumed_from: Optional[int]  # the restored step, None for a fresh run


def open_run(c, state, *, checkpoint_every: int, keep: Optional[int],
             run_files: Sequence[str] = RUN_FILES) -> Run:
  """Metric writer, checkpointer and start point of a run in ``c.workdir``.

  Applies ``claim_workdir``; with ``c.resume`` restores the latest committed
  checkpoint into the structure of ``state`` (refusing one written with a
  different ``c.seed``) and truncates the metrics file after its step.
  ``checkpoint_every <= 0`` turns checkpointing off (then ``resume`` cannot
  succeed). Saves are asynchronous with ``c.async_checkpointing``.
  """
  claim_workdir(c, run_files)
  ckpt = None
  if checkpoint_every > 0:
    ckpt = Checkpointer(os.path.join(c.workdir, "checkpoints"), every=checkpoint_every,
                        keep=keep, async_save=c.get("async_checkpointing", False))
  writer = metric_writer(c)
  if not c.resume:
    return Run(0, state, {}, writer, ckpt, None)
  restored = ckpt.restore_latest(state) if ckpt is not None else None
  if restored is None:
    writer.close()
    if ckpt is not None:
      ckpt.close()
    raise ValueError(f"resume=True but {os.path.join(c.workdir, 'checkpoints')!r} holds no "
                     f"committed checkpoint that this run can read (checkpointing every "
                     f"{checkpoint_every} steps); run without --config.resume to start fresh")
  start, state, meta = restored
  if meta.get("seed", c.seed) != c.seed:
    writer.close()
    ckpt.close()
    raise ValueError(f"resume: the checkpoint was written with seed={meta['seed']}, "
                     f"the config has seed={c.seed}")
  writer.truncate_after(start)
  return Run(start, state, meta, writer, ckpt, start)


def write_atomic(path: str, text: str) -> None:
  """Writes ``text`` to ``path`` via a temporary file and an atomic rename."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)

"""Orbax checkpoints of a training state pytree plus JSON metadata: the one checkpointer
of every loop (the LLM SFT/RL loops in ``training/`` and the offline agents' loop in
``offline/train.py``).

Typed PRNG keys (``jax.random.key``) in the state are stored as their raw
``uint32`` key data and wrapped back on restore, where the template has a key.
A checkpoint is written to a temporary directory and renamed when complete
(Orbax's atomic commit), so a run killed mid-save leaves only a ``*.orbax-
checkpoint-tmp-*`` directory that :meth:`Checkpointer.restore_latest` never
sees; ``cleanup_tmp_directories`` removes such leftovers at the next start.
"""

from __future__ import annotations

import os
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp


def committed_steps(directory: str) -> list[int]:
  """Steps with a committed checkpoint in ``directory`` (Orbax names them ``<step>``), sorted.

  Reads the directory listing only (creates nothing); temporary
  ``<step>.orbax-checkpoint-tmp-*`` directories of an interrupted save are not
  committed and not listed. ``[]`` when ``directory`` does not exist.
  """
  if not os.path.isdir(directory):
    return []
  return sorted(int(d) for d in os.listdir(directory)
                if d.isdigit() and os.path.isdir(os.path.join(directory, d)))


class Checkpointer:
  """``CheckpointManager`` for ``(state pytree, JSON metadata)``; every ``every`` steps, keep ``keep``.

  ``save(step, state, meta)`` stores the state with ``StandardSave`` (sharded
  arrays are written and restored with their shardings) and ``meta`` (data
  position, RNG seed, config) as JSON. Saves are asynchronous when
  ``async_save`` (single process: from a host copy, so donated device buffers
  can be reused at once); :meth:`wait` / :meth:`close` block until committed.
  """

  def __init__(self, directory: str, *, every: int = 100, keep: Optional[int] = 3,
               async_save: bool = False):
    if every < 1:
      raise ValueError(f"checkpoint every must be >= 1, got {every}")
    self.directory = os.path.abspath(directory)
    self._async = async_save
    options = ocp.CheckpointManagerOptions(
        save_interval_steps=every, max_to_keep=keep, create=True,
        cleanup_tmp_directories=True, enable_async_checkpointing=async_save)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step: int, state: Any, meta: dict, *, force: bool = False) -> bool:
    state = _raw_keys(state)
    if self._async and (force or self._manager.should_save(int(step))):
      # The train step donates (reuses) the state's buffers; an asynchronous
      # save must own a copy (host memory on one process, a device copy with the
      # same sharding on several), or it would read overwritten memory.
      # np.array(copy=True): on CPU np.asarray can alias the device buffer.
      state = (jax.tree.map(lambda x: np.array(x, copy=True), state)
               if jax.process_count() == 1 else jax.tree.map(jnp.copy, state))
    return self._manager.save(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=force)

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self):
    return list(self._manager.all_steps())

  def restore(self, step: int, abstract_state: Any) -> tuple[Any, dict]:
    """Restores ``step`` into the structure/shardings of ``abstract_state`` (arrays or ShapeDtypeStructs)."""
    target = jax.tree.map(_abstract, _raw_keys(abstract_state))
    out = self._manager.restore(int(step), args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore()))
    state = jax.tree.map(lambda t, r: _wrap_key(t, r) if _is_key(t) else r,
                         abstract_state, out["state"])
    return state, dict(out["meta"])

  def restore_latest(self, abstract_state: Any) -> Optional[tuple[int, Any, dict]]:
    step = self.latest_step()
    if step is None:
      return None
    state, meta = self.restore(step, abstract_state)
    return step, state, meta

  def wait(self):
    self._manager.wait_until_finished()

  def close(self):
    self._manager.wait_until_finished()
    self._manager.close()


def _abstract(x):
  if isinstance(x, jax.Array):
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
  if isinstance(x, (np.ndarray, np.generic)):
    return jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
  return x


def _is_key(x) -> bool:
  """A typed PRNG key array (or its ShapeDtypeStruct)."""
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _raw_keys(tree):
  """``tree`` with every typed PRNG key replaced by its ``uint32`` key data (Orbax stores arrays)."""
  def convert(x):
    if not _is_key(x):
      return x
    if isinstance(x, jax.ShapeDtypeStruct):
      return jax.eval_shape(jax.random.key_data, x)
    return jax.random.key_data(x)
  return jax.tree.map(convert, tree)


def _wrap_key(template, data):
  """The key data restored for a ``template`` key, as a typed key of the template's impl."""
  if isinstance(template, jax.ShapeDtypeStruct):  # key_impl wants an array: read it at trace time
    impls = []
    jax.eval_shape(lambda k: impls.append(jax.random.key_impl(k)), template)
    impl = impls[0]
  else:
    impl = jax.random.key_impl(template)
  return jax.random.wrap_key_data(data, impl=impl)

"""Chunked XLA backend: ``fori_loop`` over vocabulary blocks, its own backward.

The weight is read in place with ``lax.dynamic_slice_in_dim`` (no padded or
reshaped copy of ``W``). A ragged last block is handled by clamping its start to
``V - block_v`` and masking the columns an earlier block already covered, so
the live temporaries are a handful of ``[T, block_v]`` tiles.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from kernels_pallas import _online

DEFAULT_BLOCK_V = 1024


def _block(v: int, block_v: int) -> tuple[int, int]:
  block_v = min(block_v, v)
  return block_v, -(-v // block_v)


def _tile(j, hidden, weight, ref_hidden, ref_weight, targets, *, block_v, inv_temperature,
          with_ref):
  """Logits tile ``j``: returns (start, w_tile, z, b, valid, onehot)."""
  v = weight.shape[1]
  acc = _online.accumulator_dtype(hidden.dtype)
  start = jnp.minimum(j * block_v, v - block_v)
  w_tile = jax.lax.dynamic_slice_in_dim(weight, start, block_v, axis=1).astype(hidden.dtype)
  z = jnp.dot(hidden, w_tile, preferred_element_type=acc) * inv_temperature
  b = None
  if with_ref:
    wr_tile = jax.lax.dynamic_slice_in_dim(ref_weight, start, block_v, axis=1).astype(
        ref_hidden.dtype)
    b = jnp.dot(ref_hidden, wr_tile, preferred_element_type=acc) * inv_temperature
  col = start + jax.lax.broadcasted_iota(jnp.int32, (1, block_v), 1)
  valid = col >= j * block_v  # drop columns the previous (unclamped) block covered
  onehot = col == targets[:, None]
  return start, w_tile, z, b, valid, onehot


def xla_forward(hidden, weight, targets, ref_hidden, ref_weight, *, inv_temperature: float,
                want_entropy: bool, kl_mode: Optional[str],
                block_v: int = DEFAULT_BLOCK_V) -> jax.Array:
  """``[T, NUM_STATS]`` statistics without materialising ``[T, V]``."""
  t = hidden.shape[0]
  acc = _online.accumulator_dtype(hidden.dtype)
  block_v, num_blocks = _block(weight.shape[1], block_v)

  def body(j, state):
    _, _, z, b, valid, onehot = _tile(j, hidden, weight, ref_hidden, ref_weight, targets,
                                      block_v=block_v, inv_temperature=inv_temperature,
                                      with_ref=kl_mode is not None)
    return _online.online_update(state, z, b, valid, onehot)

  state = _online.init_state(t, acc, want_entropy=want_entropy, kl_mode=kl_mode)
  state = jax.lax.fori_loop(0, num_blocks, body, state)
  stats = _online.finalize(state, kl_mode)
  return jnp.concatenate([stats[k] for k in range(_online.NUM_STATS)], axis=1)


def xla_backward(hidden, weight, targets, ref_hidden, ref_weight, rows, *,
                 inv_temperature: float, want_entropy: bool, kl_mode: Optional[str],
                 block_v: int = DEFAULT_BLOCK_V) -> tuple[jax.Array, jax.Array]:
  """``(d hidden, d weight)`` from the packed ``[T, w]`` stats + cotangent rows."""
  acc = _online.accumulator_dtype(hidden.dtype)
  block_v, num_blocks = _block(weight.shape[1], block_v)

  def body(j, carry):
    d_hidden, d_weight = carry
    start, w_tile, z, b, valid, onehot = _tile(
        j, hidden, weight, ref_hidden, ref_weight, targets, block_v=block_v,
        inv_temperature=inv_temperature, with_ref=kl_mode == "full")
    # dW needs every column of the clamped tile (overlap columns are rewritten with
    # identical values); dh must count each column once.
    all_cols = jnp.ones_like(valid)
    g = _online.dlogits(z, b, all_cols, onehot, rows, want_entropy=want_entropy,
                        kl_mode=kl_mode) * inv_temperature
    g_in = g.astype(hidden.dtype)
    dw_tile = jax.lax.dot_general(hidden, g_in, (((0,), (0,)), ((), ())),
                                  preferred_element_type=acc)
    d_weight = jax.lax.dynamic_update_slice_in_dim(d_weight, dw_tile.astype(weight.dtype),
                                                   start, axis=1)
    g_once = jnp.where(valid, g, 0).astype(hidden.dtype)
    d_hidden = d_hidden + jax.lax.dot_general(g_once, w_tile, (((1,), (1,)), ((), ())),
                                              preferred_element_type=acc)
    return d_hidden, d_weight

  init = (jnp.zeros(hidden.shape, acc), jnp.zeros(weight.shape, weight.dtype))
  d_hidden, d_weight = jax.lax.fori_loop(0, num_blocks, body, init)
  return d_hidden.astype(hidden.dtype), d_weight

"""Chunked XLA backend: ``fori_loop`` over vocabulary blocks, its own backward.

The weight is read in place with ``lax.dynamic_slice_in_dim`` (no padded or
reshaped copy of ``W``). A ragged last block is handled by clamping its start to
``V - block_v`` and masking the columns an earlier block already covered, so
the live temporaries are a handful of ``[T, block_v]`` tiles. The target terms
(the target logit forward, the ``c1 onehot`` part of ``dz`` backward) are done once
outside the loop with a gather of the ``T`` target columns of ``W`` and a
scatter-add into ``dW``, which saves a compare-and-select pass per tile.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from kernels_pallas import _online
from kernels_pallas import _vma

# Default tile: about 2**24 logits (64 MiB in f32), so block_v = 2**24 / T rounded
# down to a power of two in [512, 8192]: big matmuls, temporaries ~ 4 tiles.
DEFAULT_TILE_ELEMENTS = 1 << 24


def default_block_v(t: int) -> int:
  target = max(1, DEFAULT_TILE_ELEMENTS // max(t, 1))
  return int(min(8192, max(512, 1 << (target.bit_length() - 1))))


def _block(v: int, block_v: Optional[int], t: int) -> tuple[int, int]:
  block_v = min(default_block_v(t) if block_v is None else block_v, v)
  return block_v, -(-v // block_v)


def _tile(j, hidden, weight, ref_hidden, ref_weight, targets, *, block_v, inv_temperature,
          with_ref):
  """Logits tile ``j``: returns (start, w_tile, z, b, valid)."""
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
  return start, w_tile, z, b, valid


def _target_logits(hidden, weight, targets, inv_temperature):
  """``[T, 1]`` logits of the target tokens: ``h_t . W[:, y_t] / tau``."""
  acc = _online.accumulator_dtype(hidden.dtype)
  w_y = jnp.take(weight, targets, axis=1).astype(hidden.dtype)  # [D, T]
  return jnp.einsum("td,dt->t", hidden, w_y, preferred_element_type=acc)[:, None] * inv_temperature


def xla_forward(hidden, weight, targets, ref_hidden, ref_weight, *, inv_temperature: float,
                want_entropy: bool, kl_mode: Optional[str], want_mean_logprob: bool = False,
                block_v: Optional[int] = None) -> jax.Array:
  """``[T, NUM_STATS]`` statistics without materialising ``[T, V]``."""
  t = hidden.shape[0]
  acc = _online.accumulator_dtype(hidden.dtype)
  block_v, num_blocks = _block(weight.shape[1], block_v, t)

  def body(j, state):
    _, _, z, b, valid = _tile(j, hidden, weight, ref_hidden, ref_weight, targets,
                              block_v=block_v, inv_temperature=inv_temperature,
                              with_ref=kl_mode is not None)
    return _online.online_update(state, z, b, valid, None)

  state = _online.init_state(t, acc, want_entropy=want_entropy, kl_mode=kl_mode,
                             want_mean_logprob=want_mean_logprob)
  state = _vma.varying_like(state, hidden, weight, targets, ref_hidden, ref_weight)
  state = jax.lax.fori_loop(0, num_blocks, body, state)
  state["y"] = _target_logits(hidden, weight, targets, inv_temperature)
  if kl_mode is not None:
    state["yb"] = _target_logits(ref_hidden, ref_weight, targets, inv_temperature)
  stats = _online.finalize(state, kl_mode, vocab_size=weight.shape[1])
  return jnp.concatenate([stats[k] for k in range(_online.NUM_STATS)], axis=1)


def xla_backward(hidden, weight, targets, ref_hidden, ref_weight, rows, *,
                 inv_temperature: float, want_entropy: bool, kl_mode: Optional[str],
                 want_mean_logprob: bool = False,
                 block_v: Optional[int] = None) -> tuple[jax.Array, jax.Array]:
  """``(d hidden, d weight)`` from the packed ``[T, w]`` stats + cotangent rows."""
  acc = _online.accumulator_dtype(hidden.dtype)
  block_v, num_blocks = _block(weight.shape[1], block_v, hidden.shape[0])
  inv_vocab = 1.0 / weight.shape[1] if want_mean_logprob else None

  def body(j, carry):
    d_hidden, d_weight = carry
    start, w_tile, z, b, valid = _tile(
        j, hidden, weight, ref_hidden, ref_weight, targets, block_v=block_v,
        inv_temperature=inv_temperature, with_ref=kl_mode == "full")
    # dW needs every column of the clamped tile (overlap columns are rewritten with
    # identical values); dh must count each column once.
    all_cols = jnp.ones_like(valid)
    g = _online.dlogits(z, b, all_cols, None, rows, want_entropy=want_entropy,
                        kl_mode=kl_mode, inv_vocab=inv_vocab) * inv_temperature
    dw_tile = jnp.dot(hidden_t, g.astype(hidden.dtype), preferred_element_type=acc)
    d_weight = jax.lax.dynamic_update_slice_in_dim(d_weight, dw_tile.astype(weight.dtype),
                                                   start, axis=1)
    g_once = jnp.where(valid, g, 0).astype(hidden.dtype)
    d_hidden = d_hidden + jax.lax.dot_general(g_once, w_tile, (((1,), (1,)), ((), ())),
                                              preferred_element_type=acc)
    return d_hidden, d_weight

  # [D, T] once, so dW tiles are plain (NN) matmuls: XLA:CPU's fast dot path skips
  # contractions over the leading dim of both operands.
  hidden_t = hidden.T
  init = _vma.varying_like((jnp.zeros(hidden.shape, acc), jnp.zeros(weight.shape, weight.dtype)),
                       hidden, weight, targets, ref_hidden, ref_weight, rows)
  d_hidden, d_weight = jax.lax.fori_loop(0, num_blocks, body, init)
  # The c1 * onehot part of dz: dh_t += c1_t W[:, y_t],  dW[:, y_t] += c1_t h_t.
  c1 = _online.column(rows, _online.C1).astype(acc) * inv_temperature  # [T, 1]
  w_y = jnp.take(weight, targets, axis=1).astype(acc)  # [D, T]
  d_hidden = d_hidden + c1 * w_y.T
  d_weight = d_weight.at[:, targets].add((hidden.astype(acc) * c1).T.astype(weight.dtype))
  return d_hidden.astype(hidden.dtype), d_weight

"""Pallas Mosaic (TPU) backend.

Forward: grid ``(T / block_t, V / block_v)``; the vocabulary axis is last and
``"arbitrary"`` (sequential), the online accumulators live in VMEM scratch and
the per-token statistics are written lane-dense as ``[block_t, 128]`` on the last
vocabulary step. Backward ("split" strategy, each recomputes the logits tile):
``d hidden`` on grid ``(T/bt, V/bv)`` reducing over V into a ``[bt, D]`` scratch,
and ``d weight`` on grid ``(V/bv, T/bt)`` reducing over T into a ``[D, bv]``
scratch. Blocks are multiples of (8, 128); ``D`` is one full block. T is padded
to ``block_t`` (a copy of ``hidden`` only); a ragged last vocabulary block is not
padded but masked, logits and weight tile both (out-of-bounds data is garbage).
"""

import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu

from kernels_pallas import _online
from kernels_pallas import _padding
from kernels_pallas import _vma

DEFAULT_BLOCK_T = 256
DEFAULT_BLOCK_V = 512
LANES = 128  # width of the packed per-row arrays (one lane tile)


def _blocks(t: int, v: int, block_t: int, block_v: int) -> tuple[int, int, int]:
  if block_t % 8:
    raise ValueError(f"block_t must be a multiple of 8 for the TPU kernel, got {block_t}")
  if block_v % 128:
    raise ValueError(f"block_v must be a multiple of 128 for the TPU kernel, got {block_v}")
  bt = min(block_t, _padding.round_up(t, 8))
  bv = min(block_v, _padding.round_up(v, 128))
  return bt, bv, _padding.round_up(t, bt)


def _tile_logits(h_ref, w_ref, hr_ref, wr_ref, j, *, bv, vocab, inv_temperature, acc):
  """Logits tile for vocab block ``j``: (z, b or None, valid [bt, bv], w_tile)."""
  h = h_ref[...]
  w = w_ref[...].astype(h.dtype)  # weight tiles are computed in hidden's dtype
  z = jnp.dot(h, w, preferred_element_type=acc) * inv_temperature
  col = j * bv + jax.lax.broadcasted_iota(jnp.int32, z.shape, 1)
  valid = col < vocab
  b = None
  if hr_ref is not None:
    hr = hr_ref[...]
    b = jnp.dot(hr, wr_ref[...].astype(hr.dtype), preferred_element_type=acc) * inv_temperature
  return z, b, valid, col


def _forward_kernel(*refs, keys, with_ref, bv, vocab, inv_temperature, want_entropy, kl_mode,
                    acc):
  h_ref, w_ref, y_ref = refs[:3]
  hr_ref, wr_ref = refs[3:5] if with_ref else (None, None)
  rest = refs[5:] if with_ref else refs[3:]
  out_ref, scratch = rest[0], dict(zip(keys, rest[1:]))
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    for k, ref in scratch.items():
      ref[...] = jnp.full(ref.shape, _online.NEG_INF if k in ("m", "mb") else 0, ref.dtype)

  z, b, valid, col = _tile_logits(h_ref, w_ref, hr_ref, wr_ref, j, bv=bv, vocab=vocab,
                                  inv_temperature=inv_temperature, acc=acc)
  onehot = col == y_ref[...]
  state = _online.online_update({k: r[...] for k, r in scratch.items()}, z, b, valid, onehot)
  for k, ref in scratch.items():
    ref[...] = state[k]

  @pl.when(j == pl.num_programs(1) - 1)
  def _finish():
    stats = _online.finalize(state, kl_mode, vocab_size=vocab)
    out_ref[...] = _online.pack_columns(stats, out_ref.shape[0], LANES, out_ref.dtype)


def tpu_forward(hidden, weight, targets, ref_hidden, ref_weight, *, inv_temperature: float,
                want_entropy: bool, kl_mode: Optional[str], want_mean_logprob: bool = False,
                block_t: int = DEFAULT_BLOCK_T, block_v: int = DEFAULT_BLOCK_V,
                interpret: bool = False) -> jax.Array:
  """``[T, NUM_STATS]`` per-token statistics (see ``_online``)."""
  vma_inputs = (hidden, weight, targets, ref_hidden, ref_weight)  # shard_map types
  t, d = hidden.shape
  v = weight.shape[1]
  acc = _online.accumulator_dtype(hidden.dtype)
  bt, bv, t_pad = _blocks(t, v, block_t, block_v)
  with_ref = kl_mode is not None
  keys = tuple(_online.init_state(1, acc, want_entropy=want_entropy, kl_mode=kl_mode,
                                  want_mean_logprob=want_mean_logprob))
  args = [_padding.pad_rows(hidden, t_pad), weight, _padding.pad_rows(targets[:, None], t_pad)]
  in_specs = [pl.BlockSpec((bt, d), lambda i, j: (i, 0)),
              pl.BlockSpec((d, bv), lambda i, j: (0, j)),
              pl.BlockSpec((bt, 1), lambda i, j: (i, 0))]
  if with_ref:
    dr = ref_hidden.shape[1]
    args += [_padding.pad_rows(ref_hidden, t_pad), ref_weight]
    in_specs += [pl.BlockSpec((bt, dr), lambda i, j: (i, 0)),
                 pl.BlockSpec((dr, bv), lambda i, j: (0, j))]
  kernel = functools.partial(_forward_kernel, keys=keys, with_ref=with_ref, bv=bv, vocab=v,
                             inv_temperature=inv_temperature, want_entropy=want_entropy,
                             kl_mode=kl_mode, acc=acc)
  packed = pl.pallas_call(
      kernel,
      out_shape=_vma.shape_dtype_struct((t_pad, LANES), acc, *vma_inputs),
      grid=(t_pad // bt, _padding.cdiv(v, bv)),
      in_specs=in_specs,
      out_specs=pl.BlockSpec((bt, LANES), lambda i, j: (i, 0)),
      scratch_shapes=[pltpu.VMEM((bt, 1), acc) for _ in keys],
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
      interpret=interpret,
      name="fused_logprobs_fwd",
  )(*args)
  return packed[:t, :_online.NUM_STATS]


def _dlogits_tile(h_ref, w_ref, y_ref, rows_ref, hr_ref, wr_ref, j, *, bv, vocab,
                  inv_temperature, want_entropy, kl_mode, inv_vocab, acc):
  z, b, valid, col = _tile_logits(h_ref, w_ref, hr_ref, wr_ref, j, bv=bv, vocab=vocab,
                                  inv_temperature=inv_temperature, acc=acc)
  g = _online.dlogits(z, b, valid, col == y_ref[...], rows_ref[...],
                      want_entropy=want_entropy, kl_mode=kl_mode, inv_vocab=inv_vocab)
  return g * inv_temperature


def _backward_kernel(*refs, wrt, with_ref, bv, vocab, inv_temperature, want_entropy, kl_mode,
                     inv_vocab, acc):
  h_ref, w_ref, y_ref, rows_ref = refs[:4]
  hr_ref, wr_ref = refs[4:6] if with_ref else (None, None)
  out_ref, acc_ref = refs[6:] if with_ref else refs[4:]
  # d hidden: grid (token block i, vocab block j); d weight: grid (j, i).
  j = pl.program_id(1) if wrt == "hidden" else pl.program_id(0)
  reduce_step = pl.program_id(1)

  @pl.when(reduce_step == 0)
  def _init():
    acc_ref[...] = jnp.zeros(acc_ref.shape, acc_ref.dtype)

  g = _dlogits_tile(h_ref, w_ref, y_ref, rows_ref, hr_ref, wr_ref, j, bv=bv, vocab=vocab,
                    inv_temperature=inv_temperature, want_entropy=want_entropy,
                    kl_mode=kl_mode, inv_vocab=inv_vocab, acc=acc)
  if wrt == "hidden":
    w = w_ref[...].astype(h_ref.dtype)
    col = j * bv + jax.lax.broadcasted_iota(jnp.int32, w.shape, 1)
    w = jnp.where(col < vocab, w, 0)  # out-of-bounds columns may hold NaN: 0 * NaN = NaN
    acc_ref[...] += jax.lax.dot_general(g.astype(w.dtype), w, (((1,), (1,)), ((), ())),
                                        preferred_element_type=acc)
  else:
    h = h_ref[...]
    acc_ref[...] += jax.lax.dot_general(h, g.astype(h.dtype), (((0,), (0,)), ((), ())),
                                        preferred_element_type=acc)

  @pl.when(reduce_step == pl.num_programs(1) - 1)
  def _finish():
    out_ref[...] = acc_ref[...].astype(out_ref.dtype)


def tpu_backward(hidden, weight, targets, ref_hidden, ref_weight, rows, *,
                 inv_temperature: float, want_entropy: bool, kl_mode: Optional[str],
                 want_mean_logprob: bool = False, block_t: int = DEFAULT_BLOCK_T,
                 block_v: int = DEFAULT_BLOCK_V,
                 interpret: bool = False) -> tuple[jax.Array, jax.Array]:
  """``(d hidden, d weight)`` from packed per-row stats + cotangent coefficients."""
  vma_inputs = (hidden, weight, targets, ref_hidden, ref_weight, rows)  # shard_map types
  t, d = hidden.shape
  v = weight.shape[1]
  acc = _online.accumulator_dtype(hidden.dtype)
  bt, bv, t_pad = _blocks(t, v, block_t, block_v)
  nt, nv = t_pad // bt, _padding.cdiv(v, bv)
  with_ref = kl_mode == "full"  # only the exact KL needs the reference logits per column
  args = [_padding.pad_rows(hidden, t_pad), weight, _padding.pad_rows(targets[:, None], t_pad),
          _padding.pad_rows(_padding.pad_cols(rows.astype(acc), LANES), t_pad)]
  if with_ref:
    args += [_padding.pad_rows(ref_hidden, t_pad), ref_weight]
  common = dict(with_ref=with_ref, bv=bv, vocab=v, inv_temperature=inv_temperature,
                want_entropy=want_entropy, kl_mode=kl_mode,
                inv_vocab=1.0 / v if want_mean_logprob else None, acc=acc)

  def specs(tok, voc):
    """Block specs given index functions (grid ids) -> token / vocab block index."""
    s = [pl.BlockSpec((bt, d), lambda a, c: (tok(a, c), 0)),
         pl.BlockSpec((d, bv), lambda a, c: (0, voc(a, c))),
         pl.BlockSpec((bt, 1), lambda a, c: (tok(a, c), 0)),
         pl.BlockSpec((bt, LANES), lambda a, c: (tok(a, c), 0))]
    if with_ref:
      dr = ref_hidden.shape[1]
      s += [pl.BlockSpec((bt, dr), lambda a, c: (tok(a, c), 0)),
            pl.BlockSpec((dr, bv), lambda a, c: (0, voc(a, c)))]
    return s

  params = pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary"))
  d_hidden = pl.pallas_call(
      functools.partial(_backward_kernel, wrt="hidden", **common),
      out_shape=_vma.shape_dtype_struct((t_pad, d), hidden.dtype, *vma_inputs),
      grid=(nt, nv),
      in_specs=specs(lambda i, j: i, lambda i, j: j),
      out_specs=pl.BlockSpec((bt, d), lambda i, j: (i, 0)),
      scratch_shapes=[pltpu.VMEM((bt, d), acc)],
      compiler_params=params, interpret=interpret, name="fused_logprobs_bwd_hidden",
  )(*args)
  d_weight = pl.pallas_call(
      functools.partial(_backward_kernel, wrt="weight", **common),
      out_shape=_vma.shape_dtype_struct((d, v), weight.dtype, *vma_inputs),
      grid=(nv, nt),
      in_specs=specs(lambda j, i: i, lambda j, i: j),
      out_specs=pl.BlockSpec((d, bv), lambda j, i: (0, j)),
      scratch_shapes=[pltpu.VMEM((d, bv), acc)],
      compiler_params=params, interpret=interpret, name="fused_logprobs_bwd_weight",
  )(*args)
  return d_hidden[:t], d_weight

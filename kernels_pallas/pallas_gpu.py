"""Pallas Triton (GPU) backend.

A Triton grid is fully parallel, so every reduction is an in-kernel
``fori_loop``. Forward: one program per token block, looping over vocabulary
blocks of the whole-array weight. Backward ("split"): ``d hidden`` with one
program per token block looping over the vocabulary, and ``d weight`` with one
program per vocabulary block looping over tokens; both recompute the logits
tile. Every in-kernel array must have a power-of-two size, so ``block_t`` and
``block_v`` are powers of two >= 16 and a ``D`` that is not a power of two is
zero-padded (which copies the weight; zero rows do not change the logits). A
ragged last vocabulary block is read and written with masked loads / stores.
"""

import functools
from typing import Optional

import jax
import jax.numpy as jnp
from jax.experimental import pallas as pl
from jax.experimental.pallas import triton as pltriton

from kernels_pallas import _online
from kernels_pallas import _padding
from kernels_pallas import _vma

DEFAULT_BLOCK_T = 32  # untuned: no GPU was available to tune on
DEFAULT_BLOCK_V = 128
ROW_WIDTH = _online.MIN_ROW_WIDTH


def _next_pow2(x: int) -> int:
  return 1 << max(0, (x - 1).bit_length())


def _is_pow2_at_least_16(x: int) -> bool:
  return x >= 16 and x & (x - 1) == 0


def _blocks(t: int, v: int, block_t: int, block_v: int) -> tuple[int, int, int]:
  for name, value in (("block_t", block_t), ("block_v", block_v)):
    if not _is_pow2_at_least_16(value):
      raise ValueError(f"{name} must be a power of two >= 16 for the GPU kernel, got {value}")
  bt = min(block_t, max(16, _next_pow2(t)))
  bv = min(block_v, max(16, _next_pow2(v)))
  return bt, bv, _padding.round_up(t, bt)


def _pad_depth(h, w):
  """Zero-pads the contraction dim ``D`` to a power of two >= 16 (None passes through)."""
  if h is None:
    return h, w
  d = h.shape[1]
  dp = max(16, _next_pow2(d))
  if dp == d:
    return h, w
  return _padding.pad_cols(h, dp), _padding.pad_rows(w, dp)


def _dot(a, b, dims, acc):
  precision = jax.lax.Precision.HIGHEST if a.dtype == jnp.float32 else None  # no TF32
  return jax.lax.dot_general(a, b, (dims, ((), ())), precision=precision,
                             preferred_element_type=acc)


_NN = ((1,), (0,))
_NT = ((1,), (1,))
_TN = ((0,), (0,))


def _index(i):
  """An index in the default int dtype, like the implicit 0 of a ``:`` slice (int64 under x64)."""
  return jnp.asarray(i).astype(jax.dtypes.canonicalize_dtype(jnp.int64))


def _load_cols(ref, j, bv, vocab):
  """``ref[:, j*bv : (j+1)*bv]`` with out-of-range columns read as 0; also the mask."""
  col = j * bv + jax.lax.broadcasted_iota(jnp.int32, (ref.shape[0], bv), 1)
  valid = col < vocab
  return pltriton.load(ref.at[:, pl.ds(j * bv, bv)], mask=valid, other=0), valid, col


def _logits(h, w_ref, hr, wr_ref, j, *, bv, vocab, inv_temperature, acc):
  w = _load_cols(w_ref, j, bv, vocab)[0].astype(h.dtype)  # computed in hidden's dtype
  z = _dot(h, w, _NN, acc) * inv_temperature
  col = j * bv + jax.lax.broadcasted_iota(jnp.int32, z.shape, 1)
  b = None
  if hr is not None:
    wr = _load_cols(wr_ref, j, bv, vocab)[0].astype(hr.dtype)
    b = _dot(hr, wr, _NN, acc) * inv_temperature
  return z, b, col < vocab, col, w


def _forward_kernel(*refs, with_ref, bv, vocab, num_v_blocks, inv_temperature, want_entropy,
                    kl_mode, want_mean_logprob, acc):
  h_ref, w_ref, y_ref = refs[:3]
  hr_ref, wr_ref = refs[3:5] if with_ref else (None, None)
  out_ref = refs[-1]
  h = h_ref[...]
  y = y_ref[...]
  hr = hr_ref[...] if with_ref else None

  def body(j, state):
    z, b, valid, col, _ = _logits(h, w_ref, hr, wr_ref, j, bv=bv, vocab=vocab,
                                  inv_temperature=inv_temperature, acc=acc)
    return _online.online_update(state, z, b, valid, col == y)

  state = _online.init_state(h.shape[0], acc, want_entropy=want_entropy, kl_mode=kl_mode,
                             want_mean_logprob=want_mean_logprob)
  state = jax.lax.fori_loop(0, num_v_blocks, body, state)
  stats = _online.finalize(state, kl_mode, vocab_size=vocab)
  out_ref[...] = _online.pack_columns(stats, h.shape[0], ROW_WIDTH, out_ref.dtype)


def _compiler_params():
  return pltriton.CompilerParams(num_warps=4, num_stages=2)


def gpu_forward(hidden, weight, targets, ref_hidden, ref_weight, *, inv_temperature: float,
                want_entropy: bool, kl_mode: Optional[str], want_mean_logprob: bool = False,
                block_t: int = DEFAULT_BLOCK_T, block_v: int = DEFAULT_BLOCK_V,
                interpret: bool = False) -> jax.Array:
  """``[T, NUM_STATS]`` per-token statistics (see ``_online``)."""
  vma_inputs = (hidden, weight, targets, ref_hidden, ref_weight)  # shard_map types
  t = hidden.shape[0]
  v = weight.shape[1]
  acc = _online.accumulator_dtype(hidden.dtype)
  bt, bv, t_pad = _blocks(t, v, block_t, block_v)
  with_ref = kl_mode is not None
  hidden, weight = _pad_depth(hidden, weight)
  d = hidden.shape[1]
  args = [_padding.pad_rows(hidden, t_pad), weight, _padding.pad_rows(targets[:, None], t_pad)]
  in_specs = [pl.BlockSpec((bt, d), lambda i: (i, 0)),
              pl.BlockSpec((d, v), lambda i: (0, 0)),
              pl.BlockSpec((bt, 1), lambda i: (i, 0))]
  if with_ref:
    ref_hidden, ref_weight = _pad_depth(ref_hidden, ref_weight)
    dr = ref_hidden.shape[1]
    args += [_padding.pad_rows(ref_hidden, t_pad), ref_weight]
    in_specs += [pl.BlockSpec((bt, dr), lambda i: (i, 0)), pl.BlockSpec((dr, v), lambda i: (0, 0))]
  kernel = functools.partial(_forward_kernel, with_ref=with_ref, bv=bv, vocab=v,
                             num_v_blocks=_padding.cdiv(v, bv), inv_temperature=inv_temperature,
                             want_entropy=want_entropy, kl_mode=kl_mode,
                             want_mean_logprob=want_mean_logprob, acc=acc)
  packed = pl.pallas_call(
      kernel,
      out_shape=_vma.shape_dtype_struct((t_pad, ROW_WIDTH), acc, *vma_inputs),
      grid=(t_pad // bt,),
      in_specs=in_specs,
      out_specs=pl.BlockSpec((bt, ROW_WIDTH), lambda i: (i, 0)),
      compiler_params=_compiler_params(), interpret=interpret, name="fused_logprobs_fwd",
  )(*args)
  return packed[:t, :_online.NUM_STATS]


def _hidden_grad_kernel(*refs, with_ref, bv, vocab, num_v_blocks, inv_temperature,
                        want_entropy, kl_mode, inv_vocab, acc):
  h_ref, w_ref, y_ref, rows_ref = refs[:4]
  hr_ref, wr_ref = refs[4:6] if with_ref else (None, None)
  out_ref = refs[-1]
  h, y, rows = h_ref[...], y_ref[...], rows_ref[...]
  hr = hr_ref[...] if with_ref else None

  def body(j, d_hidden):
    z, b, valid, col, w = _logits(h, w_ref, hr, wr_ref, j, bv=bv, vocab=vocab,
                                  inv_temperature=inv_temperature, acc=acc)
    g = _online.dlogits(z, b, valid, col == y, rows, want_entropy=want_entropy,
                        kl_mode=kl_mode, inv_vocab=inv_vocab) * inv_temperature
    return d_hidden + _dot(g.astype(w.dtype), w, _NT, acc)  # w is 0 outside the vocab

  d_hidden = jax.lax.fori_loop(0, num_v_blocks, body, jnp.zeros(h.shape, acc))
  out_ref[...] = d_hidden.astype(out_ref.dtype)


def _weight_grad_kernel(*refs, with_ref, bt, bv, vocab, num_t_blocks, inv_temperature,
                        want_entropy, kl_mode, inv_vocab, acc):
  h_ref, w_ref, y_ref, rows_ref = refs[:4]
  hr_ref, wr_ref = refs[4:6] if with_ref else (None, None)
  out_ref = refs[-1]
  j = _index(pl.program_id(0))
  w, valid_w, _ = _load_cols(w_ref, j, bv, vocab)
  w = w.astype(h_ref.dtype)
  wr = _load_cols(wr_ref, j, bv, vocab)[0].astype(hr_ref.dtype) if with_ref else None

  def body(i, d_weight):
    rows_sl = pl.ds(i * bt, bt)
    h = h_ref[rows_sl, :]
    z = _dot(h, w, _NN, acc) * inv_temperature
    col = j * bv + jax.lax.broadcasted_iota(jnp.int32, z.shape, 1)
    b = _dot(hr_ref[rows_sl, :], wr, _NN, acc) * inv_temperature if with_ref else None
    g = _online.dlogits(z, b, col < vocab, col == y_ref[rows_sl, :], rows_ref[rows_sl, :],
                        want_entropy=want_entropy, kl_mode=kl_mode,
                        inv_vocab=inv_vocab) * inv_temperature
    return d_weight + _dot(h, g.astype(h.dtype), _TN, acc)

  d_weight = jax.lax.fori_loop(0, num_t_blocks, body, jnp.zeros(w.shape, acc))
  pltriton.store(out_ref.at[:, pl.ds(j * bv, bv)], d_weight.astype(out_ref.dtype), mask=valid_w)


def gpu_backward(hidden, weight, targets, ref_hidden, ref_weight, rows, *,
                 inv_temperature: float, want_entropy: bool, kl_mode: Optional[str],
                 want_mean_logprob: bool = False, block_t: int = DEFAULT_BLOCK_T,
                 block_v: int = DEFAULT_BLOCK_V,
                 interpret: bool = False) -> tuple[jax.Array, jax.Array]:
  """``(d hidden, d weight)`` from packed per-row stats + cotangent coefficients."""
  vma_inputs = (hidden, weight, targets, ref_hidden, ref_weight, rows)  # shard_map types
  t, d_orig = hidden.shape
  v = weight.shape[1]
  acc = _online.accumulator_dtype(hidden.dtype)
  bt, bv, t_pad = _blocks(t, v, block_t, block_v)
  nt, nv = t_pad // bt, _padding.cdiv(v, bv)
  with_ref = kl_mode == "full"  # only the exact KL needs the reference logits per column
  hidden, weight = _pad_depth(hidden, weight)
  d = hidden.shape[1]
  args = [_padding.pad_rows(hidden, t_pad), weight, _padding.pad_rows(targets[:, None], t_pad),
          _padding.pad_rows(rows.astype(acc), t_pad)]
  whole = lambda x: pl.BlockSpec(x.shape, lambda *_: (0, 0))
  if with_ref:
    ref_hidden, ref_weight = _pad_depth(ref_hidden, ref_weight)
    args += [_padding.pad_rows(ref_hidden, t_pad), ref_weight]
  common = dict(with_ref=with_ref, bv=bv, vocab=v, inv_temperature=inv_temperature,
                want_entropy=want_entropy, kl_mode=kl_mode,
                inv_vocab=1.0 / v if want_mean_logprob else None, acc=acc)

  by_token = [pl.BlockSpec((bt, d), lambda i: (i, 0)), whole(weight),
              pl.BlockSpec((bt, 1), lambda i: (i, 0)),
              pl.BlockSpec((bt, ROW_WIDTH), lambda i: (i, 0))]
  if with_ref:
    by_token += [pl.BlockSpec((bt, ref_hidden.shape[1]), lambda i: (i, 0)), whole(ref_weight)]
  d_hidden = pl.pallas_call(
      functools.partial(_hidden_grad_kernel, num_v_blocks=nv, **common),
      out_shape=_vma.shape_dtype_struct((t_pad, d), hidden.dtype, *vma_inputs),
      grid=(nt,), in_specs=by_token,
      out_specs=pl.BlockSpec((bt, d), lambda i: (i, 0)),
      compiler_params=_compiler_params(), interpret=interpret,
      name="fused_logprobs_bwd_hidden",
  )(*args)
  d_weight = pl.pallas_call(
      functools.partial(_weight_grad_kernel, bt=bt, num_t_blocks=nt, **common),
      out_shape=_vma.shape_dtype_struct((d, v), weight.dtype, *vma_inputs),
      grid=(nv,), in_specs=[whole(a) for a in args],
      out_specs=pl.BlockSpec((d, v), lambda j: (0, 0)),
      compiler_params=_compiler_params(), interpret=interpret,
      name="fused_logprobs_bwd_weight",
  )(*args)
  return d_hidden[:t, :d_orig], d_weight[:d_orig]

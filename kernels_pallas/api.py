"""Public entry point: ``fused_logprobs`` with one ``custom_vjp`` over backends."""

import dataclasses
import functools
import warnings
from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

from kernels_pallas import _online
from kernels_pallas import _vma
from kernels_pallas import reference as reference_lib
from kernels_pallas import xla as xla_lib

IMPLS = ("auto", "reference", "xla", "tpu", "gpu")


class FusedOutput(NamedTuple):
  """Per-token outputs, each ``[T]`` in the accumulator dtype (f32 for bf16/f32 inputs).

  Attributes:
    logprobs: ``log p(y_t)`` under the policy (temperature applied).
    entropy: ``H(p_t)`` over the full vocabulary, or None unless ``want_entropy``.
    kl: ``k3`` estimate or exact ``KL(p_t || q_t)``, or None unless ``want_kl``.
    ref_logprobs: ``log q(y_t)`` under the reference head (no gradient), or None
      unless ``want_kl``; computed for free alongside the KL.
    mean_logprob: ``(1/V) sum_v log p_t(v)`` over the whole vocabulary, or None
      unless ``want_mean_logprob``.
  """
  logprobs: jax.Array
  entropy: Optional[jax.Array]
  kl: Optional[jax.Array]
  ref_logprobs: Optional[jax.Array]
  mean_logprob: Optional[jax.Array] = None


@dataclasses.dataclass(frozen=True)
class _Config:
  impl: str
  inv_temperature: float
  want_entropy: bool
  kl_mode: Optional[str]
  want_mean_logprob: bool
  block_t: Optional[int]
  block_v: Optional[int]
  interpret: bool


def _default_platform() -> str:
  """Platform of the default device ('cpu', 'gpu', 'tpu'); patched in tests."""
  return jax.default_backend()


def _backend_fns(impl: str):
  if impl == "xla":
    return xla_lib.xla_forward, xla_lib.xla_backward
  if impl == "tpu":
    from kernels_pallas import pallas_tpu  # pylint: disable=g-import-not-at-top
    return pallas_tpu.tpu_forward, pallas_tpu.tpu_backward
  if impl == "gpu":
    from kernels_pallas import pallas_gpu  # pylint: disable=g-import-not-at-top
    return pallas_gpu.gpu_forward, pallas_gpu.gpu_backward
  raise ValueError(f"impl: unknown backend {impl!r}")


def _kwargs(cfg: _Config) -> dict:
  kw = dict(inv_temperature=cfg.inv_temperature, want_entropy=cfg.want_entropy,
            kl_mode=cfg.kl_mode, want_mean_logprob=cfg.want_mean_logprob)
  if cfg.block_v is not None:
    kw["block_v"] = cfg.block_v
  if cfg.impl in ("tpu", "gpu"):
    kw["interpret"] = cfg.interpret
    if cfg.block_t is not None:
      kw["block_t"] = cfg.block_t
  return kw


def _rows(stats: jax.Array, cotangent: jax.Array, kl_mode: Optional[str]) -> jax.Array:
  """``[T, 16]``: stats in columns 0..6, the coefficients in C1, G_ENTROPY, G_KL, G_MEAN."""
  t = stats.shape[0]
  c1 = _online.c1_coefficient(stats[:, _online.LOGP], stats[:, _online.REF_LOGP],
                              cotangent[:, _online.LOGP], cotangent[:, _online.KL], kl_mode)
  g = jnp.stack([c1, cotangent[:, _online.ENTROPY], cotangent[:, _online.KL],
                 cotangent[:, _online.MEAN_LOGP]], axis=1)
  pad = _online.MIN_ROW_WIDTH - _online.G_MEAN - 1
  return jnp.concatenate([stats, jnp.zeros((t, _online.C1 - _online.NUM_STATS), stats.dtype),
                          g.astype(stats.dtype), jnp.zeros((t, pad), stats.dtype)], axis=1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused_stats(cfg: _Config, hidden, weight, targets, ref_hidden, ref_weight):
  forward, _ = _backend_fns(cfg.impl)
  stats = forward(hidden, weight, targets, ref_hidden, ref_weight, **_kwargs(cfg))
  if cfg.kl_mode == "k3":
    stats = stats.at[:, _online.KL].set(
        _online.k3_from_logprobs(stats[:, _online.LOGP], stats[:, _online.REF_LOGP]))
  return stats


def _fused_stats_fwd(cfg, hidden, weight, targets, ref_hidden, ref_weight):
  stats = _fused_stats(cfg, hidden, weight, targets, ref_hidden, ref_weight)
  # Residuals: the inputs (already live) and per-token statistics only.
  return stats, (hidden, weight, targets, ref_hidden, ref_weight, stats)


def _fused_stats_bwd(cfg, residuals, cotangent):
  hidden, weight, targets, ref_hidden, ref_weight, stats = residuals
  _, backward = _backend_fns(cfg.impl)
  d_hidden, d_weight = backward(hidden, weight, targets, ref_hidden, ref_weight,
                                _rows(stats, cotangent, cfg.kl_mode), **_kwargs(cfg))
  # Inside shard_map, partial gradients from other shards are summed (vocab-parallel use).
  d_hidden = _vma.sum_to_primal(d_hidden, hidden)
  d_weight = _vma.sum_to_primal(d_weight, weight)
  # Integer targets and the frozen reference model get no cotangent.
  return d_hidden, d_weight, None, None, None


_fused_stats.defvjp(_fused_stats_fwd, _fused_stats_bwd)


@functools.cache
def _pallas_kernel_usable(cfg: _Config, shapes: tuple, platform: str) -> bool:
  """Compiles forward and backward once per config and shapes; warns (once) if that fails."""
  forward, backward = _backend_fns(cfg.impl)
  args = [None if s is None else jax.ShapeDtypeStruct(*s) for s in shapes]
  t = shapes[0][0][0]
  acc = _online.accumulator_dtype(shapes[0][1])
  rows = jax.ShapeDtypeStruct((t, _online.MIN_ROW_WIDTH), acc)
  try:
    jax.jit(functools.partial(forward, **_kwargs(cfg))).lower(*args).compile()
    jax.jit(functools.partial(backward, **_kwargs(cfg))).lower(*args, rows).compile()
  except Exception as e:  # pylint: disable=broad-except  # NotImplementedError, lowering, VMEM OOM
    warnings.warn(f"kernels_pallas.fused_logprobs: the {cfg.impl!r} kernel failed to compile "
                  f"for shapes {shapes} on {platform!r}; falling back to impl='xla'. "
                  f"{type(e).__name__}: {str(e)[:500]}", RuntimeWarning, stacklevel=2)
    return False
  return True


def _shape_key(*arrays) -> tuple:
  return tuple(None if a is None else (tuple(a.shape), jnp.dtype(a.dtype)) for a in arrays)


def _resolve_impl(cfg: _Config, arrays) -> _Config:
  """``auto`` -> the platform's kernel if it compiles here, else ``xla``."""
  if cfg.impl != "auto":
    return cfg
  platform = _default_platform()
  candidate = {"tpu": "tpu", "gpu": "gpu", "cuda": "gpu", "rocm": "gpu"}.get(platform, "xla")
  if candidate != "xla":
    pallas_cfg = dataclasses.replace(cfg, impl=candidate, interpret=False)
    if _pallas_kernel_usable(pallas_cfg, _shape_key(*arrays), platform):
      return pallas_cfg
  # The Pallas block sizes do not apply to the chunked path; keep block_v only if valid there.
  return dataclasses.replace(cfg, impl="xla", block_t=None,
                             block_v=cfg.block_v if candidate == "xla" else None)


def _check_block(value, name):
  if value is not None and (not isinstance(value, int) or value <= 0):
    raise ValueError(f"{name} must be a positive int or None, got {value!r}")


def fused_logprobs(hidden: jax.Array, weight: jax.Array, targets: jax.Array, *,
                   temperature: float = 1.0, ref_hidden: Optional[jax.Array] = None,
                   ref_weight: Optional[jax.Array] = None, want_entropy: bool = False,
                   want_kl: Optional[str] = None, want_mean_logprob: bool = False,
                   impl: str = "auto", block_t: Optional[int] = None,
                   block_v: Optional[int] = None, interpret: bool = False) -> FusedOutput:
  """Per-token log-prob, entropy and KL of ``softmax(h W / tau)`` without ``[T, V]`` logits.

  With ``z_t = h_t W / tau`` and ``b_t = h_ref_t W_ref / tau`` (same temperature)::

      logprobs_t = z_{t,y_t} - logsumexp(z_t)
      entropy_t  = -sum_v p_tv log p_tv
      kl_t       = exp(r_t) - 1 - r_t, r_t = log q(y_t) - log p(y_t)      (want_kl="k3")
                 = sum_v p_tv (log p_tv - log q_tv)                       (want_kl="full")
      mean_logprob_t = (1/V) sum_v log p_tv = mean_v z_tv - logsumexp(z_t)
                                       (want_mean_logprob; d/dz_tv = 1/V - p_tv)

  ``k3`` is Schulman's (2020) low-variance estimator of ``KL(p || q)`` for
  ``y ~ p``. The logits are computed one ``[block_t, block_v]`` tile at a time with
  an online logsumexp (Milakov & Gimelshein 2018); the backward (a ``custom_vjp``)
  saves only per-token statistics and recomputes each tile, as in the fused
  linear-cross-entropy kernels of Liger/verl and tokamax. Any cotangent on the
  outputs works; gradients flow to ``hidden`` and ``weight`` only (the reference
  head is a constant). Only first-order reverse-mode differentiation is supported.
  The temperature multiplies the float32 logits tile, which equals folding ``1/tau``
  into ``hidden`` without rounding ``h/tau`` to bf16.

  Args:
    hidden: ``[T, D]`` final hidden states (f32/bf16; accumulation is f32, or f64
      for f64 inputs). Its dtype is the compute dtype: weight tiles are cast to it.
    weight: ``[D, V]`` vocabulary head (the transposed embedding when tied).
    targets: ``[T]`` int token ids in ``[0, V)``. Values are not checked (they are
      traced); an id outside that range gives an undefined result (NaN for ids >= V).
    temperature: positive Python float ``tau``.
    ref_hidden: ``[T, D_ref]`` reference-model hidden states; defaults to ``hidden``.
    ref_weight: ``[D_ref, V]`` reference head; defaults to ``weight``.
    want_entropy: also return the entropy.
    want_kl: None, ``"k3"`` or ``"full"``; needs ``ref_hidden`` and/or ``ref_weight``.
    want_mean_logprob: also return the mean log-prob over the ``V`` columns of
      ``weight`` (the value statistic of ROVER, arXiv 2509.24981).
    impl: ``"auto"`` (TPU -> ``"tpu"``, GPU -> ``"gpu"``, else ``"xla"``; falls back to
      ``"xla"`` with a warning when the kernel does not compile), ``"xla"`` (chunked
      ``fori_loop``), ``"tpu"`` (Pallas Mosaic), ``"gpu"`` (Pallas Triton) or
      ``"reference"`` (dense, materialises the logits: tests only).
    block_t: token block of the Pallas kernels (TPU: multiple of 8; GPU: power of 2 >= 16).
    block_v: vocabulary block (TPU: multiple of 128; GPU: power of 2 >= 16; XLA: any).
    interpret: run the Pallas kernels in interpret mode (CPU tests).

  Returns:
    :class:`FusedOutput`.
  """
  if impl not in IMPLS:
    raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
  if want_kl not in _online.KL_MODES:
    raise ValueError(f"want_kl must be one of {_online.KL_MODES}, got {want_kl!r}")
  if isinstance(temperature, jax.core.Tracer):
    raise ValueError("temperature must be a concrete Python float (it is static), got a tracer")
  temperature = float(temperature)
  if not temperature > 0:
    raise ValueError(f"temperature must be > 0, got {temperature}")
  _check_block(block_t, "block_t")
  _check_block(block_v, "block_v")
  for name, x in (("hidden", hidden), ("weight", weight), ("ref_hidden", ref_hidden),
                  ("ref_weight", ref_weight)):
    if x is not None and not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name} must be floating point, got {x.dtype}")
  chex.assert_rank(hidden, 2, custom_message="hidden must be [T, D]")
  chex.assert_rank(weight, 2, custom_message="weight must be [D, V]")
  chex.assert_rank(targets, 1, custom_message="targets must be [T]")
  t, d = hidden.shape
  if weight.shape[0] != d:
    raise ValueError(f"weight must be [D={d}, V], got {weight.shape}")
  if targets.shape[0] != t:
    raise ValueError(f"targets must be [T={t}], got {targets.shape}")
  if not jnp.issubdtype(targets.dtype, jnp.integer):
    raise ValueError(f"targets must be integer token ids, got {targets.dtype}")
  if t == 0 or weight.shape[1] == 0:
    raise ValueError(f"hidden/weight need T > 0 and V > 0, got T={t}, V={weight.shape[1]}")
  if want_kl is None:
    ref_hidden = ref_weight = None
  else:
    if ref_hidden is None and ref_weight is None:
      raise ValueError("want_kl needs a reference: pass ref_hidden and/or ref_weight")
    ref_hidden = hidden if ref_hidden is None else ref_hidden
    ref_weight = weight if ref_weight is None else ref_weight
    chex.assert_rank(ref_hidden, 2, custom_message="ref_hidden must be [T, D_ref]")
    chex.assert_rank(ref_weight, 2, custom_message="ref_weight must be [D_ref, V]")
    if ref_hidden.shape[0] != t:
      raise ValueError(f"ref_hidden must have T={t} rows, got {ref_hidden.shape}")
    if ref_weight.shape != (ref_hidden.shape[1], weight.shape[1]):
      raise ValueError(f"ref_weight must be [D_ref={ref_hidden.shape[1]}, "
                       f"V={weight.shape[1]}], got {ref_weight.shape}")
    ref_hidden = jax.lax.stop_gradient(ref_hidden)
    ref_weight = jax.lax.stop_gradient(ref_weight)
  targets = targets.astype(jnp.int32)

  cfg = _Config(impl=impl, inv_temperature=1.0 / temperature, want_entropy=bool(want_entropy),
                kl_mode=want_kl, want_mean_logprob=bool(want_mean_logprob), block_t=block_t,
                block_v=block_v, interpret=bool(interpret))
  arrays = (hidden, weight, targets, ref_hidden, ref_weight)
  if impl == "reference":
    stats = reference_lib.reference_stats(*arrays, inv_temperature=cfg.inv_temperature,
                                          want_entropy=cfg.want_entropy, kl_mode=want_kl,
                                          want_mean_logprob=cfg.want_mean_logprob)
  else:
    cfg = _resolve_impl(cfg, arrays)
    stats = _fused_stats(cfg, *arrays)
  return FusedOutput(
      logprobs=stats[:, _online.LOGP],
      entropy=stats[:, _online.ENTROPY] if want_entropy else None,
      kl=stats[:, _online.KL] if want_kl is not None else None,
      ref_logprobs=stats[:, _online.REF_LOGP] if want_kl is not None else None,
      mean_logprob=stats[:, _online.MEAN_LOGP] if want_mean_logprob else None)


def fused_logprobs_reference(hidden, weight, targets, **kwargs) -> FusedOutput:
  """The dense oracle: ``fused_logprobs(..., impl="reference")`` (materialises logits)."""
  if "impl" in kwargs:
    raise ValueError("fused_logprobs_reference: impl is fixed to 'reference'")
  return fused_logprobs(hidden, weight, targets, impl="reference", **kwargs)

"""`fused_logprobs` for a vocabulary head sharded over a mesh axis (tensor parallel).

A Pallas kernel is an opaque custom call to the SPMD partitioner: handed a
vocab-sharded ``W`` under ``jit`` it would be gathered onto every device. Here
each device runs the fused op on its own ``[D, V/n]`` slice inside `shard_map`,
and the per-token statistics are combined with a few ``[T]``-sized collectives,
so no device ever holds the full head or any ``[T, V]`` logits.

For shard ``l`` with columns ``[o_l, o_l + V_l)``, local logits ``z^l`` and the local
softmax ``p^l`` (``tau`` folded into ``z``):

    lse_l  = z^l_c - logp_l(c)                  (any local column c: the target's when
                                                 y is in l, else a clamped stand-in)
    LSE    = log sum_l exp(lse_l),   w_l = exp(lse_l - LSE)     (shard mass)
    logp   = z_{t,y} - LSE                      (z_{t,y} = sum_l z_{t,y}·1[y in l])
    H      = LSE - sum_l w_l (lse_l - H_l)      (sum_v p_v z_v = sum_l w_l sum p^l z^l)
    KL     = sum_l w_l (KL_l + (lse_l - LSE) - (lse^ref_l - LSE^ref))   ("full")
    k3     = e^r - 1 - r,  r = logq - logp     (from the combined log-probs)
    mlp    = (1/n) sum_l (mlp_l + lse_l) - LSE  (mean log-prob over all V columns:
                                                 mlp_l + lse_l = mean of the local
                                                 logits, n equal shards of V/n)

Each identity is exact; gradients flow through the local kernel's `custom_vjp`
and the collectives (the max used to stabilise ``LSE`` is held constant, which
leaves the value unchanged and the gradient exact).
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence, Union

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from kernels_pallas import _vma
from kernels_pallas import api

AxisNames = Union[str, Sequence[str], None]


def _local_columns(targets, offset, width):
  """Targets as local column ids, clamped into ``[0, width)``, and whether they are local."""
  local = targets - offset
  return jnp.clip(local, 0, width - 1), (local >= 0) & (local < width)


def _column_logit(hidden, weight, columns, inv_temperature):
  """z_{t,c_t} = <h_t, W[:, c_t]>·(1/tau) in f32, W cast to the kernel's compute dtype."""
  w = jnp.take(weight, columns, axis=1).astype(hidden.dtype)  # [D, T]
  return jnp.einsum("td,dt->t", hidden, w, preferred_element_type=jnp.float32) * inv_temperature


def _logsumexp_over(x, axis_name):
  m = jax.lax.pmax(jax.lax.stop_gradient(x), axis_name)  # a constant shift: exact value and gradient
  return m + jnp.log(jax.lax.psum(jnp.exp(x - m), axis_name))


def vocab_parallel_logprobs(hidden: jax.Array, weight: jax.Array, targets: jax.Array, *,
                            axis_name: str, temperature: float = 1.0,
                            ref_hidden: Optional[jax.Array] = None,
                            ref_weight: Optional[jax.Array] = None,
                            want_entropy: bool = False, want_kl: Optional[str] = None,
                            want_mean_logprob: bool = False,
                            **kernel_kwargs) -> api.FusedOutput:
  """The per-device body: call inside `shard_map` with ``weight`` sharded on ``axis_name``.

  ``weight`` (and ``ref_weight``) are this device's ``[D, V/n]`` column slices, in
  axis-index order; ``hidden``/``targets`` are this device's tokens with global
  vocabulary ids. Returns the global-vocabulary `FusedOutput` for those tokens.
  ``kernel_kwargs`` (impl, block_t, block_v, interpret) go to `fused_logprobs`.
  """
  if want_kl is not None and ref_hidden is None and ref_weight is None:
    raise ValueError("want_kl needs a reference: pass ref_hidden and/or ref_weight")
  inv_tau = 1.0 / float(temperature)
  offset = jax.lax.axis_index(axis_name) * weight.shape[1]
  targets = targets.astype(jnp.int32)
  if want_kl is not None:
    ref_hidden = jax.lax.stop_gradient(hidden if ref_hidden is None else ref_hidden)
    ref_weight = jax.lax.stop_gradient(weight if ref_weight is None else ref_weight)
  # The local op is asked for the log-prob of a column it holds (the target when
  # local, else a clamped stand-in): lse_l = z_c - logp_l(c) for any local column c.
  columns, owned = _local_columns(targets, offset, weight.shape[1])
  # One varying type for every operand of the local op (a Pallas kernel body needs
  # it); the transpose of this cast sums the per-shard gradients of `hidden`.
  hidden, weight, columns, ref_hidden, ref_weight = _vma.varying_like(
      (hidden, weight, columns, ref_hidden, ref_weight), hidden, weight, columns, ref_hidden,
      ref_weight)
  local = api.fused_logprobs(
      hidden, weight, columns, temperature=temperature, ref_hidden=ref_hidden,
      ref_weight=ref_weight, want_entropy=want_entropy,
      want_kl=None if want_kl is None else "full", want_mean_logprob=want_mean_logprob,
      **kernel_kwargs)
  z_c = _column_logit(hidden, weight, columns, inv_tau)
  lse_l = z_c - local.logprobs
  lse = _logsumexp_over(lse_l, axis_name)
  logprobs = jax.lax.psum(jnp.where(owned, z_c, 0.0), axis_name) - lse
  shard_mass = jnp.exp(lse_l - lse)
  entropy = kl = ref_logprobs = mean_logprob = None
  if want_mean_logprob:
    # Every shard holds V/n columns, so the global mean of z is the mean of the local means.
    mean_logprob = jax.lax.pmean(local.mean_logprob + lse_l, axis_name) - lse
  if want_entropy:
    entropy = lse - jax.lax.psum(shard_mass * (lse_l - local.entropy), axis_name)
  if want_kl is not None:
    zr_c = _column_logit(ref_hidden, ref_weight, columns, inv_tau)
    ref_lse_l = zr_c - local.ref_logprobs
    ref_lse = _logsumexp_over(ref_lse_l, axis_name)
    ref_logprobs = jax.lax.psum(jnp.where(owned, zr_c, 0.0), axis_name) - ref_lse
    if want_kl == "full":
      kl = jax.lax.psum(shard_mass * (local.kl + (lse_l - lse) - (ref_lse_l - ref_lse)),
                        axis_name)
    else:
      r = ref_logprobs - logprobs
      kl = jnp.expm1(r) - r
  return api.FusedOutput(logprobs=logprobs, entropy=entropy, kl=kl, ref_logprobs=ref_logprobs,
                         mean_logprob=mean_logprob)


def fused_logprobs_vocab_sharded(hidden: jax.Array, weight: jax.Array, targets: jax.Array, *,
                                 mesh: Mesh, vocab_axis: str = "tensor",
                                 token_axes: AxisNames = None, temperature: float = 1.0,
                                 ref_hidden: Optional[jax.Array] = None,
                                 ref_weight: Optional[jax.Array] = None,
                                 want_entropy: bool = False, want_kl: Optional[str] = None,
                                 want_mean_logprob: bool = False,
                                 check_vma: Optional[bool] = None,
                                 **kernel_kwargs) -> api.FusedOutput:
  """`fused_logprobs` with ``W [D, V]`` split over ``mesh`` axis ``vocab_axis``.

  Tokens (``hidden [T, D]``, ``targets [T]``) are split over ``token_axes`` (e.g.
  ``("data", "fsdp")``; None keeps them whole on every device). ``V`` must divide
  by the ``vocab_axis`` size and ``T`` by the product of the token axes. Same
  outputs and gradients as `fused_logprobs` on the unsharded arrays, up to float
  summation order. ``check_vma`` is `shard_map`'s type check of device-varying
  values; the default turns it on for ``impl="xla"`` only, because the Pallas
  interpreter does not support it (values and gradients agree either way; tested).
  """
  if vocab_axis not in mesh.shape:
    raise ValueError(f"vocab_axis {vocab_axis!r} is not an axis of the mesh {dict(mesh.shape)}")
  n = mesh.shape[vocab_axis]
  if weight.ndim != 2 or weight.shape[1] % n:
    raise ValueError(f"weight must be [D, V] with V divisible by mesh axis {vocab_axis!r} "
                     f"(size {n}), got {weight.shape}")
  axes = (token_axes,) if isinstance(token_axes, str) else tuple(token_axes or ())
  for a in axes:
    if a not in mesh.shape or a == vocab_axis:
      raise ValueError(f"token_axes entry {a!r} must be a mesh axis other than {vocab_axis!r}")
  token_shards = 1
  for a in axes:
    token_shards *= mesh.shape[a]
  if hidden.shape[0] % token_shards:
    raise ValueError(f"T={hidden.shape[0]} must divide by the token shards ({token_shards})")
  tok = P(axes or None)
  tok2 = P(axes or None, None)
  col = P(None, vocab_axis)
  has_ref = want_kl is not None
  if has_ref and ref_hidden is None and ref_weight is None:
    raise ValueError("want_kl needs a reference: pass ref_hidden and/or ref_weight")
  ref_hidden = hidden if (has_ref and ref_hidden is None) else ref_hidden
  ref_weight = weight if (has_ref and ref_weight is None) else ref_weight
  body = functools.partial(vocab_parallel_logprobs, axis_name=vocab_axis,
                           temperature=temperature, want_entropy=want_entropy,
                           want_kl=want_kl, want_mean_logprob=want_mean_logprob, **kernel_kwargs)
  out_specs = api.FusedOutput(logprobs=tok, entropy=tok if want_entropy else None,
                              kl=tok if has_ref else None, ref_logprobs=tok if has_ref else None,
                              mean_logprob=tok if want_mean_logprob else None)
  if has_ref:
    fn = lambda h, w, y, rh, rw: body(h, w, y, ref_hidden=rh, ref_weight=rw)
    args, in_specs = (hidden, weight, targets, ref_hidden, ref_weight), (tok2, col, tok, tok2, col)
  else:
    fn = lambda h, w, y: body(h, w, y)
    args, in_specs = (hidden, weight, targets), (tok2, col, tok)
  if any(t == jax.sharding.AxisType.Explicit for t in getattr(mesh, "axis_types", ())):
    # Explicit-axis meshes need the inputs already laid out as in_specs says.
    args = tuple(jax.reshard(x, NamedSharding(mesh, spec)) for x, spec in zip(args, in_specs))
  if check_vma is None:
    check_vma = kernel_kwargs.get("impl", "auto") == "xla"
  return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                       check_vma=check_vma)(*args)

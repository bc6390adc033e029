"""Dense reference: materialises the ``[T, V]`` logits. Test oracle only."""

from typing import Optional

import jax
import jax.numpy as jnp

from kernels_pallas import _online


def reference_stats(hidden: jax.Array, weight: jax.Array, targets: jax.Array,
                    ref_hidden: Optional[jax.Array], ref_weight: Optional[jax.Array], *,
                    inv_temperature: float, want_entropy: bool,
                    kl_mode: Optional[str], want_mean_logprob: bool = False) -> jax.Array:
  """``[T, NUM_STATS]`` per-token statistics from dense logits (plain autodiff).

  ``z = (h W) / tau``, ``log p = log_softmax(z)``, ``H = -sum p log p``,
  ``KL = sum p (log p - log q)`` and ``k3 = exp(r) - 1 - r`` with
  ``r = log q_y - log p_y``, ``mean_logprob = mean_v log p_v`` (over the ``V``
  columns of ``weight``); the reference logits are ``stop_gradient``-ed.
  """
  acc = _online.accumulator_dtype(hidden.dtype)
  z = jnp.dot(hidden, weight.astype(hidden.dtype), preferred_element_type=acc) * inv_temperature
  logp_all = jax.nn.log_softmax(z, axis=-1)
  lse = jax.nn.logsumexp(z, axis=-1)
  logp = jnp.take_along_axis(logp_all, targets[:, None], axis=-1)[:, 0]
  zeros = jnp.zeros_like(lse)
  entropy = -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1) if want_entropy else zeros
  mean_logp = jnp.mean(logp_all, axis=-1) if want_mean_logprob else zeros
  kl, ref_logp, ref_lse = zeros, zeros, zeros
  if kl_mode is not None:
    b = jax.lax.stop_gradient(
        jnp.dot(ref_hidden, ref_weight.astype(ref_hidden.dtype), preferred_element_type=acc) * inv_temperature)
    logq_all = jax.nn.log_softmax(b, axis=-1)
    ref_lse = jax.nn.logsumexp(b, axis=-1)
    ref_logp = jnp.take_along_axis(logq_all, targets[:, None], axis=-1)[:, 0]
    if kl_mode == "k3":
      r = ref_logp - logp
      kl = jnp.expm1(r) - r
    else:
      kl = jnp.sum(jnp.exp(logp_all) * (logp_all - logq_all), axis=-1)
  cols = {_online.LSE: lse, _online.LOGP: logp, _online.ENTROPY: entropy, _online.KL: kl,
          _online.REF_LOGP: ref_logp, _online.REF_LSE: ref_lse, _online.MEAN_LOGP: mean_logp}
  return jnp.stack([cols[k] for k in range(_online.NUM_STATS)], axis=1)

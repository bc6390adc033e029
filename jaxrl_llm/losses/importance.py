"""Truncated / masked importance sampling for sampler-trainer log-prob mismatch.

The inference engine that samples (vLLM, SGLang, a quantised or differently
fused forward) and the trainer's forward give different log-probs for the same
tokens, so "on-policy" rollouts are slightly off-policy. The correction
reweights each token (or sequence) by ``pi_trainer / pi_sampler``, truncated:
Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL
Training" (truncated importance sampling, TIS); the masked ("rejection") variant
zeroes tokens/sequences whose weight leaves ``[lower, cap]`` (TRL's
``*_mask`` modes, verl's rollout-correction rejection).
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import masked_mean

IS_LEVELS = ("token", "sequence")
IS_MODES = ("truncate", "mask")


def truncated_importance_weights(
    old_logprobs: jax.Array, sampler_logprobs: jax.Array, mask: jax.Array, *,
    level: str = "token", mode: str = "truncate", cap: float = 2.0,
    lower: Optional[float] = None, log_ratio_clamp: float = 20.0,
    sequence_reduction: str = "sum",
) -> tuple[jax.Array, dict]:
  """Constant weights ``w ≈ pi_trainer / pi_sampler`` to multiply a per-token loss.

  With ``delta_it = clamp(lp_old_it - lp_sampler_it, ±C)`` (masked tokens give 0)::

      token:     log w_it = delta_it
      sequence:  log w_it = clamp(sum_t m_it delta_it, ±C)    (same for every t)
                 (sequence_reduction="mean": the masked mean instead, i.e. the
                 geometric mean of the token ratios, OpenRLHF's seq level; "sum"
                 is the product of token ratios, TRL's sequence modes)
      truncate:  w = clip(w, lower, cap)          (lower=None: no lower bound)
      mask:      w = w * 1[lower <= w <= cap]     (lower=None: 0)

  The result is multiplied by the mask and wrapped in ``stop_gradient``.

  Args:
    old_logprobs: ``[B, T]`` trainer log-probs of the sampled tokens (before the update).
    sampler_logprobs: ``[B, T]`` log-probs reported by the sampler.
    mask: ``[B, T]``.
    level: ``token`` or ``sequence``.
    mode: ``truncate`` or ``mask``.
    cap: upper bound ``C_max`` (TIS uses 2.0; TRL's ``clip_max`` default is 3.0).
    lower: optional lower bound ``C_min``.
    log_ratio_clamp: clamp of the log-weight before ``exp``.

  Returns:
    ``(weights [B, T], metrics)`` with ``is_weight_mean`` (raw weights, token
    mean), ``is_weight_max``, ``is_clipped_frac`` (fraction of tokens, or of
    non-empty sequences at sequence level, outside ``[lower, cap]``),
    ``mismatch_k1`` (``mean(lp_sampler - lp_old)``, a KL(sampler || trainer)
    estimate on sampler tokens) and ``mismatch_k3``.
  """
  _checks.check_choice(level, IS_LEVELS, "importance-sampling level")
  _checks.check_choice(mode, IS_MODES, "importance-sampling mode")
  _checks.check_choice(sequence_reduction, ("sum", "mean"), "sequence_reduction")
  _checks.check_rank(old_logprobs, 2, "old_logprobs")
  _checks.check_shape(sampler_logprobs, old_logprobs.shape, "sampler_logprobs")
  _checks.check_shape(mask, old_logprobs.shape, "mask")
  if cap <= 0 or (lower is not None and not 0 <= lower <= cap):
    raise ValueError(f"need 0 <= lower <= cap and cap > 0, got lower={lower}, cap={cap}")
  old_logprobs = jax.lax.stop_gradient(old_logprobs)
  sampler_logprobs = jax.lax.stop_gradient(sampler_logprobs)
  m = jnp.asarray(mask).astype(old_logprobs.dtype)
  delta = jnp.where(m > 0, old_logprobs - sampler_logprobs, 0.0)
  delta = jnp.clip(delta, -log_ratio_clamp, log_ratio_clamp)
  if level == "token":
    log_w = delta
    unit_mask = m
  else:
    seq = jnp.sum(delta * m, axis=-1)
    if sequence_reduction == "mean":
      seq = seq / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
    seq = jnp.clip(seq, -log_ratio_clamp, log_ratio_clamp)
    log_w = jnp.broadcast_to(seq[:, None], delta.shape)
    unit_mask = (jnp.sum(m, axis=-1) > 0).astype(m.dtype)
  raw = jnp.exp(log_w)
  lo = 0.0 if lower is None else lower
  outside = (raw > cap) | (raw < lo)
  if mode == "truncate":
    weights = jnp.clip(raw, lo, cap)
  else:
    weights = jnp.where(outside, 0.0, raw)
  weights = weights * m
  outside_units = outside if level == "token" else outside[:, 0]
  big = jnp.finfo(raw.dtype).max
  metrics = {
      "is_weight_mean": masked_mean(raw, m),
      "is_weight_max": jnp.where(jnp.sum(m) > 0, jnp.max(jnp.where(m > 0, raw, -big)), 0.0),
      "is_clipped_frac": masked_mean(outside_units.astype(m.dtype), unit_mask),
      "mismatch_k1": masked_mean(-delta, m),
      "mismatch_k3": masked_mean(jnp.exp(delta) - delta - 1.0, m),
  }
  return jax.lax.stop_gradient(weights), metrics

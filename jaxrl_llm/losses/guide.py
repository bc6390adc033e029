"""Guide-GRPO: PPO on on-policy rows, a bounded ratio ``r / (r + gamma)`` on hinted rerolls.

Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement Learning of
Reasoning Models", arXiv 2506.13923 (spec: /work/shared/reference/rlvr_methods.md
section 11, read in ``vaskar-open-source-research/guide_rl`` @2f27715,
``core_algos.py::compute_policy_loss``).

A group whose n on-policy samples all fail is re-sampled from the hint-augmented
prompt ``q_h``; the stored rows hold the ORIGINAL prompt ``q`` and the hinted
completion ``o`` (``is_off_policy``), and their old log-probs are the hinted-context
ones, ``lp_old = log pi_old(o_t | q_h, o_<t)`` (the sampler's log-probs,
``RolloutBatch.sampler_logprobs``). The current log-probs are
``lp = log pi_theta(o_t | q, o_<t)``. See :mod:`jaxrl_llm.training.guide` for the
rollout side.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import AGGREGATION_MODES, aggregate, masked_mean
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient

GAMMA_STRATEGIES = ("percentile", "constant")


def masked_quantile(x: jax.Array, mask: jax.Array, q: float) -> jax.Array:
  """The ``q``-quantile of the entries of ``x`` where ``mask`` is set, with linear
  interpolation (``numpy.quantile`` / ``torch.quantile`` default)::

      s = sorted selected values (n of them),  h = q (n - 1)
      Q = s[floor h] + (h - floor h) (s[floor h + 1] - s[floor h])

  Returns 0 when nothing is selected. Not differentiated (callers detach it).
  """
  if not 0.0 <= q <= 1.0:
    raise ValueError(f"quantile q must be in [0, 1], got {q}")
  flat = jnp.reshape(x, (-1,))
  sel = jnp.reshape(jnp.asarray(mask) > 0, (-1,))
  n = jnp.sum(sel.astype(jnp.int32))
  s = jnp.sort(jnp.where(sel, flat, jnp.inf))  # selected values first, ascending
  h = q * jnp.maximum(n - 1, 0).astype(flat.dtype)
  lo = jnp.floor(h).astype(jnp.int32)
  hi = jnp.minimum(lo + 1, jnp.maximum(n - 1, 0))
  s_lo, s_hi = s[lo], s[hi]
  frac = h - lo.astype(flat.dtype)
  out = s_lo + frac * jnp.where(hi > lo, s_hi - s_lo, 0.0)
  return jnp.where(n > 0, out, 0.0)


def guide_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
               mask: jax.Array, *, is_off_policy: jax.Array, sampler_logprobs: jax.Array,
               clip_low: float = 0.2, clip_high: Optional[float] = None,
               gamma_strategy: str = "percentile", gamma_value: float = 0.9,
               gamma_min: float = 1e-4, log_ratio_clamp: Optional[float] = 20.0,
               agg_mode: str = "token-mean", horizon: Optional[float] = None,
               is_weights: Optional[jax.Array] = None) -> LossOutput:
  """Guide-GRPO policy loss (arXiv 2506.13923, ``compute_policy_loss``).

  Per token, ``A`` the (GRPO) advantage::

      on-policy rows:   r = exp(lp - lp_old)          lp_old: trainer log-probs (old_logprobs)
                        L = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))
      off-policy rows:  r = exp(lp - lp_old_hint)     lp_old_hint: sampler_logprobs, i.e.
                                                      log pi_old(o_t | q_h, o_<t)
                        L = -A r / (r + gamma)        (no clipping)
      gamma = max(sg[quantile_{gamma_value}(r over the off-policy masked tokens)], gamma_min)
                                                      (gamma_strategy = 'percentile')
      gamma = gamma_value                             (gamma_strategy = 'constant')

  so ``dL/dlp = -A gamma r / (r + gamma)^2`` on an off-policy token (bounded by
  ``|A| / 4``, largest where ``r = gamma``). The quantile is over the tokens of the
  call (one micro-batch), linear interpolation as ``torch.quantile``; ``r / (r +
  gamma)`` is evaluated as ``sigmoid(log r - log gamma)`` (same value, no overflow).
  Aggregation: token-mean over all masked tokens by default (``agg_mode``, any
  mode of :func:`jaxrl_llm.losses.aggregate`).

  Deviation, documented: the official ``compute_policy_loss`` assumes one sequence
  per micro-batch and takes the quantile over all T positions, padding included
  (spec Addendum); here it is over the off-policy masked tokens of the micro-batch,
  as the spec's formula says.

  Args:
    logprobs: ``[B, T]`` current-policy log-probs (original prompt as context).
    old_logprobs: ``[B, T]`` trainer log-probs before the update (constant); used on
      the on-policy rows.
    advantages: ``[B]`` or ``[B, T]``.
    mask: ``[B, T]`` tokens that count (``loss_mask``).
    is_off_policy: ``[B]`` bool, the hinted rerolls.
    sampler_logprobs: ``[B, T]`` sampler log-probs, on the hinted rows those under the
      hinted prompt (constant).
    clip_low, clip_high: on-policy PPO clip (``clip_high`` defaults to ``clip_low``;
      Guide: 0.2).
    gamma_strategy: ``"percentile"`` or ``"constant"``.
    gamma_value: the quantile level (percentile; Guide: 0.9) or gamma itself (constant).
    gamma_min: lower clamp of the percentile gamma (Guide: 1e-4).
    log_ratio_clamp: clamp of the on-policy log-ratio, and of the log-ratio the
      quantile is taken of, before ``exp`` (None: off).
    agg_mode, horizon: aggregation, see :func:`jaxrl_llm.losses.aggregate`.
    is_weights: optional constant per-token/sequence weights (e.g. TIS).

  Returns:
    LossOutput with metrics ``gamma``, ``off_token_frac`` (off-policy share of the
    masked tokens), ``off_ratio_mean`` (mean r there), ``off_bounded_ratio_mean``
    (mean ``r / (r + gamma)``), ``clip_frac`` and ``approx_kl`` (on-policy tokens).
  """
  _checks.check_choice(gamma_strategy, GAMMA_STRATEGIES, "gamma_strategy")
  _checks.check_choice(agg_mode, AGGREGATION_MODES, "aggregation mode")
  clip_high = clip_low if clip_high is None else clip_high
  if not 0.0 <= clip_low < 1.0:
    raise ValueError(f"clip_low must be in [0, 1), got {clip_low}")
  if clip_high < 0.0:
    raise ValueError(f"clip_high must be >= 0, got {clip_high}")
  if gamma_strategy == "percentile" and not 0.0 <= gamma_value <= 1.0:
    raise ValueError(f"gamma_value is the quantile level of gamma_strategy='percentile' and "
                     f"must be in [0, 1], got {gamma_value}")
  if gamma_strategy == "constant" and not gamma_value > 0.0:
    raise ValueError(f"gamma_value (gamma_strategy='constant') must be > 0, got {gamma_value}")
  if gamma_min <= 0.0:
    raise ValueError(f"gamma_min must be > 0, got {gamma_min}")
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  shape = logprobs.shape
  _checks.check_shape(old_logprobs, shape, "old_logprobs")
  _checks.check_shape(sampler_logprobs, shape, "sampler_logprobs")
  _checks.check_shape(mask, shape, "mask")
  off_rows = jnp.asarray(is_off_policy)
  _checks.check_shape(off_rows, shape[:1], "is_off_policy")
  if off_rows.dtype != jnp.bool_:
    raise ValueError(f"is_off_policy must be a bool array, got dtype {off_rows.dtype}")
  dtype = jnp.promote_types(logprobs.dtype, jnp.float32)
  m = jnp.asarray(mask).astype(dtype)
  valid = m > 0
  off = jnp.broadcast_to(off_rows[:, None], shape)
  # The behaviour log-probs: the trainer's on on-policy rows, the hinted sampler's off it.
  old = sg(jnp.where(off, jnp.asarray(sampler_logprobs), jnp.asarray(old_logprobs)).astype(dtype))
  lp = logprobs.astype(dtype)
  # Zero outside the mask first so padded garbage (-inf) cannot give NaN gradients.
  log_ratio = jnp.where(valid, lp - jnp.where(valid, old, 0.0), 0.0)
  clamped = log_ratio if log_ratio_clamp is None else jnp.clip(
      log_ratio, -log_ratio_clamp, log_ratio_clamp)
  adv = _checks.per_sequence_to_tokens(advantages, shape, "advantages").astype(dtype)
  off_f = off.astype(dtype)
  on_m, off_m = m * (1.0 - off_f), m * off_f

  # On-policy: PPO clip.
  ratio = jnp.exp(jnp.where(off, 0.0, clamped))
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  on_loss = jnp.maximum(unclipped, clipped)

  # Off-policy: r / (r + gamma), gamma detached.
  r_off = sg(jnp.exp(clamped))
  if gamma_strategy == "percentile":
    gamma = jnp.maximum(masked_quantile(r_off, off_m, gamma_value), gamma_min)
  else:
    gamma = jnp.asarray(gamma_value, dtype)
  gamma = sg(gamma.astype(dtype))
  bounded = jax.nn.sigmoid(jnp.where(off, log_ratio, 0.0) - jnp.log(gamma))
  off_loss = -adv * bounded

  per_token = jnp.where(off, off_loss, on_loss)
  if is_weights is not None:
    w = sg(_checks.per_sequence_to_tokens(is_weights, shape, "is_weights").astype(dtype))
    per_token = per_token * w
  total, count = aggregate(per_token, m, agg_mode, horizon=horizon)
  metrics = {
      "gamma": gamma,
      "off_token_frac": masked_mean(off_f, m),
      "off_ratio_mean": masked_mean(r_off, off_m),
      "off_bounded_ratio_mean": masked_mean(bounded, off_m),
      "clip_frac": masked_mean((clipped > unclipped).astype(dtype), on_m),
      "approx_kl": masked_mean(-clamped, on_m),
  }
  return LossOutput(total, count, {k: sg(v) for k, v in metrics.items()})

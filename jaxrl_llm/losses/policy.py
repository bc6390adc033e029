"""Policy-gradient objectives for LLMs: PPO-clip, GSPO, CISPO, REINFORCE / GPG.

Every loss takes per-token log-probabilities ``[B, T]`` of the sampled tokens
under the current policy (``logprobs``, differentiated) and the behaviour policy
(``old_logprobs``, constant), advantages ``[B]`` (one per sequence) or
``[B, T]``, and a ``mask`` ``[B, T]``; it returns a :class:`LossOutput` whose
``total / count`` is the loss to minimise under the chosen aggregation mode
(:func:`jaxrl_llm.losses.aggregate`). Optional ``is_weights`` ``[B]`` or
``[B, T]`` (e.g. :func:`truncated_importance_weights`) multiply the per-token
loss, as verl's ``rollout_is_weights`` do; they are not differentiated.

Metrics are token means over the mask (0 if the batch is all masked).
Low-precision (bf16/fp16) inputs are computed in float32; gradients flow back
in the input dtype.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import aggregate, masked_mean
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient


def _upcast(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _prepare(logprobs, old_logprobs, advantages, mask, is_weights):
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  shape = logprobs.shape
  if old_logprobs is not None:
    _checks.check_shape(old_logprobs, shape, "old_logprobs")
  logprobs = _upcast(logprobs)
  _checks.check_shape(mask, shape, "mask")
  adv = _checks.per_sequence_to_tokens(advantages, shape, "advantages").astype(logprobs.dtype)
  m = jnp.asarray(mask).astype(logprobs.dtype)
  w = None
  if is_weights is not None:
    w = sg(_checks.per_sequence_to_tokens(is_weights, shape, "is_weights").astype(logprobs.dtype))
  old = None if old_logprobs is None else _upcast(old_logprobs).astype(logprobs.dtype)
  return logprobs, old, adv, m, w


def _finish(per_token, m, w, agg_mode, horizon, metrics) -> LossOutput:
  if w is not None:
    per_token = per_token * w
  total, count = aggregate(per_token, m, agg_mode, horizon=horizon)
  return LossOutput(total, count, {k: sg(v) for k, v in metrics.items()})


def _ratio_stats(ratio, m, prefix="ratio"):
  has_any = jnp.sum(m) > 0
  big = jnp.finfo(ratio.dtype).max
  return {
      f"{prefix}_mean": masked_mean(ratio, m),
      f"{prefix}_max": jnp.where(has_any, jnp.max(jnp.where(m > 0, ratio, -big)), 0.0),
      f"{prefix}_min": jnp.where(has_any, jnp.min(jnp.where(m > 0, ratio, big)), 0.0),
  }


def _check_clip(clip_low, clip_high, name_low="clip_low", name_high="clip_high"):
  if clip_low is not None and not 0.0 <= clip_low < 1.0:
    raise ValueError(f"{name_low} must be in [0, 1), got {clip_low}")
  if clip_high is not None and clip_high < 0.0:
    raise ValueError(f"{name_high} must be >= 0, got {clip_high}")


def _log_ratio(logprobs, old_logprobs, m, clamp):
  # Zero outside the mask first, so padded garbage (e.g. -inf) cannot turn into
  # NaN gradients through exp().
  log_ratio = jnp.where(m > 0, logprobs - old_logprobs, 0.0)
  if clamp is not None:
    log_ratio = jnp.clip(log_ratio, -clamp, clamp)
  return log_ratio


def ppo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                    mask: jax.Array, *, clip_low: float = 0.2,
                    clip_high: Optional[float] = None, dual_clip: Optional[float] = None,
                    log_ratio_clamp: Optional[float] = 20.0, agg_mode: str = "token-mean",
                    horizon: Optional[float] = None,
                    is_weights: Optional[jax.Array] = None) -> LossOutput:
  """PPO clipped surrogate with asymmetric clip and optional dual clip.

  Per token, with ``r = exp(clamp(lp - lp_old, -C, C))``::

      L = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))
      L = min(L, -A c)   where A < 0            (dual clip, only if c = dual_clip)

  PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms".
  ``clip_high > clip_low`` is DAPO's clip-higher (Yu et al. 2025, "DAPO: An
  Open-Source LLM Reinforcement Learning System at Scale"); the dual clip bounds
  the loss of negative-advantage tokens with a huge ratio (Ye et al. 2020,
  "Mastering Complex Control in MOBA Games with Deep RL", arXiv 1912.09729).

  Same as verl 0.9.1 ``vanilla`` with ``dual_clip=3.0`` (verl always applies
  its ``clip_ratio_c``, default 3.0) and ``log_ratio_clamp=20``; same as TRL
  1.16 ``dapo``/``bnpo`` with ``dual_clip=None`` (TRL's ``delta`` is ``dual_clip``),
  up to TRL's unclamped log-ratio.

  Args:
    logprobs: ``[B, T]`` current-policy log-probs of the sampled tokens.
    old_logprobs: ``[B, T]`` behaviour-policy log-probs (constant).
    advantages: ``[B]`` or ``[B, T]``.
    mask: ``[B, T]`` tokens that count.
    clip_low: ``eps_low``; the ratio is clipped below at ``1 - clip_low``.
    clip_high: ``eps_high``; defaults to ``clip_low``.
    dual_clip: ``c > 1``; None disables the dual clip.
    log_ratio_clamp: clamp of the log-ratio before ``exp`` (None disables).
    agg_mode: aggregation mode, see :func:`aggregate`.
    horizon: constant length for ``seq-mean-token-sum-norm``.
    is_weights: optional constant per-token/sequence weights.

  Returns:
    LossOutput with metrics ``clip_frac`` (either side clipped; verl
    ``pg_clipfrac``), ``clip_frac_low``, ``clip_frac_high``, ``dual_clip_frac``
    (verl ``pg_clipfrac_lower``), ``approx_kl`` (mean of ``lp_old - lp``, verl
    ``ppo_kl``), ``ratio_mean/max/min``.
  """
  clip_high = clip_low if clip_high is None else clip_high
  _check_clip(clip_low, clip_high)
  if dual_clip is not None and dual_clip <= 1.0:
    raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  per_token = jnp.maximum(unclipped, clipped)
  metrics = {
      "clip_frac": masked_mean((clipped > unclipped).astype(m.dtype), m),
      "clip_frac_low": masked_mean(((adv < 0) & (ratio < 1.0 - clip_low)).astype(m.dtype), m),
      "clip_frac_high": masked_mean(((adv > 0) & (ratio > 1.0 + clip_high)).astype(m.dtype), m),
      "approx_kl": masked_mean(-log_ratio, m),
      **_ratio_stats(ratio, m),
  }
  if dual_clip is not None:
    dual = -adv * dual_clip
    metrics["dual_clip_frac"] = masked_mean(((adv < 0) & (per_token > dual)).astype(m.dtype), m)
    per_token = jnp.where(adv < 0, jnp.minimum(per_token, dual), per_token)
  else:
    metrics["dual_clip_frac"] = jnp.zeros((), m.dtype)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def sequence_log_ratio(logprobs: jax.Array, old_logprobs: jax.Array, mask: jax.Array) -> jax.Array:
  """Length-normalised sequence log-ratio ``(1/|y_i|) sum_t m_it (lp_it - lp_old_it)``, ``[B]``.

  Fully masked rows give 0 (the length is clamped to at least 1).
  """
  m = jnp.asarray(mask).astype(logprobs.dtype)
  diff = jnp.where(m > 0, logprobs - old_logprobs, 0.0) * m
  return jnp.sum(diff, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)


def gspo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                     mask: jax.Array, *, clip_low: float = 3e-4,
                     clip_high: Optional[float] = 4e-4, log_ratio_clamp: Optional[float] = 10.0,
                     agg_mode: str = "seq-mean-token-mean", horizon: Optional[float] = None,
                     is_weights: Optional[jax.Array] = None) -> LossOutput:
  """GSPO: sequence-level importance ratio with a per-token gradient (GSPO-token).

  Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv 2507.18071::

      log s_i  = (1/|y_i|) sum_t (lp_it - lp_old_it)
      s_it     = sg[s_i] * exp(lp_it - sg[lp_it])      (value s_i, gradient s_i * grad lp_it)
      L_it     = max(-A_it s_it, -A_it clip(s_it, 1 - eps_low, 1 + eps_high))

  With ``agg_mode="seq-mean-token-mean"`` (the paper's and OpenRLHF's objective;
  verl <= 0.8 forced it) the gradient is
  ``-(1/K) sum_i s_i A_i (1/|y_i|) sum_t grad lp_it`` over unclipped sequences.
  The log of ``s_it`` is clamped at ``log_ratio_clamp`` from above as in verl
  (the clamp zeroes the gradient). verl 0.9.1 aggregates with its
  ``loss_agg_mode`` (token-mean by default); pass ``agg_mode="token-mean"`` to match.
  The defaults ``eps_low = 3e-4, eps_high = 4e-4`` are the paper's.

  Metrics: ``clip_frac``, ``clip_frac_low``, ``clip_frac_high`` (token means),
  ``approx_kl``, ``seq_ratio_mean/max/min`` (over non-empty sequences).
  """
  clip_high = clip_low if clip_high is None else clip_high
  _check_clip(clip_low, clip_high)
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  seq_log_ratio = sequence_log_ratio(logprobs, old_logprobs, m)   # [B]
  token_log_ratio = jnp.where(m > 0, logprobs - sg(logprobs), 0.0) + sg(seq_log_ratio)[:, None]
  if log_ratio_clamp is not None:
    token_log_ratio = jnp.minimum(token_log_ratio, log_ratio_clamp)
  ratio = jnp.exp(token_log_ratio)
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  per_token = jnp.maximum(unclipped, clipped)
  row_valid = (jnp.sum(m, axis=-1) > 0).astype(m.dtype)
  metrics = {
      "clip_frac": masked_mean((clipped > unclipped).astype(m.dtype), m),
      "clip_frac_low": masked_mean(((adv < 0) & (ratio < 1.0 - clip_low)).astype(m.dtype), m),
      "clip_frac_high": masked_mean(((adv > 0) & (ratio > 1.0 + clip_high)).astype(m.dtype), m),
      "approx_kl": masked_mean(old_logprobs - logprobs, m),
      **_ratio_stats(jnp.exp(seq_log_ratio), row_valid, prefix="seq_ratio"),
  }
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def cispo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                      mask: jax.Array, *, clip_low: Optional[float] = None,
                      clip_high: Optional[float] = 4.0, log_ratio_clamp: Optional[float] = 20.0,
                      agg_mode: str = "token-mean", horizon: Optional[float] = None,
                      is_weights: Optional[jax.Array] = None) -> LossOutput:
  """CISPO: clipped, detached importance weight times REINFORCE.

  MiniMax 2025, "MiniMax-M1: Scaling Test-Time Compute Efficiently with
  Lightning Attention", arXiv 2506.13585::

      L_it = -sg[clip(r_it, 1 - eps_low, 1 + eps_high)] * A_it * lp_it

  Every token keeps a gradient (the weight is clipped, not the objective).
  ``clip_low=None`` leaves the weight unbounded below (the paper's choice and
  TRL's one-sided ``clamp(max=epsilon_high)``: TRL ``epsilon_high=5`` is
  ``clip_high=4``); ``clip_low=0.2, clip_high=0.28`` is verl's two-sided ``cispo``.

  Metrics: ``clip_frac_low``, ``clip_frac_high``, ``approx_kl``, ``ratio_*``.
  """
  if clip_low is not None and not 0.0 <= clip_low < 1.0:
    raise ValueError(f"clip_low must be in [0, 1) or None, got {clip_low}")
  if clip_high is not None and clip_high < 0.0:
    raise ValueError(f"clip_high must be >= 0 or None, got {clip_high}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  low = -jnp.inf if clip_low is None else 1.0 - clip_low
  high = jnp.inf if clip_high is None else 1.0 + clip_high
  weight = sg(jnp.clip(ratio, low, high))
  per_token = -weight * adv * logprobs
  metrics = {
      "clip_frac_low": masked_mean((ratio < low).astype(m.dtype), m),
      "clip_frac_high": masked_mean((ratio > high).astype(m.dtype), m),
      "approx_kl": masked_mean(-log_ratio, m),
      **_ratio_stats(ratio, m),
  }
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def reinforce_loss(logprobs: jax.Array, old_logprobs: Optional[jax.Array],
                   advantages: jax.Array, mask: jax.Array, *, agg_mode: str = "token-mean",
                   horizon: Optional[float] = None,
                   is_weights: Optional[jax.Array] = None) -> LossOutput:
  """REINFORCE / GPG policy gradient: ``L_it = -A_it * lp_it`` (times ``is_weights``).

  Williams 1992, "Simple statistical gradient-following algorithms for
  connectionist reinforcement learning"; with GPG advantages
  (:func:`jaxrl_llm.losses.advantages.gpg_advantages`) this is GPG (Chu et al.
  2025, "GPG: A Simple and Strong Reinforcement Learning Baseline for Model
  Reasoning", arXiv 2504.02546) and verl's ``gpg`` loss. ``old_logprobs`` only
  feeds the ``approx_kl`` metric and may be None; the objective is on-policy
  (use ``is_weights`` for an off-policy correction).
  """
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  per_token = -adv * logprobs
  metrics = {}
  if old_logprobs is not None:
    metrics["approx_kl"] = masked_mean(old_logprobs - logprobs, m)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


gpg_policy_loss = reinforce_loss

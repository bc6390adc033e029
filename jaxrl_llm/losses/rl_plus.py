"""RL-PLUS: hybrid on/off-policy optimisation with external demonstrations.

Dong et al. 2025, "RL-PLUS: Countering Capability Boundary Collapse of LLMs in
Reinforcement Learning with Hybrid-policy Optimization", arXiv 2508.00222.

Each prompt's group mixes on-policy samples with (here) one external solution
(a demonstration, ``is_off_policy`` True). Two pure pieces:

* :func:`grpo_split_advantages`: the group baseline (and optional std) over the
  group's on-policy members only; the demonstration is scored against it.
* :func:`rl_plus_loss`: on-policy tokens get the (optionally clipped) policy
  gradient surrogate, demonstration tokens a multiple-importance-sampling ratio
  times an exploration-weighted advantage.

Spec: /work/shared/reference/rlvr_methods.md section 21 (read in the official
repository, ``rlplus_core_alg.py``: ``compute_token_on_off_policy_loss`` and
``compute_grpo_outcome_advantage_split``).
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.advantages import group_index
from jaxrl_llm.losses.aggregation import AGGREGATION_MODES, aggregate, masked_mean, masked_sum
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient

# RL-PLUS's ``loss_remove_token_mean=True``: sum over the masked tokens / padded length.
RL_PLUS_AGG_MODES = ("token-sum-norm",) + AGGREGATION_MODES


def _upcast(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def grpo_split_advantages(scores: jax.Array, is_off_policy: jax.Array, *, group_ids=None,
                          group_size=None, use_std: bool = False,
                          eps: float = 1e-6) -> jax.Array:
  """Group-relative advantage with the baseline from the ON-policy members only.

  RL-PLUS (Dong et al. 2025, arXiv 2508.00222; ``compute_grpo_outcome_advantage_split``).
  With ``On_g`` the on-policy rows of row i's group g::

      mean_i = mean_{j in On_g} s_j
      std_i  = std_{j in On_g} s_j                  (unbiased, n - 1)
      A_i    = s_i - mean_i                         (use_std=False, the RL-PLUS script)
      A_i    = (s_i - mean_i) / (std_i + eps)       (use_std=True)

  for every row of the group, off-policy rows included (the demonstration is
  scored against the on-policy baseline). A group with fewer than two on-policy
  members (a singleton, or all off-policy) gets ``mean = 0, std = 1``, so
  ``A_i = s_i`` (``s_i / (1 + eps)`` with the std), as verl does for singletons;
  an on-policy std of 0 (all on-policy rewards equal) is also replaced by 1
  (spec section 21), so a demonstration that solves a prompt every sample
  failed gets ``A = (s - mean) / (1 + eps)``, not ``(s - mean) / eps``.

  The released RL-PLUS training script actually runs ``adv_estimator=grpo``:
  the mean (and std) over all members, the demonstration included; that is the
  registered ``"grpo"`` estimator, the documented alternative to this one.

  Args:
    scores: ``[B]`` float outcome rewards.
    is_off_policy: ``[B]`` bool, rows not sampled from the current policy.
    group_ids, group_size: the group structure (exactly one; see
      :func:`jaxrl_llm.losses.advantages.group_index`).
    use_std: also divide by the on-policy std (``grpo_use_std``).
    eps: added to the std.

  Returns:
    ``[B]`` advantages (stop-gradient).
  """
  _checks.check_rank(scores, 1, "scores")
  _checks.check_floating(scores, "scores")
  b = scores.shape[0]
  off = jnp.asarray(is_off_policy)
  _checks.check_shape(off, (b,), "is_off_policy")
  if off.dtype != jnp.bool_:
    raise ValueError(f"is_off_policy must be a bool array, got dtype {off.dtype}")
  idx = group_index(b, group_ids, group_size)
  on = (~off).astype(scores.dtype)
  seg = lambda x: jax.ops.segment_sum(x, idx, num_segments=b)[idx]
  n_on = seg(on)
  mean = seg(scores * on) / jnp.maximum(n_on, 1.0)
  sq = seg(jnp.square(scores - mean) * on)
  std = jnp.sqrt(sq / jnp.maximum(n_on - 1.0, 1.0))
  few = n_on < 2
  mean = jnp.where(few, 0.0, mean)
  std = jnp.where(few | (std == 0), 1.0, std)
  adv = scores - mean
  if use_std:
    adv = adv / (std + eps)
  return sg(adv)


def mis_ratio(logprobs: jax.Array, old_logprobs: jax.Array) -> jax.Array:
  """RL-PLUS multiple-importance-sampling ratio of an external token.

  With ``p = exp(lp)``, ``p_old = exp(lp_old)`` and the external "policy"
  ``omega = (p_old + 1) / 2`` (a mixture of the old policy and a point mass on
  the demonstration)::

      r_MIS = p / (0.5 p_old + 0.5 omega) = 2 p / (p_old + omega)

  Differentiable in ``logprobs``; ``old_logprobs`` is a constant.
  """
  p = jnp.exp(logprobs)
  p_old = jnp.exp(sg(old_logprobs))
  omega = 0.5 * (p_old + 1.0)
  return 2.0 * p / (p_old + omega)


def _aggregate(per_token, m, agg_mode, horizon):
  if agg_mode == "token-sum-norm":
    if horizon is None:
      horizon = per_token.shape[-1]
    if not isinstance(horizon, jax.Array) and horizon <= 0:
      raise ValueError(f"horizon must be positive, got {horizon}")
    total = masked_sum(per_token, m) / horizon
    return total, (jnp.sum(m) > 0).astype(per_token.dtype)
  return aggregate(per_token, m, agg_mode, horizon=horizon)


def rl_plus_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                 mask: jax.Array, *, is_off_policy: jax.Array, gamma: float = 0.5,
                 clip: bool = False, clip_low: float = 0.2, clip_high: Optional[float] = None,
                 log_ratio_clamp: Optional[float] = 20.0, agg_mode: str = "token-sum-norm",
                 horizon: Optional[float] = None,
                 is_weights: Optional[jax.Array] = None) -> LossOutput:
  """RL-PLUS hybrid policy loss (``compute_token_on_off_policy_loss``).

  Dong et al. 2025, "RL-PLUS: Countering Capability Boundary Collapse of LLMs in
  Reinforcement Learning with Hybrid-policy Optimization", arXiv 2508.00222.
  Per token, with ``r = exp(lp - lp_old)``, ``p = exp(lp)``, ``p_old = exp(lp_old)``::

      on-policy rows:   L = -A r                                   (clip=False, the script's
                                                                    loss_remove_clip=True)
                        L = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))  (clip=True)
      off-policy rows:  L = -r_MIS A (1 - sg[p])^gamma,   r_MIS = 2 p / (p_old + (p_old + 1)/2)

  (no clipping of the off-policy term). The factor ``(1 - sg[p])^gamma`` is the
  exploration-based advantage: demonstration tokens the policy already finds
  likely get little weight. The gradient of an off-policy token is
  ``-A (1 - p)^gamma * 2 p / (p_old + omega) * grad lp``.

  Aggregation: the default ``"token-sum-norm"`` is the RL-PLUS script's
  ``loss_remove_token_mean=True``: the sum over all masked tokens divided by the
  padded response length (``horizon``, default ``T``), NOT divided by the number
  of sequences (``count`` is 1 for a non-empty batch, so the value is the sum over
  the whole batch / T at any micro-batching; verl averages its micro-batch sums,
  i.e. also divides by the number of micro-batches). ``"token-mean"`` is its
  ``loss_remove_token_mean=False`` branch; every mode of
  :func:`jaxrl_llm.losses.aggregate` is accepted (``seq-mean-token-sum-norm`` is
  Dr. GRPO's, which also divides by the number of sequences).

  Args:
    logprobs: ``[B, T]`` current-policy log-probs of the completion tokens.
    old_logprobs: ``[B, T]`` trainer log-probs before the update (constant); for
      the demonstration rows they are ``pi_old`` of the external tokens.
    advantages: ``[B]`` or ``[B, T]`` (e.g. :func:`grpo_split_advantages`).
    mask: ``[B, T]`` tokens that count.
    is_off_policy: ``[B]`` bool, the external demonstration rows.
    gamma: exponent of the exploration factor ``(1 - p)^gamma`` (RL-PLUS: 0.5).
    clip: PPO-clip the on-policy surrogate (the RL-PLUS script does not).
    clip_low, clip_high: on-policy clip range ``[1 - clip_low, 1 + clip_high]``
      (``clip_high`` defaults to ``clip_low``); used only when ``clip``.
    log_ratio_clamp: clamp of the on-policy log-ratio before ``exp`` (None: off).
    agg_mode: ``"token-sum-norm"`` or a mode of ``AGGREGATION_MODES``.
    horizon: the constant length of ``*-norm`` modes (default ``T``).
    is_weights: optional constant per-token/sequence weights (e.g. TIS).

  Returns:
    LossOutput with metrics ``off_ratio_mean`` (mean ``r_MIS`` over off-policy
    tokens), ``off_adv_scale_mean`` (mean ``(1 - p)^gamma`` there),
    ``off_token_frac`` (off-policy share of the masked tokens), ``on_clip_frac``
    (on-policy tokens whose clipped term is taken; 0 with ``clip=False``),
    ``on_ratio_mean`` and ``approx_kl`` (mean ``lp_old - lp``, on-policy tokens).
  """
  _checks.check_choice(agg_mode, RL_PLUS_AGG_MODES, "aggregation mode")
  if gamma < 0:
    raise ValueError(f"gamma must be >= 0, got {gamma}")
  clip_high = clip_low if clip_high is None else clip_high
  if not 0.0 <= clip_low < 1.0:
    raise ValueError(f"clip_low must be in [0, 1), got {clip_low}")
  if clip_high < 0.0:
    raise ValueError(f"clip_high must be >= 0, got {clip_high}")
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  shape = logprobs.shape
  _checks.check_shape(old_logprobs, shape, "old_logprobs")
  _checks.check_shape(mask, shape, "mask")
  off_rows = jnp.asarray(is_off_policy)
  _checks.check_shape(off_rows, shape[:1], "is_off_policy")
  if off_rows.dtype != jnp.bool_:
    raise ValueError(f"is_off_policy must be a bool array, got dtype {off_rows.dtype}")
  lp = _upcast(logprobs)
  dtype = lp.dtype
  old = sg(_upcast(old_logprobs).astype(dtype))
  adv = _checks.per_sequence_to_tokens(advantages, shape, "advantages").astype(dtype)
  m = jnp.asarray(mask).astype(dtype)
  valid = m > 0
  # Zero outside the mask first so padded garbage (-inf) cannot give NaN gradients.
  lp = jnp.where(valid, lp, 0.0)
  old = jnp.where(valid, old, 0.0)
  off = jnp.broadcast_to(off_rows[:, None], shape)
  off_f = off.astype(dtype)
  on_m, off_m = m * (1.0 - off_f), m * off_f

  # On-policy: (clipped) ratio surrogate.
  log_ratio = jnp.where(off, 0.0, lp - old)
  if log_ratio_clamp is not None:
    log_ratio = jnp.clip(log_ratio, -log_ratio_clamp, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  unclipped = -adv * ratio
  if clip:
    clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
    on_loss = jnp.maximum(unclipped, clipped)
    on_clipped = (clipped > unclipped).astype(dtype)
  else:
    on_loss = unclipped
    on_clipped = jnp.zeros(shape, dtype)

  # Off-policy: MIS ratio times the exploration-weighted advantage.
  lp_off = jnp.where(off, lp, 0.0)
  r_mis = mis_ratio(lp_off, jnp.where(off, old, 0.0))
  scale = jnp.power(jnp.maximum(1.0 - sg(jnp.exp(lp_off)), 0.0), gamma)
  off_loss = -r_mis * adv * scale

  per_token = jnp.where(off, off_loss, on_loss)
  if is_weights is not None:
    w = sg(_checks.per_sequence_to_tokens(is_weights, shape, "is_weights").astype(dtype))
    per_token = per_token * w
  total, count = _aggregate(per_token, m, agg_mode, horizon)
  metrics = {
      "off_ratio_mean": masked_mean(r_mis, off_m),
      "off_adv_scale_mean": masked_mean(scale, off_m),
      "off_token_frac": masked_mean(off_f, m),
      "on_clip_frac": masked_mean(on_clipped, on_m),
      "on_ratio_mean": masked_mean(ratio, on_m),
      "approx_kl": masked_mean(-log_ratio, on_m),
  }
  return LossOutput(total, count, {k: sg(v) for k, v in metrics.items()})

"""SEELE's policy loss: PPO-clip on the generated tokens, imitation on the hint tokens.

Spec: /work/shared/reference/rlvr_methods.md section 12 (arXiv 2509.06923, Eq. 47/48;
PAPER level). With the hint ``y_{1:l}`` forced in front of the generated tokens
(``training/seele.py``)::

    L = -E[ sum_{t generated} min(r_t A, clip(r_t, 1 - eps_low, 1 + eps_high) A)
            + gamma * log pi_theta(y_{1:l} | x) ]                    (+ beta KL, in the step)

i.e. the RL term only on the generated tokens (conditioned on ``x ++ hint``) and a
negative log-likelihood on the hint tokens with weight ``gamma = 0.001``.

Aggregation (documented choice): one per-token array, ``PPO_t`` on generated tokens
(``mask``, i.e. ``loss_mask``) and ``-gamma * lp_t`` on hint tokens (``completion_mask &
~mask``), reduced by :func:`jaxrl_llm.losses.aggregate` over their union. The default
``agg_mode="seq-mean-token-sum"`` is the equation as written: per sequence the sum over
its generated tokens plus ``gamma`` times the hint's sequence log-likelihood (a sum of
token log-probs), the expectation a mean over sequences. Then ``d L / d lp_t = -gamma / K``
on every hint token (``K`` the rows with any completion token); with ``token-mean`` it is
``-gamma / (generated + hint tokens)``.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import aggregate, masked_mean
from jaxrl_llm.losses.policy import pg_clip_metrics
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient


def seele_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
               mask: jax.Array, *, completion_mask: jax.Array, gamma: float = 0.001,
               clip_low: float = 0.2, clip_high: Optional[float] = None,
               log_ratio_clamp: Optional[float] = 20.0, agg_mode: str = "seq-mean-token-sum",
               horizon: Optional[float] = None,
               is_weights: Optional[jax.Array] = None) -> LossOutput:
  """SEELE (arXiv 2509.06923, Eq. 47/48): PPO-clip on generated tokens + gamma * NLL on hints.

  Per token, with ``r_t = exp(clamp(lp_t - lp_old_t, -C, C))`` and ``A`` the advantage::

      generated (mask):              v_t = max(-A r_t, -A clip(r_t, 1 - eps_low, 1 + eps_high))
      hint (completion_mask & ~mask): v_t = -gamma * lp_t
      L = aggregate(v, mask | hint, agg_mode)

  Args:
    logprobs: ``[B, T]`` current-policy log-probs of the completion tokens (hint included).
    old_logprobs: ``[B, T]`` behaviour-policy log-probs (used on generated tokens only).
    advantages: ``[B]`` or ``[B, T]`` (SEELE: Dr. GRPO over the problem's m * n outputs).
    mask: ``[B, T]`` generated tokens (the batch's ``loss_mask``: hints excluded).
    completion_mask: ``[B, T]`` every completion token, the forced hint included.
    gamma: weight of the hint NLL (paper: 0.001); 0 gives plain PPO-clip on the
      generated tokens (aggregated over the union).
    clip_low, clip_high: ``eps_low`` / ``eps_high`` (``clip_high`` defaults to ``clip_low``).
    log_ratio_clamp: clamp of the log-ratio before ``exp`` (None disables).
    agg_mode, horizon: see :func:`aggregate`; the count is over the union of both masks.
    is_weights: optional constant per-token/sequence weights of the PPO term only.

  Returns:
    LossOutput; metrics: ``clip_frac`` / ``clip_frac_low`` / ``clip_frac_high`` /
    ``approx_kl`` / ``ratio_*`` over generated tokens, ``hint_nll`` (mean ``-lp`` over hint
    tokens), ``hint_token_frac`` (hint share of the counted tokens), ``pg_term`` /
    ``nll_term`` (each term's ``total / count`` share of the loss).
  """
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  shape = logprobs.shape
  _checks.check_shape(old_logprobs, shape, "old_logprobs")
  _checks.check_shape(mask, shape, "mask")
  _checks.check_shape(completion_mask, shape, "completion_mask")
  if gamma < 0:
    raise ValueError(f"seele_loss: gamma must be >= 0, got {gamma}")
  clip_high = clip_low if clip_high is None else clip_high
  if not 0.0 <= clip_low < 1.0 or clip_high < 0.0:
    raise ValueError(f"seele_loss: clip_low must be in [0, 1) and clip_high >= 0, got "
                     f"{clip_low}, {clip_high}")
  dtype = jnp.promote_types(logprobs.dtype, jnp.float32)
  lp = logprobs.astype(dtype)
  old = jnp.asarray(old_logprobs).astype(dtype)
  gen = jnp.asarray(mask) > 0
  hint = (jnp.asarray(completion_mask) > 0) & ~gen
  m = gen.astype(dtype)
  adv = _checks.per_sequence_to_tokens(advantages, shape, "advantages").astype(dtype)
  log_ratio = jnp.where(gen, lp - old, 0.0)
  if log_ratio_clamp is not None:
    log_ratio = jnp.clip(log_ratio, -log_ratio_clamp, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  pg = jnp.maximum(-adv * ratio, -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high))
  if is_weights is not None:
    pg = pg * sg(_checks.per_sequence_to_tokens(is_weights, shape, "is_weights").astype(dtype))
  pg = jnp.where(gen, pg, 0.0)
  nll = jnp.where(hint, -gamma * jnp.where(hint, lp, 0.0), 0.0)
  union = gen | hint
  total, count = aggregate(pg + nll, union, agg_mode, horizon=horizon)
  _, metrics = pg_clip_metrics(ratio, log_ratio, adv, m, low=1.0 - clip_low,
                               high=1.0 + clip_high)
  pg_total, _ = aggregate(pg, union, agg_mode, horizon=horizon)
  nll_total, _ = aggregate(nll, union, agg_mode, horizon=horizon)
  safe = jnp.where(count > 0, count, 1.0)
  metrics.update({
      "hint_nll": masked_mean(-lp, hint.astype(dtype)),
      "hint_token_frac": masked_mean(hint.astype(dtype), union.astype(dtype)),
      "pg_term": pg_total / safe,
      "nll_term": nll_total / safe,
  })
  return LossOutput(total, count, {k: sg(v) for k, v in metrics.items()})

"""RAPO: rewards-aware policy optimisation (forward KL to a reward-tilted reference).

Deng, Wei, Yu, Wu 2025, "Unlocking Reasoning Capabilities in LLMs via
Reinforcement Learning Exploration", arXiv 2510.03865.

SECONDARY: no code or method section of the paper was reachable; this follows
spec §3 of ``rlvr_methods.md`` (two third-party summaries that agree) and its
per-token reading. Unconfirmed, hence all options: the per-token (not
sequence-level) KL, the shape of ``phi`` (``"linear"`` here), ``phi_min``,
``alpha``, the entropy weight (``rl.entropy_coef``) and how the normaliser ``Z`` is
handled (per token here, exactly). The objective::

    J = E[r] - alpha KL(pihat_ref || pi_theta) + beta H(pi_theta)
    pihat_ref(y | x) ∝ pi_ref(y | x) ** phi(r(x, y)),   phi increasing, in [0, 1]

Per token with ``z_ref`` the reference logits (at the sampling temperature)::

    log pihat_ref(y_t) = phi_i lp_ref(y_t) - lognorm_t
    lognorm_t          = log sum_a pi_ref(a)^phi_i = logsumexp(phi_i z_ref) - phi_i logsumexp(z_ref)
    u_t                = exp(log pihat_ref(y_t) - lp_t)
    penalty            = alpha token-mean(u log u - u + 1)

``lognorm`` needs the full reference logits; the trainer computes it once per
batch without building ``[tokens, vocab]`` (``jaxrl_llm.training.tilted_reference``)
and stores it in ``RolloutBatch.extras["ref_tilted_lognorm"]``.
"""

from typing import Mapping, Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import aggregate, masked_mean
from jaxrl_llm.losses.divergences import forward_kl_estimate
from jaxrl_llm.losses.policy import ppo_policy_loss
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient

PHI_KINDS = ("linear", "none")
TILTED_LOGNORM_KEY = "ref_tilted_lognorm"


def rapo_phi(rewards: jax.Array, *, phi: str = "linear",
             phi_min: float = 0.5) -> tuple[jax.Array, dict]:
  """RAPO's reward-dependent exponent ``phi(r)``, ``([B], metrics)``. SECONDARY.

  Deng et al. 2025, arXiv 2510.03865, only say ``phi`` is increasing with values
  in ``[0, 1]`` (low reward: a flatter reference, more exploration). Kinds:

  * ``"linear"`` (this library's unconfirmed choice):
    ``phi = clip(phi_min + (1 - phi_min) clip(r, 0, 1), 0, 1)``;
  * ``"none"``: ``phi = 1`` (the untilted reference; plain forward KL).
  """
  _checks.check_choice(phi, PHI_KINDS, "phi")
  _checks.check_rank(rewards, 1, "rewards")
  if not 0.0 <= phi_min <= 1.0:
    raise ValueError(f"phi_min must be in [0, 1], got {phi_min}")
  r = jnp.asarray(rewards).astype(jnp.float32)
  if phi == "none":
    out = jnp.ones_like(r)
  else:
    out = jnp.clip(phi_min + (1.0 - phi_min) * jnp.clip(r, 0.0, 1.0), 0.0, 1.0)
  return sg(out), {"phi_mean": jnp.mean(out)}


def tilted_lognorm_from_logits(ref_logits: jax.Array, phi: jax.Array) -> jax.Array:
  """Dense ``log sum_a pi_ref(a)^phi = logsumexp(phi z) - phi logsumexp(z)`` over the last axis.

  ``ref_logits`` ``[..., V]`` (already divided by the temperature), ``phi``
  broadcastable to ``ref_logits.shape[:-1]``. It is 0 at ``phi = 1`` and
  ``log V`` at ``phi = 0``. The test oracle of the trainer's chunked version.
  """
  z = jnp.asarray(ref_logits).astype(jnp.float32)
  phi = jnp.asarray(phi, jnp.float32)
  return jax.nn.logsumexp(phi[..., None] * z, axis=-1) - phi * jax.nn.logsumexp(z, axis=-1)


def tilted_reference_logprobs(ref_logprobs: jax.Array, lognorm: jax.Array,
                              phi: jax.Array) -> jax.Array:
  """``log pihat_ref(y_t) = phi_i lp_ref(y_t) - lognorm_t``, ``[B, N]``. SECONDARY (see module)."""
  _checks.check_rank(ref_logprobs, 2, "ref_logprobs")
  _checks.check_shape(lognorm, ref_logprobs.shape, "ref_tilted_lognorm")
  _checks.check_shape(phi, ref_logprobs.shape[:1], "phi")
  ref = jnp.asarray(ref_logprobs).astype(jnp.float32)
  return phi[:, None].astype(jnp.float32) * ref - jnp.asarray(lognorm).astype(jnp.float32)


def rapo_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
              mask: jax.Array, *, ref_logprobs: jax.Array, rewards: jax.Array,
              extras: Mapping[str, jax.Array], alpha: float = 0.1, phi: str = "linear",
              phi_min: float = 0.5, clip_low: float = 0.2, clip_high: Optional[float] = None,
              dual_clip: Optional[float] = None, log_ratio_clamp: Optional[float] = 20.0,
              agg_mode: str = "token-mean", horizon: Optional[float] = None,
              is_weights: Optional[jax.Array] = None) -> LossOutput:
  """RAPO: PPO-clip GRPO surrogate plus the forward KL to the reward-tilted reference. SECONDARY.

  Deng et al. 2025, "Unlocking Reasoning Capabilities in LLMs via Reinforcement
  Learning Exploration", arXiv 2510.03865 (per-token reading of spec §3)::

      log pihat_t = phi(r_i) lp_ref,t - lognorm_t
      k_t         = u_t log u_t - u_t + 1,        u_t = exp(log pihat_t - lp_t)
      L           = L_PPO(lp, lp_old, A) + alpha agg(k)

  ``k`` is aggregated with the PPO loss's ``agg_mode`` (token-mean by default), so
  ``(total, count)`` stay exact under micro-batching; ``u`` is not importance
  weighted. The entropy bonus ``beta H`` is the trainer's ``entropy_coef``.
  Unconfirmed constants (options): ``alpha`` (0.1 here), ``phi`` kind and
  ``phi_min`` (0.5 here); ``phi``/``phi_min`` must be the ones the trainer used to
  compute ``extras["ref_tilted_lognorm"]`` (it reads them from the same options).

  Args:
    logprobs, old_logprobs, advantages, mask: as :func:`ppo_policy_loss`.
    ref_logprobs: ``[B, N]`` frozen reference log-probs of the sampled tokens.
    rewards: ``[B]`` rewards (``phi`` reads them).
    extras: the batch's extras; needs ``"ref_tilted_lognorm"`` ``[B, N]``.
    alpha: weight of the forward-KL penalty.
    phi, phi_min: see :func:`rapo_phi`.
    clip_low ... is_weights: options of :func:`ppo_policy_loss`.

  Returns:
    LossOutput; metrics: PPO's, ``forward_kl`` (token mean of ``k``),
    ``phi_mean``, ``tilted_lognorm_mean``, ``tilted_log_ratio_mean``
    (token mean of ``log u``).
  """
  _checks.check_rank(logprobs, 2, "logprobs")
  shape = logprobs.shape
  _checks.check_shape(ref_logprobs, shape, "ref_logprobs")
  _checks.check_shape(rewards, shape[:1], "rewards")
  if TILTED_LOGNORM_KEY not in extras:
    raise ValueError(f"rapo_loss needs extras[{TILTED_LOGNORM_KEY!r}] (filled by the trainer's "
                     f"prepare); got extras {sorted(extras)}")
  if alpha < 0:
    raise ValueError(f"alpha must be >= 0, got {alpha}")
  lognorm = extras[TILTED_LOGNORM_KEY]
  phis, phi_metrics = rapo_phi(rewards, phi=phi, phi_min=phi_min)
  tilted = sg(tilted_reference_logprobs(ref_logprobs, lognorm, phis))
  pg = ppo_policy_loss(logprobs, old_logprobs, advantages, mask, clip_low=clip_low,
                       clip_high=clip_high, dual_clip=dual_clip,
                       log_ratio_clamp=log_ratio_clamp, agg_mode=agg_mode, horizon=horizon,
                       is_weights=is_weights)
  lp = logprobs.astype(jnp.promote_types(logprobs.dtype, jnp.float32))
  m = jnp.asarray(mask).astype(lp.dtype)
  lp_safe = jnp.where(m > 0, lp, tilted)  # padded garbage cannot reach exp()
  k = forward_kl_estimate(lp_safe, tilted, samples_from="policy")
  k_total, _ = aggregate(k, m, agg_mode, horizon=horizon)
  metrics = dict(pg.metrics, **phi_metrics,
                 forward_kl=masked_mean(k, m),
                 tilted_lognorm_mean=masked_mean(jnp.asarray(lognorm, jnp.float32), m),
                 tilted_log_ratio_mean=masked_mean(tilted - lp_safe, m))
  return LossOutput(pg.total + alpha * k_total, pg.count, {k_: sg(v) for k_, v in metrics.items()})

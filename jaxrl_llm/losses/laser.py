"""LaSeR: last-token self-rewarding on top of a GRPO policy loss.

Yang et al. 2025, "LaSeR: Reinforcement Learning with Last-Token Self-Rewarding",
arXiv 2510.14943 (official code RUCBM/LaSeR @48996f7, spec §5 of
``rlvr_methods.md``).

A pre-specified token ``z_c`` is appended right after the response (its EOS) in
the training forward only; its log-probability ``lp_z,i = log pi_theta(z_c | x, y_i)``
(read by the trainer, see ``jaxrl_llm.training.self_reward``) gives the
self-reward score::

    s_i = beta_v * (T * lp_z,i - c_ref)

with ``c_ref`` a constant standing for ``log pi_ref(z_c | x, y_i)`` and ``T`` the
sampling temperature. The score is fitted to the verifier reward ``v_i`` by a
class-balanced squared error over non-truncated responses, and (after a warm-up)
mixed into the GRPO advantage. Everything here takes arrays; nothing reads a
model.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.advantages import group_stats
from jaxrl_llm.losses.aggregation import masked_mean, safe_mean
from jaxrl_llm.losses.policy import ppo_policy_loss
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient


def _check_rows(x, b, name, floating=True):
  _checks.check_shape(x, (b,), name)
  if floating:
    _checks.check_floating(x, name)


def self_reward_scores(self_reward_logprobs: jax.Array, *, beta_v: float = 0.1,
                       c_ref: float = -23.0, temperature: float = 1.0) -> jax.Array:
  """LaSeR's self-reward score ``s_i = beta_v * (T * lp_z,i - c_ref)``, ``[B]``.

  Yang et al. 2025, "LaSeR", arXiv 2510.14943. ``lp_z,i`` is the policy's
  log-prob of the self-reward token ``z_c`` right after response ``i`` (taken at
  temperature ``T``, hence the factor ``T``); ``c_ref`` approximates the
  reference's log-prob of that token (-23.0 for Qwen2.5 in the official
  script). Differentiable in ``self_reward_logprobs``.
  """
  _checks.check_rank(self_reward_logprobs, 1, "self_reward_logprobs")
  _checks.check_floating(self_reward_logprobs, "self_reward_logprobs")
  if beta_v <= 0:
    raise ValueError(f"beta_v must be > 0, got {beta_v}")
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0, got {temperature}")
  lp = self_reward_logprobs.astype(jnp.promote_types(self_reward_logprobs.dtype, jnp.float32))
  return beta_v * (temperature * lp - c_ref)


def self_reward_class_weights(labels: jax.Array, valid: jax.Array) -> tuple[jax.Array, dict]:
  """Class-balanced weights over the valid rows, ``([B] weights, metrics)``.

  With ``N`` valid rows, ``N_1`` of them correct (``labels > 0.5``) and ``N_0``
  incorrect (LaSeR's ``self_reward_loss_balanced``)::

      w_i = N / (2 N_1)   if row i is correct,   N / (2 N_0)   otherwise;  0 if not valid

  so both classes carry half of the loss. A class with no rows gets weight 0
  (there is nothing to weigh); a batch of one class gives ``w = 1/2``.
  """
  _checks.check_rank(labels, 1, "labels")
  b = labels.shape[0]
  _checks.check_shape(valid, (b,), "valid")
  v = jnp.asarray(valid).astype(jnp.float32)
  pos = (labels > 0.5).astype(jnp.float32) * v
  neg = v - pos
  n, n1, n0 = jnp.sum(v), jnp.sum(pos), jnp.sum(neg)
  w = pos * safe_mean(n, 2.0 * n1) + neg * safe_mean(n, 2.0 * n0)
  return w, {"self_reward_pos_frac": safe_mean(n1, n)}


def self_reward_mse(scores: jax.Array, rewards: jax.Array, valid: jax.Array, *,
                    balanced: bool = True) -> LossOutput:
  """LaSeR's self-reward regression ``L_sr = (1/N) sum_i w_i (s_i - v_i)^2`` over valid rows.

  Yang et al. 2025, "LaSeR", arXiv 2510.14943: ``v_i`` is the verifier reward,
  ``N`` the number of valid (non-truncated) rows, ``w`` from
  :func:`self_reward_class_weights` (``balanced=True``) or 1. Returns
  ``LossOutput(total = sum_i w_i (s_i - v_i)^2 valid_i, count = N)`` with metrics
  ``self_reward_accuracy`` (``(s > 0.5) == (v > 0.5)`` on valid rows),
  ``self_reward_mean`` (mean ``s`` on valid rows), ``self_reward_valid_frac``.
  """
  _checks.check_rank(scores, 1, "scores")
  b = scores.shape[0]
  _check_rows(rewards, b, "rewards")
  _checks.check_shape(valid, (b,), "valid")
  v = jnp.asarray(valid).astype(scores.dtype)
  target = rewards.astype(scores.dtype)
  if balanced:
    w, metrics = self_reward_class_weights(target, valid)
    w = w.astype(scores.dtype)
  else:
    w, metrics = v, {}
  total = jnp.sum(w * v * jnp.square(scores - target))
  count = jnp.sum(v)
  hit = ((scores > 0.5) == (target > 0.5)).astype(scores.dtype)
  metrics = dict(metrics,
                 self_reward_accuracy=masked_mean(hit, v),
                 self_reward_mean=masked_mean(scores, v),
                 self_reward_valid_frac=jnp.mean(v))
  return LossOutput(total, count, {k: sg(x) for k, x in metrics.items()})


def self_reward_advantages(scores: jax.Array, valid: jax.Array, advantages: jax.Array, *,
                           group_ids: jax.Array, lam: float = 0.1,
                           tau: float = 0.1) -> tuple[jax.Array, dict]:
  """LaSeR's mixed advantage ``A = (1 - lambda) A_GRPO + lambda A_sr``, ``([B, N], metrics)``.

  Yang et al. 2025, "LaSeR", arXiv 2510.14943::

      s'_i   = clip(sg(s_i), 0, 1)   (0 for a truncated row)
      A_sr,i = (s'_i - mean_g(s')) / std_g(s')   if std_g(s') > tau   else A_GRPO,i

  per prompt group ``g`` (unbiased std, as GRPO). ``advantages`` are the GRPO
  advantages, ``[B]`` or ``[B, N]``; the fallback keeps them token by token.
  Metric ``self_reward_adv_frac``: fraction of rows whose group passed the
  ``tau`` filter.
  """
  _checks.check_rank(scores, 1, "scores")
  b = scores.shape[0]
  _checks.check_shape(valid, (b,), "valid")
  adv = jnp.asarray(advantages)
  if adv.ndim == 1:
    _checks.check_shape(adv, (b,), "advantages")
    adv = adv[:, None]
  else:
    _checks.check_rank(adv, 2, "advantages")
    _checks.check_shape(adv, (b, adv.shape[1]), "advantages")
  if not 0.0 <= lam <= 1.0:
    raise ValueError(f"lam must be in [0, 1], got {lam}")
  if tau < 0:
    raise ValueError(f"tau must be >= 0, got {tau}")
  s = jnp.where(jnp.asarray(valid), jnp.clip(sg(scores), 0.0, 1.0), 0.0).astype(jnp.float32)
  mean, std, _ = group_stats(s, group_ids=group_ids)
  use = std > tau
  a_sr = (s - mean) / jnp.where(use, std, 1.0)
  a_sr = jnp.where(use[:, None], a_sr[:, None].astype(adv.dtype), adv)
  mixed = (1.0 - lam) * adv + lam * a_sr
  return sg(mixed), {"self_reward_adv_frac": jnp.mean(use.astype(jnp.float32))}


def laser_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
               mask: jax.Array, *, self_reward_logprobs: jax.Array,
               self_reward_valid: jax.Array, rewards: jax.Array, group_ids: jax.Array,
               step: Optional[jax.Array] = None, alpha: float = 0.1, beta_v: float = 0.1,
               lam: float = 0.1, tau: float = 0.1, c_ref: float = -23.0,
               temperature: float = 1.0, loss_warmup_steps: int = 0,
               advantage_warmup_steps: int = 0, balanced: bool = True,
               clip_low: float = 0.2, clip_high: Optional[float] = None,
               dual_clip: Optional[float] = None, log_ratio_clamp: Optional[float] = 20.0,
               agg_mode: str = "token-mean", horizon: Optional[float] = None,
               is_weights: Optional[jax.Array] = None) -> LossOutput:
  """LaSeR: PPO-clip GRPO on the mixed advantage plus the self-reward regression.

  Yang et al. 2025, "LaSeR: Reinforcement Learning with Last-Token Self-Rewarding",
  arXiv 2510.14943::

      s_i = beta_v (T lp_z,i - c_ref)                               (self_reward_scores)
      A   = (1 - lambda) A_GRPO + lambda A_sr   if step >= advantage_warmup_steps else A_GRPO
      L   = L_PPO(lp, lp_old, A) + alpha 1[step >= loss_warmup_steps] L_sr
      L_sr = (1/N) sum_{i valid} w_i (s_i - v_i)^2                  (self_reward_mse)

  Defaults are the official ones (alpha 0.1, beta_v 0.1, lambda 0.1, tau 0.1,
  c_ref -23 for Qwen2.5, T 1); the official Qwen2.5-7B recipe starts the loss at
  step 200 and the advantage mixing at step 400.

  The result is one ``(total, count)`` pair under the PPO loss's aggregation:
  ``total = total_PPO + alpha L_sr count_PPO``, so ``total / count`` is the sum of
  the two means. With micro-batches each chunk's ``L_sr`` (and its class
  weights and group statistics) are of that chunk, weighted by its share of the
  counted tokens; with one micro-batch the loss is exact. Groups must be whole
  within what this function sees (``A_sr`` is normalised per group).

  Args:
    logprobs, old_logprobs, advantages, mask: as :func:`ppo_policy_loss`
      (``advantages`` are the GRPO ones).
    self_reward_logprobs: ``[B]`` ``lp_z,i`` from the same forward as ``logprobs``.
    self_reward_valid: ``[B]`` bool, False for truncated rows (no room for
      ``z_c``): they get no self-reward loss and ``s' = 0``.
    rewards: ``[B]`` verifier reward ``v_i`` (correct: ``v > 0.5``).
    group_ids: ``[B]`` prompt groups.
    step: int scalar, the optimiser step before this update (None: both
      warm-ups are over).
    alpha, beta_v, lam, tau, c_ref, temperature: see above.
    loss_warmup_steps, advantage_warmup_steps: first steps of each part.
    balanced: class-balanced ``w`` (else ``w = 1``).
    clip_low ... is_weights: options of :func:`ppo_policy_loss`.

  Returns:
    LossOutput; metrics: PPO's, ``self_reward_loss`` (``L_sr``, logged also
    during the warm-up), ``self_reward_accuracy``, ``self_reward_mean``,
    ``self_reward_valid_frac``, ``self_reward_pos_frac``, ``self_reward_adv_frac``,
    ``self_reward_loss_on``, ``self_reward_adv_on``.
  """
  _checks.check_rank(logprobs, 2, "logprobs")
  b = logprobs.shape[0]
  _check_rows(self_reward_logprobs, b, "self_reward_logprobs")
  _checks.check_shape(self_reward_valid, (b,), "self_reward_valid")
  _check_rows(rewards, b, "rewards")
  if alpha < 0:
    raise ValueError(f"alpha must be >= 0, got {alpha}")
  for name, v in (("loss_warmup_steps", loss_warmup_steps),
                  ("advantage_warmup_steps", advantage_warmup_steps)):
    if v < 0:
      raise ValueError(f"{name} must be >= 0, got {v}")
  valid = jnp.asarray(self_reward_valid).astype(bool)
  scores = self_reward_scores(self_reward_logprobs, beta_v=beta_v, c_ref=c_ref,
                              temperature=temperature)
  if step is None:
    loss_on = adv_on = jnp.ones((), bool)
  else:
    step = jnp.asarray(step)
    loss_on, adv_on = step >= loss_warmup_steps, step >= advantage_warmup_steps
  mixed, adv_metrics = self_reward_advantages(scores, valid, advantages, group_ids=group_ids,
                                              lam=lam, tau=tau)
  adv = _checks.per_sequence_to_tokens(advantages, logprobs.shape, "advantages")
  adv = jnp.where(adv_on, jnp.broadcast_to(mixed, adv.shape).astype(adv.dtype), adv)
  pg = ppo_policy_loss(logprobs, old_logprobs, adv, mask, clip_low=clip_low,
                       clip_high=clip_high, dual_clip=dual_clip,
                       log_ratio_clamp=log_ratio_clamp, agg_mode=agg_mode, horizon=horizon,
                       is_weights=is_weights)
  sr = self_reward_mse(scores, rewards, valid, balanced=balanced)
  l_sr = safe_mean(sr.total, sr.count)
  coef = alpha * loss_on.astype(l_sr.dtype)
  total = pg.total + coef * l_sr * sg(pg.count).astype(l_sr.dtype)
  metrics = dict(pg.metrics, **sr.metrics, **adv_metrics,
                 self_reward_loss=sg(l_sr),
                 self_reward_loss_on=loss_on.astype(jnp.float32),
                 self_reward_adv_on=adv_on.astype(jnp.float32))
  return LossOutput(total, pg.count, {k: sg(v) for k, v in metrics.items()})

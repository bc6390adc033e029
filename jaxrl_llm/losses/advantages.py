"""Advantage estimators for RL on language models.

Outcome estimators take one scalar score per response, ``scores [B]`` (e.g.
the sum of the token-level rewards), and a group structure: either
``group_ids [B]`` (integer prompt ids, groups need not be contiguous nor of equal
size) or a contiguous ``group_size`` (rows ``[k*G, (k+1)*G)`` form group k).
They return ``[B]`` advantages, which the policy losses broadcast over tokens.
Token-level estimators (REINFORCE++, GAE) take ``[B, T]`` arrays and a mask.

Singleton groups follow verl 0.9.1 (``compute_grpo_outcome_advantage``): the
group mean is 0 and the group std is 1 (so GRPO gives ``s / (1 + eps)`` and
RLOO/OPO give ``s``). All estimators are constants for the policy gradient: the
outputs are wrapped in ``stop_gradient``.
"""

from typing import Mapping, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import masked_whiten

sg = jax.lax.stop_gradient

STD_SCOPES = ("group", "batch", "none")


class AdvantageInputs(NamedTuple):
  """What every registered estimator reads (``losses.get_advantage_estimator``).

  rewards:   [B] float, one scalar reward per response (task reward + shaping).
  mask:      [B, T] tokens that get an advantage (the batch's ``loss_mask``).
  group_ids: [B] int, prompt group of each row (any integers; groups need not
             be contiguous nor of equal size).
  values:    [B, T] float critic values ``V(s_t)``, or None (only estimators
             registered with ``uses_values=True`` read them).
  is_off_policy: [B] bool rows not sampled from the current policy (external
             demonstrations, hinted rerolls), or None (all on-policy); estimators
             with an on-policy-only baseline read it.
  token_rewards: [B, T] float per-token rewards (process rewards at step ends +
             the outcome at the last token: ``RolloutBatch.extras["token_rewards"]``,
             written by the ``process_reward`` batch augmenter), or None; only the
             token-level estimators (``gae_token``, ``reinforce_plus_plus_token``) read it.
  """

  rewards: jax.Array
  mask: jax.Array
  group_ids: jax.Array
  values: Optional[jax.Array] = None
  is_off_policy: Optional[jax.Array] = None
  token_rewards: Optional[jax.Array] = None


class AdvantageOutput(NamedTuple):
  """What every registered estimator returns.

  advantages: [B, T] float, 0 off the mask, wrapped in ``stop_gradient``.
  returns:    [B, T] value targets, or None (estimators without a critic).
  metrics:    scalar diagnostics.
  """

  advantages: jax.Array
  returns: Optional[jax.Array]
  metrics: Mapping[str, jax.Array]


def group_index(batch_size: int, group_ids: Optional[jax.Array] = None,
                group_size: Optional[int] = None) -> jax.Array:
  """Dense group index in ``[0, batch_size)`` for every row (jit-safe).

  Exactly one of ``group_ids`` (any integers) and ``group_size`` must be given.
  """
  if (group_ids is None) == (group_size is None):
    raise ValueError("give exactly one of group_ids and group_size")
  if group_size is not None:
    if group_size < 1 or batch_size % group_size:
      raise ValueError(
          f"group_size={group_size} must be >= 1 and divide the batch size {batch_size}")
    return jnp.arange(batch_size) // group_size
  group_ids = jnp.asarray(group_ids)
  _checks.check_shape(group_ids, (batch_size,), "group_ids")
  if not jnp.issubdtype(group_ids.dtype, jnp.integer):
    raise ValueError(f"group_ids must be integers, got dtype {group_ids.dtype}")
  _, inverse = jnp.unique(group_ids, return_inverse=True, size=batch_size,
                          fill_value=jnp.min(group_ids))
  return inverse.reshape(batch_size)


def _segment_sum(x, idx):
  return jax.ops.segment_sum(x, idx, num_segments=x.shape[0])


def group_stats(scores: jax.Array, *, group_ids=None, group_size=None):
  """Per-row group statistics ``(mean, std, count)``, each ``[B]``.

  ``std`` is the unbiased (n - 1) standard deviation (``torch.std``). Singleton
  groups get ``mean = 0, std = 1`` as in verl.
  """
  _checks.check_rank(scores, 1, "scores")
  _checks.check_floating(scores, "scores")
  idx = group_index(scores.shape[0], group_ids, group_size)
  count = _segment_sum(jnp.ones_like(scores), idx)[idx]
  mean = _segment_sum(scores, idx)[idx] / count
  sq = _segment_sum(jnp.square(scores - mean), idx)[idx]
  std = jnp.sqrt(sq / jnp.maximum(count - 1.0, 1.0))
  singleton = count < 2
  return (jnp.where(singleton, 0.0, mean), jnp.where(singleton, 1.0, std), count)


def grpo_advantages(scores: jax.Array, *, group_ids=None, group_size=None,
                    std_scope: str = "group", eps: float = 1e-6) -> jax.Array:
  """GRPO group-normalised advantage.

  Shao et al. 2024, "DeepSeekMath", arXiv 2402.03300::

      A_i = (s_i - mean_g(s)) / (std_g(s) + eps)      std: unbiased (n - 1)

  ``std_scope="none"`` gives Dr. GRPO's ``A_i = s_i - mean_g(s)`` (Liu et al. 2025,
  "Understanding R1-Zero-Like Training: A Critical Perspective", arXiv 2503.20783);
  ``std_scope="batch"`` divides by the unbiased std of the whole batch instead
  (Lite PPO: Liu et al. 2025, "Part I: Tricks or Traps?", arXiv 2508.08221; TRL
  ``scale_rewards="batch"``). ``eps`` is verl's 1e-6 (TRL uses 1e-4). An
  all-equal group gives exactly 0; a singleton gives ``s_i / (1 + eps)`` (verl).
  """
  _checks.check_choice(std_scope, STD_SCOPES, "std_scope")
  mean, std, count = group_stats(scores, group_ids=group_ids, group_size=group_size)
  centred = scores - mean
  if std_scope == "group":
    centred = centred / (std + eps)
  elif std_scope == "batch":
    n = scores.shape[0]
    batch_std = jnp.std(scores, ddof=1) if n > 1 else jnp.ones((), scores.dtype)
    centred = centred / (batch_std + eps)
  return sg(centred)


def dr_grpo_advantages(scores, *, group_ids=None, group_size=None) -> jax.Array:
  """Dr. GRPO: ``A_i = s_i - mean_g(s)`` (no std division); see :func:`grpo_advantages`."""
  return grpo_advantages(scores, group_ids=group_ids, group_size=group_size, std_scope="none")


def lite_ppo_advantages(scores, *, group_ids=None, group_size=None, eps: float = 1e-6):
  """Lite PPO: group mean, batch std: ``(s_i - mean_g) / (std_batch + eps)``.

  See :func:`grpo_advantages` (``std_scope="batch"``).
  """
  return grpo_advantages(scores, group_ids=group_ids, group_size=group_size,
                         std_scope="batch", eps=eps)


def rloo_advantages(scores: jax.Array, *, group_ids=None, group_size=None) -> jax.Array:
  """REINFORCE leave-one-out: ``A_i = s_i - mean_{j != i, j in g} s_j = n/(n-1) (s_i - mean_g)``.

  Kool et al. 2019, "Buy 4 REINFORCE Samples, Get a Baseline for Free!";
  Ahmadian et al. 2024, "Back to Basics", arXiv 2402.14740. Singleton: ``s_i``
  (verl ``rloo``; ``rloo_vectorized`` gives 0 there instead).
  """
  mean, _, count = group_stats(scores, group_ids=group_ids, group_size=group_size)
  factor = jnp.where(count > 1, count / jnp.maximum(count - 1.0, 1.0), 1.0)
  return sg(factor * (scores - mean))


def opo_advantages(scores: jax.Array, lengths: jax.Array, *, group_ids=None,
                   group_size=None) -> jax.Array:
  """OPO length-weighted baseline: ``A_i = s_i - sum_g L_j s_j / sum_g L_j``.

  Hao et al. 2025, "On-Policy RL with Optimal Reward Baseline", arXiv 2505.23585.
  ``lengths [B]`` are response lengths (``mask.sum(-1)``). Singleton: ``s_i``.
  """
  _checks.check_shape(lengths, jnp.shape(scores), "lengths")
  idx = group_index(scores.shape[0], group_ids, group_size)
  lengths = jnp.asarray(lengths).astype(scores.dtype)
  count = _segment_sum(jnp.ones_like(scores), idx)[idx]
  num = _segment_sum(lengths * scores, idx)[idx]
  den = _segment_sum(lengths, idx)[idx]
  baseline = jnp.where((count > 1) & (den > 0), num / jnp.where(den > 0, den, 1.0), 0.0)
  return sg(scores - baseline)


def gpg_advantages(scores: jax.Array, *, group_ids=None, group_size=None,
                   f_norm: float = 1.0) -> jax.Array:
  """GPG advantage ``A_i = alpha (s_i - mean_g) / f_norm``, ``alpha = B / max(#{s != 0}, 1)``.

  Chu et al. 2025, "GPG: A Simple and Strong Reinforcement Learning Baseline for
  Model Reasoning", arXiv 2504.02546 (``alpha`` rescales for groups without
  signal); verl ``gpg`` estimator.
  """
  mean, _, _ = group_stats(scores, group_ids=group_ids, group_size=group_size)
  alpha = scores.shape[0] / jnp.maximum(jnp.sum(scores != 0), 1)
  return sg(alpha * (scores - mean) / f_norm)


def grpo_passk_advantages(scores: jax.Array, *, group_ids=None, group_size=None,
                          normalize_by_std: bool = True, eps: float = 1e-6) -> jax.Array:
  """Pass@k-style GRPO: only the best response of each group gets a non-zero advantage.

  Chen et al. 2025, "Pass@k Training for Adaptively Balancing Exploration and
  Exploitation", arXiv 2508.10751 (verl ``grpo_passk``)::

      A_{argmax_g} = (max_g s - second_max_g s) / (std_g + eps)   (no std if not normalize_by_std)
      A_i = 0 for every other i

  Ties at the top give 0 for the whole group; the first row of the group wins
  the argmax. verl raises for groups of size < 2; here they get 0 (jit-safe).
  """
  _checks.check_rank(scores, 1, "scores")
  idx = group_index(scores.shape[0], group_ids, group_size)
  b = scores.shape[0]
  rows = jnp.arange(b)
  _, std, count = group_stats(scores, group_ids=group_ids, group_size=group_size)
  gmax = jax.ops.segment_max(scores, idx, num_segments=b)[idx]
  first = jax.ops.segment_min(jnp.where(scores == gmax, rows, b), idx, num_segments=b)[idx]
  is_best = rows == first
  second = jax.ops.segment_max(jnp.where(is_best, -jnp.inf, scores), idx, num_segments=b)[idx]
  gap = jnp.where(count > 1, gmax - second, 0.0)
  if normalize_by_std:
    gap = gap / (std + eps)
  return sg(jnp.where(is_best, gap, 0.0))


def _reverse_scan(step, carry, xs):
  """Scans ``step`` over the time axis (axis 1 of ``[B, T]`` inputs) from the end."""
  xs_t = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), xs)
  carry, ys = jax.lax.scan(step, carry, xs_t, reverse=True)
  return carry, jnp.swapaxes(ys, 0, 1)


def discounted_returns(token_rewards: jax.Array, mask: jax.Array, gamma: float = 1.0) -> jax.Array:
  """Masked return-to-go ``G_t = r_t + gamma G_{t'}``, ``t'`` the next masked-in token.

  Masked positions are skipped (the running return carries over them, verl
  0.9.x) and are 0 in the output.
  """
  _checks.check_rank(token_rewards, 2, "token_rewards")
  _checks.check_shape(mask, token_rewards.shape, "mask")
  m = jnp.asarray(mask).astype(token_rewards.dtype)

  def step(running, x):
    r, mt = x
    new = jnp.where(mt > 0, r + gamma * running, running)
    return new, new * mt

  _, returns = _reverse_scan(step, jnp.zeros(token_rewards.shape[0], token_rewards.dtype),
                             (token_rewards, m))
  return returns


def reinforce_plus_plus_advantages(token_rewards: jax.Array, mask: jax.Array, *,
                                   gamma: float = 1.0) -> tuple[jax.Array, jax.Array]:
  """REINFORCE++: batch-whitened discounted returns.

  Hu 2025, "REINFORCE++: A Simple and Efficient Approach for Aligning Large
  Language Models", arXiv 2501.03262::

      G_t = r_t + gamma G_{t+1};   A = masked_whiten(G, mask) * mask

  Returns ``(advantages [B, T], returns [B, T])`` (returns un-whitened), as verl.
  """
  returns = discounted_returns(token_rewards, mask, gamma)
  m = jnp.asarray(mask).astype(token_rewards.dtype)
  return sg(masked_whiten(returns, m) * m), sg(returns)


def reinforce_plus_plus_baseline_advantages(scores: jax.Array, mask: jax.Array, *,
                                            group_ids=None, group_size=None) -> jax.Array:
  """REINFORCE++-baseline: ``A_it = whiten_batch(s_i - mean_g(s)) * m_it``, ``[B, T]``.

  Hu 2025 (arXiv 2501.03262, v3+): the group mean is subtracted per prompt, then
  the tiled token advantages are whitened over all masked tokens of the batch
  (so longer responses weigh more in the statistics), as verl.
  """
  _checks.check_rank(mask, 2, "mask")
  _checks.check_shape(scores, mask.shape[:1], "scores")
  mean, _, _ = group_stats(scores, group_ids=group_ids, group_size=group_size)
  m = jnp.asarray(mask).astype(scores.dtype)
  tiled = (scores - mean)[:, None] * m
  return sg(masked_whiten(tiled, m) * m)


def gae_advantages(token_rewards: jax.Array, values: jax.Array, mask: jax.Array, *,
                   gamma: float = 1.0, lam: float = 1.0,
                   whiten: bool = True) -> tuple[jax.Array, jax.Array]:
  """Generalised advantage estimation over masked tokens, with masked whitening.

  Schulman et al. 2016, "High-Dimensional Continuous Control Using Generalized
  Advantage Estimation", arXiv 1506.02438. Backwards over masked-in tokens::

      delta_t = r_t + gamma V_{t'} - V_t          (t' = next masked-in token; V = 0 past the end)
      A_t     = delta_t + gamma lam A_{t'}
      returns = A + V;   A <- masked_whiten(A, mask)   (if whiten)

  Masked positions are skipped (the carried value and advantage pass over
  them), as verl 0.9.1 ``gae``. Unlike verl, advantages and returns are 0 at
  masked positions (verl leaves whitened garbage there).

  Returns:
    ``(advantages [B, T], returns [B, T])``.
  """
  _checks.check_rank(token_rewards, 2, "token_rewards")
  _checks.check_shape(values, token_rewards.shape, "values")
  _checks.check_shape(mask, token_rewards.shape, "mask")
  m = jnp.asarray(mask).astype(token_rewards.dtype)
  values = sg(values)

  def step(carry, x):
    next_value, next_adv = carry
    r, v, mt = x
    delta = r + gamma * next_value - v
    adv = delta + gamma * lam * next_adv
    keep = mt > 0
    carry = (jnp.where(keep, v, next_value), jnp.where(keep, adv, next_adv))
    return carry, adv

  zeros = jnp.zeros(token_rewards.shape[0], token_rewards.dtype)
  _, adv = _reverse_scan(step, (zeros, zeros), (token_rewards, values, m))
  returns = (adv + values) * m
  if whiten:
    adv = masked_whiten(adv, m)
  return sg(adv * m), sg(returns)

"""Process-reward shaping (Clip, Delta) and placement as token-level rewards.

Gao et al. 2024, "On Designing Effective RL Reward at Training Time" (for LLM
reasoning), arXiv 2410.15115 (spec §14, SECONDARY: the formulas below are
reconstructed from the abstract, a figure description and a review). A PRM gives
``r_k`` for steps ``k = 1..K`` of a response; summing raw step rewards lets a policy
farm reward by repeating correct-but-useless steps, so the paper bounds the
accumulated process reward:

  Clip:        rt_k = min(r_k - eta, 0)                  (no step earns more than 0)
  Delta:       rt_k = r_k - r_{k+1}  (k < K),  rt_K = 0
               => sum_{k >= t} rt_k = r_t - r_K          (telescopes: bounded return)
  Clip-Delta:  Delta applied to the clipped values c_k = min(r_k - eta, 0)

The shaped step rewards sit on each step's last token and the outcome (success)
reward on the response's final token (:func:`place_token_rewards`), and a
token-level estimator (``gae_token`` for PPO, ``reinforce_plus_plus_token``)
reads them from ``RolloutBatch.extras[TOKEN_REWARDS_KEY]``.

Step arrays are ``[B, K]`` with the valid steps of a row first
(``step_mask[b, k]`` True for ``k < K_b``), as the step scorers produce them.
"""

import types

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks

TOKEN_REWARDS_KEY = "token_rewards"


def _check_steps(step_scores, step_mask):
  _checks.check_rank(step_scores, 2, "step_scores")
  _checks.check_floating(step_scores, "step_scores")
  _checks.check_shape(step_mask, step_scores.shape, "step_mask")
  return jnp.asarray(step_mask).astype(bool)


def raw_process_rewards(step_scores: jax.Array, step_mask: jax.Array, *,
                        eta: float = 0.0) -> jax.Array:
  """No shaping: ``rt_k = r_k`` on valid steps, 0 elsewhere (``eta`` unused)."""
  del eta
  m = _check_steps(step_scores, step_mask)
  return jnp.where(m, step_scores, 0.0)


def clip_process_rewards(step_scores: jax.Array, step_mask: jax.Array, *,
                         eta: float = 0.5) -> jax.Array:
  """Clip (arXiv 2410.15115): ``rt_k = min(r_k - eta, 0)`` on valid steps, 0 elsewhere."""
  m = _check_steps(step_scores, step_mask)
  return jnp.where(m, jnp.minimum(step_scores - eta, 0.0), 0.0)


def delta_process_rewards(step_scores: jax.Array, step_mask: jax.Array, *,
                          eta: float = 0.0) -> jax.Array:
  """Delta (arXiv 2410.15115): ``rt_k = r_k - r_{k+1}`` for ``k < K_b``, ``rt_{K_b} = 0``.

  The return from step t is ``sum_{k >= t} rt_k = r_t - r_{K_b}``. ``eta`` unused.
  """
  del eta
  m = _check_steps(step_scores, step_mask)
  nxt = jnp.pad(step_scores[:, 1:], ((0, 0), (0, 1)))
  nxt_valid = jnp.pad(m[:, 1:], ((0, 0), (0, 1)))
  return jnp.where(m & nxt_valid, step_scores - nxt, 0.0)


def clip_delta_process_rewards(step_scores: jax.Array, step_mask: jax.Array, *,
                               eta: float = 0.5) -> jax.Array:
  """Clip-Delta (arXiv 2410.15115): Delta of ``c_k = min(r_k - eta, 0)``:
  ``rt_k = c_k - c_{k+1}`` (k < K_b), ``rt_{K_b} = 0``."""
  return delta_process_rewards(clip_process_rewards(step_scores, step_mask, eta=eta), step_mask)


PROCESS_SHAPINGS = types.MappingProxyType({
    "none": raw_process_rewards,
    "clip": clip_process_rewards,
    "delta": delta_process_rewards,
    "clip_delta": clip_delta_process_rewards,
})


def shape_process_rewards(step_scores: jax.Array, step_mask: jax.Array, *, kind: str,
                          eta: float = 0.5) -> jax.Array:
  """``PROCESS_SHAPINGS[kind](step_scores, step_mask, eta=eta)``, ``[B, K]``."""
  if kind not in PROCESS_SHAPINGS:
    raise ValueError(f"unknown process-reward shaping {kind!r}; known: "
                     f"{', '.join(PROCESS_SHAPINGS)}")
  return PROCESS_SHAPINGS[kind](step_scores, step_mask, eta=eta)


def place_token_rewards(step_rewards: jax.Array, step_end: jax.Array, step_mask: jax.Array,
                        outcome: jax.Array, mask: jax.Array) -> jax.Array:
  """Token-level rewards ``[B, N]``: each step reward at its step-end token plus the
  outcome at the last token of ``mask``::

      R[b, t] = sum_k 1[step_end[b, k] = t] rt[b, k] + 1[t = last_b] outcome[b]

  ``step_end [B, K]`` int token index per step (ignored where ``step_mask`` is False);
  two steps ending on one token add up. A row with an empty ``mask`` gets no outcome.
  A reward on a position outside ``mask`` is skipped by the masked estimators (the
  running return passes over masked positions), so steps must end on masked tokens.
  """
  m = _check_steps(step_rewards, step_mask)
  _checks.check_shape(step_end, step_rewards.shape, "step_end")
  _checks.check_rank(mask, 2, "mask")
  b, n = mask.shape
  _checks.check_shape(outcome, (b,), "outcome")
  if step_rewards.shape[0] != b:
    raise ValueError(f"step_rewards has {step_rewards.shape[0]} rows, mask has {b}")
  rows = jnp.broadcast_to(jnp.arange(b)[:, None], step_end.shape)
  cols = jnp.clip(jnp.asarray(step_end), 0, n - 1)
  values = jnp.where(m, step_rewards, 0.0).astype(jnp.float32)
  out = jnp.zeros((b, n), jnp.float32).at[rows, cols].add(values)
  mi = jnp.asarray(mask).astype(jnp.int32)
  last = n - 1 - jnp.argmax(mi[:, ::-1], axis=1)
  has = jnp.sum(mi, axis=1) > 0
  onehot = jax.nn.one_hot(last, n, dtype=jnp.float32) * has[:, None]
  return out + onehot * jnp.asarray(outcome, jnp.float32)[:, None]

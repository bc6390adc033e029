"""Process rewards on the rollout batch: step scores -> Clip / Delta shaping -> token rewards.

The batch augmenter ``process_reward`` (``rl.batch_augment``) scores every
completion's steps with a rule-based step scorer (``rewards.STEP_SCORERS``, the
project's stand-in for a PRM: there is no learned PRM here), shapes them with
Clip / Delta / Clip-Delta (Gao et al. 2024, arXiv 2410.15115;
``losses.process_rewards``), finds each step's last token, and writes

    R[b, t] = step_coef * sum_k 1[t = end_k] rt_k  +  outcome_coef * 1[t = last_b] r_b

into ``RolloutBatch.extras["token_rewards"]`` (``r_b`` = the batch's reward, task
reward plus any ``rl.reward_shaping``; ``last_b`` = the last ``loss_mask`` token).
``batch.rewards`` is left as is (it is what ``train/reward_mean`` logs). The
token-level estimators ``gae_token`` (PPO + GAE with the value head) and
``reinforce_plus_plus_token`` read the extras; every other estimator ignores them.

A step's last token is the first token ``k`` whose decoded prefix
``decode(tokens[:k + 1])`` reaches the step's end character (binary search, so
``O(steps x log N)`` decodes per row). A step ending outside ``loss_mask`` (a forced
prefix) earns nothing: the estimators skip masked positions.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxrl_llm import data, losses, rewards

PROVIDES = (losses.TOKEN_REWARDS_KEY,)


def check_step_scorer(source, scorer: str, where: str) -> None:
  """Raises a ``ValueError`` naming ``<where>.scorer`` when the registered step scorer
  cannot score the task's first example (e.g. Countdown steps on arithmetic data)."""
  fn = rewards.get_step_scorer(scorer)
  examples, _ = data.take_batch(source, data.DataPosition(0, 0), 1)
  try:
    fn("", examples[0])
  except ValueError as e:
    raise ValueError(f"{where}.scorer={scorer!r} cannot score this task's examples: {e}") from None


def check_process_reward(source, *, scorer: str = "countdown_steps", shaping: str = "clip_delta",
                         eta: float = 0.5, step_coef: float = 1.0, outcome_coef: float = 1.0,
                         max_steps: int = 16):
  """Start-up check of the options: known scorer and shaping, ``max_steps >= 1``, and the
  scorer can read the task's examples (``countdown_steps`` needs Countdown numbers)."""
  del eta, step_coef, outcome_coef
  if shaping not in losses.PROCESS_SHAPINGS:
    raise ValueError(f"rl.batch_augment_kwargs.shaping must be one of "
                     f"{', '.join(losses.PROCESS_SHAPINGS)}, got {shaping!r}")
  if int(max_steps) < 1:
    raise ValueError(f"rl.batch_augment_kwargs.max_steps must be >= 1, got {max_steps}")
  check_step_scorer(source, scorer, "rl.batch_augment_kwargs")


def char_end_to_token(tokenizer, row_tokens, char_end: int) -> int:
  """Index of the first token whose decoded prefix has at least ``char_end`` characters
  (the last token of a text span ending at ``char_end``); ``len(row_tokens) - 1`` if none."""
  n = len(row_tokens)
  lo, hi = 1, n
  while lo < hi:
    mid = (lo + hi) // 2
    if len(tokenizer.decode(row_tokens[:mid])) >= char_end:
      hi = mid
    else:
      lo = mid + 1
  return max(lo - 1, 0)


def score_steps(scorer, texts, examples, group_size: int, *, max_steps: int):
  """``(scores [B, K], ends_chars list, mask [B, K])`` with ``K = max(1, most steps)``."""
  steps = []
  for i, text in enumerate(texts):
    steps.append(tuple(scorer(text, examples[i // group_size]))[:max_steps])
  k = max([1] + [len(s) for s in steps])
  scores = np.zeros((len(texts), k), np.float32)
  mask = np.zeros((len(texts), k), bool)
  for i, s in enumerate(steps):
    scores[i, :len(s)] = [st.score for st in s]
    mask[i, :len(s)] = True
  return scores, [[st.end for st in s] for s in steps], mask


def process_reward_augment(batch, rollouts, *, tokenizer, key, step,
                           scorer: str = "countdown_steps", shaping: str = "clip_delta",
                           eta: float = 0.5, step_coef: float = 1.0, outcome_coef: float = 1.0,
                           max_steps: int = 16):
  """Adds ``extras["token_rewards"] [B, N]`` (see the module docstring); returns ``(batch, metrics)``.

  Options: ``scorer`` (``rewards.STEP_SCORERS``), ``shaping`` (``"none"``, ``"clip"``,
  ``"delta"``, ``"clip_delta"``), ``eta`` (Clip's threshold; 0.5 for {0, 1} rule scores
  is our choice, the paper's value is unverified), ``step_coef`` / ``outcome_coef``,
  ``max_steps`` (steps per completion beyond it are ignored).
  """
  del key, step
  from jaxrl_llm.training.rollout import host_read  # rollout imports this module
  fn = rewards.get_step_scorer(scorer)
  if shaping not in losses.PROCESS_SHAPINGS:
    raise ValueError(f"process_reward: unknown shaping {shaping!r}; known: "
                     f"{', '.join(losses.PROCESS_SHAPINGS)}")
  b = batch.num_rows
  examples = list(rollouts.examples)
  if not examples or b % len(examples):
    raise ValueError(f"process_reward: {b} rows for {len(examples)} group examples")
  g = b // len(examples)
  texts = list(rollouts.completions)
  scores, ends, smask = score_steps(fn, texts, examples, g, max_steps=max_steps)
  tokens = host_read(batch.completion_tokens)
  lengths = host_read(batch.completion_mask).astype(bool).sum(axis=1)
  end_tok = np.zeros(scores.shape, np.int32)
  for i, row_ends in enumerate(ends):
    row = tokens[i, :lengths[i]]
    for k, e in enumerate(row_ends):
      end_tok[i, k] = char_end_to_token(tokenizer, row, e)
  shaped = losses.shape_process_rewards(jnp.asarray(scores), jnp.asarray(smask), kind=shaping,
                                        eta=eta)
  token_rewards = losses.place_token_rewards(
      step_coef * shaped, jnp.asarray(end_tok), jnp.asarray(smask),
      outcome_coef * jnp.asarray(batch.rewards, jnp.float32), batch.loss_mask)
  n_steps = smask.sum(axis=1)
  shaped_np = np.asarray(shaped)
  metrics = {
      "process_steps_mean": float(n_steps.mean()),
      "process_step_score_mean": float(scores[smask].mean()) if smask.any() else 0.0,
      "process_shaped_sum_mean": float((shaped_np * smask).sum(axis=1).mean()),
      "process_token_reward_sum_mean": float(jnp.mean(jnp.sum(token_rewards, axis=1))),
  }
  extras = dict(batch.extras, **{losses.TOKEN_REWARDS_KEY: token_rewards})
  return batch.replace(extras=extras), metrics

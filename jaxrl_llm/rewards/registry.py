"""Reward functions by name, a batched helper and a weighted combination.

Every registered function has the signature ``fn(completion: str, example) -> float``.
"""

from __future__ import annotations

import types
from typing import Callable, Mapping, Sequence

import numpy as np

from jaxrl_llm.rewards import answers, format as format_rewards
from jaxrl_llm.rewards import calibration

RewardFn = Callable[[str, object], float]

REWARD_FNS = types.MappingProxyType({
    "exact_answer": answers.exact_answer_reward,
    "arithmetic": answers.exact_answer_reward,
    "math": answers.math_answer_reward,
    "gsm8k": answers.math_answer_reward,
    "countdown": answers.countdown_reward,
    "countdown_use_all": answers.countdown_use_all_reward,
    "answer_tag_format": format_rewards.answer_tag_format_reward,
    "boxed_format": format_rewards.boxed_format_reward,
    "answer_present": format_rewards.answer_present_reward,
    # RLCR (arXiv 2507.16806): acc - (q - acc)^2 in [-1, 1]; the released weighted sum in [0, 1.5]
    "rlcr": calibration.rlcr_reward,
    "rlcr_code": calibration.rlcr_code_reward,
})


def get_reward_fn(name: str) -> RewardFn:
  """The reward function registered under ``name`` (see ``REWARD_FNS``)."""
  if name not in REWARD_FNS:
    raise ValueError(f"unknown reward function {name!r}; known: {', '.join(sorted(REWARD_FNS))}")
  return REWARD_FNS[name]


def weighted_reward_fn(weights: Mapping[str, float]) -> RewardFn:
  """``fn(c, ex) = sum_k w_k * REWARD_FNS[k](c, ex)``, e.g. ``{"math": 1.0, "answer_tag_format": 0.1}``."""
  if not weights:
    raise ValueError("weighted_reward_fn: weights is empty")
  fns = tuple((get_reward_fn(name), float(w)) for name, w in weights.items())

  def reward(completion: str, example) -> float:
    return float(sum(w * fn(completion, example) for fn, w in fns))

  return reward


def batch_rewards(reward_fn, completions: Sequence[str], examples: Sequence,
                  *, group_size: int = 1) -> np.ndarray:
  """``rewards[i] = reward_fn(completions[i], examples[i // group_size])`` as float32 ``[B]``.

  ``reward_fn`` is a function or a registry name. With GRPO groups laid out
  contiguously, pass the ``B / group_size`` prompts' examples and the group size.
  """
  fn = get_reward_fn(reward_fn) if isinstance(reward_fn, str) else reward_fn
  if group_size < 1:
    raise ValueError(f"batch_rewards: group_size must be >= 1, got {group_size}")
  if len(completions) != len(examples) * group_size:
    raise ValueError(f"batch_rewards: len(completions)={len(completions)} != "
                     f"len(examples)={len(examples)} * group_size={group_size}")
  out = np.empty((len(completions),), np.float32)
  for i, completion in enumerate(completions):
    out[i] = fn(completion, examples[i // group_size])
  return out

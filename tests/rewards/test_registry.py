"""Registry lookup, batched rewards with groups, weighted combinations."""

import numpy as np
import pytest

from jaxrl_llm.rewards import (REWARD_FNS, batch_rewards, countdown_reward, exact_answer_reward,
                               get_reward_fn, math_answer_reward, weighted_reward_fn)


def test_get_reward_fn():
  assert get_reward_fn("arithmetic") is exact_answer_reward
  assert get_reward_fn("gsm8k") is math_answer_reward
  assert get_reward_fn("countdown") is countdown_reward
  with pytest.raises(ValueError) as err:
    get_reward_fn("bleu")
  msg = str(err.value)
  assert "'bleu'" in msg and all(name in msg for name in REWARD_FNS)


def test_batch_rewards_with_groups():
  examples = [{"answer": "46"}, {"answer": "12"}]
  out = batch_rewards("arithmetic", ["46", "45", "12", "12"], examples, group_size=2)
  assert out.dtype == np.float32 and out.shape == (4,)
  np.testing.assert_array_equal(out, [1.0, 0.0, 1.0, 1.0])
  np.testing.assert_array_equal(batch_rewards(exact_answer_reward, ["12"], ["12"]), [1.0])
  with pytest.raises(ValueError, match="group_size=2"):
    batch_rewards("arithmetic", ["1", "2", "3"], examples, group_size=2)
  with pytest.raises(ValueError, match="group_size"):
    batch_rewards("arithmetic", [], [], group_size=0)


def test_weighted_reward_fn():
  fn = weighted_reward_fn({"math": 1.0, "answer_tag_format": 0.5})
  assert fn("<answer>5</answer>", {"answer": "5"}) == 1.5
  assert fn("<answer>4</answer>", {"answer": "5"}) == 0.5
  assert fn("5", {"answer": "5"}) == 1.0
  with pytest.raises(ValueError, match="unknown reward function 'nope'"):
    weighted_reward_fn({"nope": 1.0})
  with pytest.raises(ValueError, match="empty"):
    weighted_reward_fn({})

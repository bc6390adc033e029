"""training.curriculum: SELF's greedy filter and top-up, DRIVE's retain/drop/refill rule
(by hand), and both rollout methods on the tiny model with rewards fixed per prompt (so
which prompts are kept is known), including the JSON round trip of DRIVE's state."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxrl_llm import data, models
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.training import curriculum, rollout


def _tiny():
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  return tok, config, models.init_params(config, jax.random.key(0))


def _by_a(text, ex):
  """Reward by prompt only: 1 when the first operand is even (whatever the text)."""
  del text
  return 1.0 if ex.metadata["a"] % 2 == 0 else 0.0


def _ctx(num_prompts, group_size, reward_fn=_by_a, step=0):
  tok, config, params = _tiny()
  opts = dict(num_prompts=num_prompts, group_size=group_size, max_new_tokens=2)
  return rollout.RolloutContext(config, params, tok, reward_fn, step, opts)


# ---- SELF ---------------------------------------------------------------------------------


def test_greedy_filter_and_fill_prompts_by_hand():
  np.testing.assert_array_equal(curriculum.greedy_filter([1.0, 0.0, 0.5, 1.0]),
                                [False, True, True, False])
  np.testing.assert_array_equal(curriculum.greedy_filter([0.5, 0.4], correct_threshold=0.5),
                                [False, True])
  assert curriculum.fill_prompts(["a", "b", "c"], ["x"], 2) == (["a", "b"], 0)
  assert curriculum.fill_prompts(["a", "b"], ["x", "y", "z"], 4) == (["a", "b", "x", "y"], 2)
  assert curriculum.fill_prompts(["a", "b"], ["x"], 5, "repeat") == (
      ["a", "b", "a", "b", "a"], 3)
  assert curriculum.fill_prompts([], ["x", "y"], 3, "repeat") == (["x", "y", "x"], 3)
  with pytest.raises(ValueError, match="top_up must be one of"):
    curriculum.fill_prompts([], ["x"], 1, "drop")
  with pytest.raises(ValueError, match="max_rounds"):
    curriculum.check_self(None, max_rounds=0)


def test_self_keeps_the_greedy_failures_over_rounds_and_tops_up():
  src = ArithmeticTask(digits=2)
  stream = src.examples(0, 0, 12)
  odd = [e.prompt for e in stream if e.metadata["a"] % 2]
  even = [e.prompt for e in stream if e.metadata["a"] % 2 == 0]
  # 4 prompts per round; the first 3 rounds (12 prompts) hold len(odd) odd-a prompts.
  assert 4 <= len(odd) < 12, odd
  ctx = _ctx(4, 2)
  ro, state = curriculum.self_rollouts(ctx, src, data.DataPosition(0, 0), jax.random.key(1),
                                       {"x": 1}, max_rounds=3)
  assert state == {"x": 1}
  assert [e.prompt for e in ro.examples] == odd[:4]  # kept, in draw order
  rounds = next(r for r in (1, 2, 3) if sum(e.metadata["a"] % 2 for e in stream[:4 * r]) >= 4)
  assert ro.position == data.DataPosition(0, 4 * rounds)
  assert ro.metrics["self_rounds"] == rounds and ro.metrics["self_topped_up"] == 0
  drawn = stream[:4 * rounds]
  n_odd = sum(e.metadata["a"] % 2 for e in drawn)
  assert ro.metrics["self_kept_frac"] == pytest.approx(n_odd / len(drawn))
  assert ro.metrics["self_greedy_accuracy"] == pytest.approx(1 - n_odd / len(drawn))
  np.testing.assert_array_equal(ro.task_rewards, np.zeros(8))  # only failures trained on
  assert ro.batch.num_rows == 8
  # One round only: fewer failures than 4 -> topped up with the solved prompts of round 1.
  first = stream[:4]
  k = sum(e.metadata["a"] % 2 for e in first)
  ro, _ = curriculum.self_rollouts(ctx, src, data.DataPosition(0, 0), jax.random.key(1), {},
                                   max_rounds=1)
  expect = [e.prompt for e in first if e.metadata["a"] % 2] + [
      e.prompt for e in first if e.metadata["a"] % 2 == 0]
  assert [e.prompt for e in ro.examples] == expect
  assert ro.metrics["self_topped_up"] == 4 - k and ro.position == data.DataPosition(0, 4)
  assert even  # the stream has greedy-solved prompts too


def test_self_uses_the_greedy_completion_of_the_current_policy():
  # Reward 1 iff the completion equals the greedy one: every prompt is "solved", the batch
  # is all top-up and greedy accuracy is 1.
  tok, config, params = _tiny()
  src = ArithmeticTask(digits=2)
  ex = src.examples(0, 0, 4)
  greedy = rollout.sample_groups(config, params, tok, ex, jax.random.key(9), group_size=1,
                                 max_new_tokens=2, temperature=0.0).texts
  table = {e.prompt: t for e, t in zip(ex, greedy)}
  ctx = rollout.RolloutContext(config, params, tok,
                               lambda t, e: float(table.get(e.prompt) == t), 0,
                               dict(num_prompts=4, group_size=2, max_new_tokens=2))
  ro, _ = curriculum.self_rollouts(ctx, src, data.DataPosition(0, 0), jax.random.key(1), {},
                                   max_rounds=1)
  assert ro.metrics["self_greedy_accuracy"] == 1.0 and ro.metrics["self_kept_frac"] == 0.0
  assert ro.metrics["self_topped_up"] == 4


# ---- DRIVE --------------------------------------------------------------------------------


def test_drive_update_by_hand():
  hard = [{"pos": [0, 1], "acc": [0.5]}, {"pos": [0, 2], "acc": [0.0]},
          {"pos": [0, 3], "acc": [0.25]}]
  fresh = [([0, 7], 0.0), ([0, 8], 0.5), ([0, 9], 0.25)]
  # Used: [0,1] -> acc [.5, 1] mean .75 >= .75: dropped; [0,2] -> [0, .25] mean .125:
  # kept, to the back. [0,3] unused stays in front. Fresh: 0 and .25 < .5 admitted.
  out, counts = curriculum.drive_update(hard, 2, [1.0, 0.25], fresh, solved_threshold=0.75,
                                        admit_threshold=0.5, window=2, capacity=8)
  assert out == [{"pos": [0, 3], "acc": [0.25]}, {"pos": [0, 2], "acc": [0.0, 0.25]},
                 {"pos": [0, 7], "acc": [0.0]}, {"pos": [0, 9], "acc": [0.25]}]
  assert counts == {"dropped": 1, "admitted": 2, "evicted": 0}
  # Capacity 3: means .25, .125, 0, .25 -> the easiest (.25) of which the newest goes.
  out3, counts = curriculum.drive_update(hard, 2, [1.0, 0.25], fresh, window=2, capacity=3)
  assert [e["pos"] for e in out3] == [[0, 3], [0, 2], [0, 7]] and counts["evicted"] == 1
  # Window 1: only the last accuracy counts: [0,2] at .25 stays, [0,1] at 1 dropped.
  out1, _ = curriculum.drive_update(hard, 2, [1.0, 0.25], [], window=1)
  assert out1 == [{"pos": [0, 3], "acc": [0.25]}, {"pos": [0, 2], "acc": [0.25]}]
  assert json.loads(json.dumps(out)) == out
  with pytest.raises(ValueError, match="used=4"):
    curriculum.drive_update(hard, 4, [0.0] * 4, [])
  with pytest.raises(ValueError, match="hard_fraction"):
    curriculum.check_drive(ArithmeticTask(digits=2), hard_fraction=1.5)


def test_drive_retains_failed_prompts_and_replays_them_after_a_json_round_trip():
  src = ArithmeticTask(digits=2)
  stream = src.examples(0, 0, 6)
  ctx = _ctx(4, 2)
  state = curriculum.drive_init(src)
  ro, state = curriculum.drive_rollouts(ctx, src, data.DataPosition(0, 0), jax.random.key(1),
                                        state, hard_fraction=0.5)
  assert [e.prompt for e in ro.examples] == [e.prompt for e in stream[:4]]
  failed = [j for j in range(4) if stream[j].metadata["a"] % 2]  # accuracy 0 < .5
  assert failed == [1, 3]  # 56-3, 99-37, 2-2, 95-72
  assert [e["pos"] for e in state["hard"]] == [[0, j] for j in failed]
  assert ro.metrics["drive_admitted"] == len(failed) and np.isnan(
      ro.metrics["drive_hard_accuracy"])
  assert ro.position == data.DataPosition(0, 4)
  restored = json.loads(json.dumps(state))
  ro2, state2 = curriculum.drive_rollouts(ctx._replace(step=1), src, ro.position,
                                          jax.random.key(2), restored, hard_fraction=0.5)
  n_hard = min(len(failed), 2)
  hard_prompts = [stream[j].prompt for j in failed[:n_hard]]
  assert [e.prompt for e in ro2.examples] == hard_prompts + [
      e.prompt for e in src.examples(0, 4, 4 - n_hard)]
  assert ro2.metrics["drive_hard_prompts"] == n_hard
  assert ro2.metrics["drive_hard_accuracy"] == 0.0 and ro2.metrics["drive_dropped"] == 0
  # The used entries moved to the back with a second accuracy of 0.
  assert state2["hard"][-n_hard - int(ro2.metrics["drive_admitted"]):][:n_hard] == [
      {"pos": [0, j], "acc": [0.0, 0.0]} for j in failed[:n_hard]]
  assert ro2.position == data.DataPosition(0, 4 + 4 - n_hard)

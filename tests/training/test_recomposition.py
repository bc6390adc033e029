"""training.recomposition (RoRecomp, arXiv 2509.25958): the priority rule by hand, buffer
rows at the batch's widths, FIFO capacity, and two iterations of the rollout method on the
tiny model (fresh loss only on priority rows, replayed groups whole with the loss on their
compensation rows, row count kept, JSON state)."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from jaxrl_llm import data, models
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.training import recomposition as rr
from jaxrl_llm.training import rollout


def test_priority_rows_by_hand():
  # Group 1: lengths 2 5 7 3, median 4: correct 2 (short) and incorrect 7 (long).
  # Group 2: all lengths 4 -> nothing strictly shorter or longer: all compensation.
  # Group 3: lengths 1 2 3 6, median 2.5: correct 2 (short), incorrect 6 (long); the
  # incorrect 1 is short and the correct 3 long -> compensation.
  correct = [1, 1, 0, 0, 1, 0, 1, 0, 0, 1, 1, 0]
  lengths = [2, 5, 7, 3, 4, 4, 4, 4, 1, 2, 3, 6]
  prio, counts = rr.priority_rows(np.asarray(correct, bool), lengths, 4)
  np.testing.assert_array_equal(prio, [1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1])
  assert counts == {"short_correct": 2, "long_incorrect": 2}
  # Odd group (3): median is the middle length 3: correct 1 short, incorrect 5 long.
  prio, _ = rr.priority_rows(np.asarray([1, 0, 0], bool), [1, 3, 5], 3)
  np.testing.assert_array_equal(prio, [True, False, True])
  with pytest.raises(ValueError, match="groups of 4"):
    rr.priority_rows(np.ones(6, bool), np.ones(6), 4)


def _group():
  ex = data.Example("1+2=", "3", completion="3", task="arithmetic", metadata={"t": (1, 2)})
  # Two rows: row 0 (3 tokens, the first forced), row 1 (1 token); prompt of 2 tokens in a
  # width-3 left-padded row.
  return rr.group_record(
      np.array([[0, 7, 8], [0, 7, 8]]), np.array([[0, 1, 1], [0, 1, 1]]),
      np.array([[5, 6, 2, 0], [9, 0, 0, 0]]), np.array([[1, 1, 1, 0], [1, 0, 0, 0]], bool),
      np.array([[0, 1, 1, 0], [1, 0, 0, 0]], bool),
      np.array([[-0.5, -1.0, -2.0, 0.0], [-3.0, 0.0, 0.0, 0.0]]),
      [1.0, 0.0], [1.0, 0.0], [True, False], ["ab", "c"], ex, step=4)


def test_group_record_json_round_trip_and_replay_arrays():
  g = json.loads(json.dumps(_group()))
  assert g["prompt"] == [7, 8] and g["completions"] == [[5, 6, 2], [9]]
  assert rr.example_from_json(g["example"]).metadata == {"t": (1, 2)}
  out = rr.replay_arrays([g], prompt_width=4, completion_width=5, pad_id=0)
  np.testing.assert_array_equal(out["prompt_tokens"], [[0, 0, 7, 8]] * 2)
  np.testing.assert_array_equal(out["prompt_mask"], [[0, 0, 1, 1]] * 2)
  np.testing.assert_array_equal(out["completion_tokens"], [[5, 6, 2, 0, 0], [9, 0, 0, 0, 0]])
  np.testing.assert_array_equal(out["completion_mask"], [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0]])
  # Loss on the replay (compensation) row 0 without its forced first token; none on row 1.
  np.testing.assert_array_equal(out["loss_mask"], [[0, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
  np.testing.assert_allclose(out["sampler_logprobs"][0], [-0.5, -1.0, -2.0, 0.0, 0.0])
  np.testing.assert_array_equal(out["rewards"], [1.0, 0.0])
  cut = rr.replay_arrays([g], prompt_width=2, completion_width=2, pad_id=3)
  np.testing.assert_array_equal(cut["completion_tokens"], [[5, 6], [9, 3]])
  with pytest.raises(ValueError, match="wider than 1"):
    rr.replay_arrays([g], prompt_width=1, completion_width=2, pad_id=0)


def test_push_groups_keeps_the_newest():
  buf, ev = rr.push_groups([{"i": 0}, {"i": 1}], [{"i": 2}, {"i": 3}], capacity=3)
  assert [b["i"] for b in buf] == [1, 2, 3] and ev == 1
  assert rr.push_groups([], [{"i": 0}], 2) == ([{"i": 0}], 0)


def _ctx():
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  params = models.init_params(config, jax.random.key(0))
  # Half the vocabulary stops a completion, so lengths vary; reward: odd length text.
  opts = dict(num_prompts=3, group_size=4, max_new_tokens=6,
              stop_tokens=tuple(range(3, tok.vocab_size, 2)))
  return rollout.RolloutContext(config, params, tok, lambda t, e: float(len(t) % 2), 0, opts)


def test_rorecomp_two_iterations_on_the_tiny_model():
  # Iteration 1: 2 prompts, empty buffer -> 2 fresh groups; iteration 2: 3 prompts with
  # one replayed group -> again 2 fresh groups (one sampler shape, one compile).
  ctx3, src = _ctx(), ArithmeticTask(digits=2)
  ctx = ctx3._replace(options=dict(ctx3.options, num_prompts=2))
  ro, state = rr.rorecomp_rollouts(ctx, src, data.DataPosition(0, 0), jax.random.key(1),
                                   rr.rorecomp_init(src), replay_groups=1, capacity=4)
  b = ro.batch
  assert b.num_rows == 8 and ro.metrics["rorecomp_replay_groups"] == 0
  lengths = np.asarray(b.completion_mask).sum(1)
  correct = ro.task_rewards >= 1.0
  # Independent transcription of the rule: per group, strictly short-correct / long-wrong.
  prio = np.zeros(8, bool)
  for j in range(2):
    l, c = lengths[4 * j:4 * j + 4], correct[4 * j:4 * j + 4]
    m = np.sort(l)[1:3].mean()
    prio[4 * j:4 * j + 4] = (c & (l < m)) | (~c & (l > m))
  assert 0 < prio.sum() < 8, (lengths, correct)
  np.testing.assert_array_equal(np.asarray(b.loss_mask).any(1), prio & (lengths > 0))
  assert not np.asarray(b.is_off_policy).any()
  uniform = [np.ptp(ro.task_rewards[4 * j:4 * j + 4]) == 0 for j in range(2)]
  stored = [j for j in range(2) if not prio[4 * j:4 * j + 4].all() and not uniform[j]]
  assert len(state["buffer"]) == len(stored) > 0, (prio, uniform)
  assert ro.metrics["rorecomp_priority_frac"] == pytest.approx(prio.mean())
  first = state["buffer"][0]
  j = stored[0]
  assert first["replay"] == list(~prio[4 * j:4 * j + 4])
  assert first["example"]["prompt"] == ro.examples[j].prompt

  # Iteration 2 from the JSON state: 2 fresh groups + the oldest buffered group.
  restored = json.loads(json.dumps(state))
  ro2, state2 = rr.rorecomp_rollouts(ctx3._replace(step=1), src, ro.position, jax.random.key(2),
                                     restored, replay_groups=1, capacity=4)
  b2 = ro2.batch
  assert b2.num_rows == 12 and ro2.metrics["rorecomp_replay_groups"] == 1
  assert ro2.position == data.DataPosition(0, 4)  # 2 + 2 prompts drawn
  np.testing.assert_array_equal(np.asarray(b2.is_off_policy), [False] * 8 + [True] * 4)
  np.testing.assert_array_equal(np.asarray(b2.group_ids), np.arange(12) // 4)
  # The replayed group is the first one of iteration 1: same tokens and rewards, loss on
  # its compensation rows only.
  rows = slice(4 * j, 4 * j + 4)
  np.testing.assert_array_equal(np.asarray(b2.completion_tokens)[8:] * np.asarray(
      b2.completion_mask)[8:], np.asarray(b.completion_tokens)[rows] * np.asarray(
          b.completion_mask)[rows])
  np.testing.assert_array_equal(np.asarray(b2.rewards)[8:], np.asarray(b.rewards)[rows])
  np.testing.assert_array_equal(np.asarray(b2.loss_mask)[8:].any(1),
                                ~prio[rows] & (lengths[rows] > 0))
  assert ro2.examples[2].prompt == ro.examples[j].prompt and len(ro2.completions) == 12
  np.testing.assert_array_equal(np.asarray(b2.prompt_tokens)[8:][:, -len(first["prompt"]):],
                                [first["prompt"]] * 4)
  assert len(state2["buffer"]) <= 4 and json.loads(json.dumps(state2)) == state2

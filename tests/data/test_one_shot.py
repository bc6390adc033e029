"""1-shot RLVR data pieces: historical-variance ranking, the accuracy log, restricted sources."""

import math

import numpy as np
import pytest

from jaxrl_llm import data
from jaxrl_llm.data import one_shot

NAN = float("nan")
# Per-example accuracy over 3 epochs; population std (ddof 0) by hand:
#   row 0: 0, .5, 1      mean .5, squares .25 + 0 + .25 -> var 1/6, std 0.40825
#   row 1: 1, 1, 1       std 0
#   row 2: 0, 1, (nan)   two epochs seen: mean .5, var .25, std .5
#   row 3: .25 .25 .75   mean 5/12, deviations -1/6, -1/6, 1/3 -> var (1/36+1/36+1/9)/3 = 1/18
#   row 4: never seen    NaN score, ranked last
ACC = np.array([[0.0, 0.5, 1.0], [1.0, 1.0, 1.0], [0.0, 1.0, NAN], [0.25, 0.25, 0.75],
                [NAN, NAN, NAN]])


def test_ranking_hand_matrix():
  order, scores = one_shot.historical_variance_ranking(ACC)
  np.testing.assert_allclose(scores[:4], [math.sqrt(1 / 6), 0.0, 0.5, math.sqrt(1 / 18)],
                             rtol=1e-12)
  assert math.isnan(scores[4])
  assert order.tolist() == [2, 0, 3, 1, 4]


def test_ranking_sample_std_and_ties():
  order, scores = one_shot.historical_variance_ranking(ACC, ddof=1)
  # row 0: (.25 + .25) / 2 -> std .5; row 2: .5 / 1 -> sqrt(.5); row 3: (1/6) / 2 -> sqrt(1/12)
  np.testing.assert_allclose(scores[[0, 2, 3]], [0.5, math.sqrt(0.5), math.sqrt(1 / 12)])
  assert order.tolist() == [2, 0, 3, 1, 4]
  # Equal scores keep the lower row first.
  order, _ = one_shot.historical_variance_ranking([[0, 1], [1, 1], [1, 0]])
  assert order.tolist() == [0, 2, 1]


def test_ranking_bad_inputs():
  with pytest.raises(ValueError, match="accuracy"):
    one_shot.historical_variance_ranking(np.zeros(3))
  with pytest.raises(ValueError, match="ranking method"):
    one_shot.historical_variance_ranking(ACC, method="range")


def _ex(prompt):
  return data.Example(prompt=prompt, answer="1", completion="1")


def test_accuracy_records_and_matrix(tmp_path):
  a, b, c = _ex("a="), _ex("b="), _ex("c=")
  indices = one_shot.example_indices(data.ListSource([a, b, c]))
  assert indices == {"a=": 0, "b=": 1, "c=": 2}
  # step 1: groups a (rewards 1, 0 -> accuracy .5) and b (0, 0 -> 0)
  rec1 = one_shot.accuracy_records(1, [a, b], [1.0, 0.0, 0.0, 0.0], 2, indices=indices)
  assert rec1[0] == {"step": 1, "index": 0, "prompt": "a=", "rewards": [1.0, 0.0],
                     "accuracy": 0.5}
  # step 2: c (1, 1 -> 1) and a (1, 1 -> 1); a reward of 0.5 is not correct at threshold 1
  rec2 = one_shot.accuracy_records(2, [c, a], [1.0, 1.0, 1.0, 1.0], 2, indices=indices)
  rec3 = one_shot.accuracy_records(3, [b], [0.5, 1.0], 2, indices=indices)
  assert rec3[0]["accuracy"] == 0.5
  path = tmp_path / "log" / "acc.jsonl"
  one_shot.append_jsonl(str(path), rec2)   # written out of step order on purpose
  one_shot.append_jsonl(str(path), rec1 + rec3)
  ids, acc = one_shot.accuracy_matrix(str(path))
  assert ids == [0, 1, 2]
  # a: epochs .5 (step 1), 1 (step 2); b: 0, .5; c: 1, missing
  np.testing.assert_array_equal(acc[:, 0], [0.5, 0.0, 1.0])
  np.testing.assert_array_equal(acc[:2, 1], [1.0, 0.5])
  assert math.isnan(acc[2, 1])
  ids1, acc1 = one_shot.accuracy_matrix(rec1 + rec2, num_epochs=1)
  assert acc1.shape == (3, 1)
  order, _ = one_shot.historical_variance_ranking(acc)
  assert order.tolist() == [0, 1, 2]  # a and b have std .25, c has a single epoch (std 0)


def test_accuracy_matrix_without_indices_keys_by_prompt():
  recs = one_shot.accuracy_records(0, [_ex("x="), _ex("y=")], [1, 0], 1)
  assert [r["index"] for r in recs] == [None, None]
  ids, acc = one_shot.accuracy_matrix(recs)
  assert ids == ["x=", "y="]
  np.testing.assert_array_equal(acc[:, 0], [1.0, 0.0])
  with pytest.raises(ValueError, match="group_size"):
    one_shot.accuracy_records(0, [_ex("x=")], [1, 0, 1], 2)
  with pytest.raises(ValueError, match="does not exist"):
    one_shot.accuracy_matrix("/nonexistent/acc.jsonl")


def test_only_examples_fills_the_batch():
  items = [_ex("a="), _ex("b="), _ex("c=")]
  src = one_shot.only_examples_source(data.ListSource(items), (2,))
  batch, pos = data.take_batch(src, data.DataPosition(0, 0), 5)
  assert [e.prompt for e in batch] == ["c="] * 5
  batch, _ = data.take_batch(src, pos, 3)
  assert [e.prompt for e in batch] == ["c="] * 3
  two = one_shot.only_examples_source(data.ListSource(items), (2, 0))
  assert [e.prompt for e in data.take_batch(two, data.DataPosition(7, 0), 4)[0]] == [
      "c=", "a=", "c=", "a="]
  with pytest.raises(ValueError, match="outside the 3 items"):
    one_shot.only_examples_source(data.ListSource(items), (3,))
  with pytest.raises(ValueError, match="at least one"):
    one_shot.only_examples_source(data.ListSource(items), ())


def test_pool_and_generator_indices():
  task = data.ArithmeticTask(digits=2, operators="+")
  pool = one_shot.finite_pool(task, 6)
  assert [e.prompt for e in pool.items] == [e.prompt for e in task.examples(0, 0, 6)]
  one = one_shot.only_examples_source(pool, (4,))
  assert data.take_batch(one, data.DataPosition(3, 10), 2)[0][0].prompt == task.example(0, 4).prompt
  # An endless generator: index i of stream `seed`.
  gen = one_shot.only_examples_source(task, (4,), seed=0)
  assert gen.items[0].prompt == task.example(0, 4).prompt
  with pytest.raises(ValueError, match="pool size"):
    one_shot.finite_pool(task, 0)


def test_truncate_log_and_select_examples(tmp_path):
  path = str(tmp_path / "acc.jsonl")
  exs = [_ex("a="), _ex("b="), _ex("c=")]
  idx = {"a=": 0, "b=": 1, "c=": 2}
  # a: accuracies 0, 1 (std .5); b: 1, 1 (0); c: .5, 0 (std .25) -> order a, c, b
  for step, rewards in ((1, [0, 0, 1, 1, 1, 0]), (2, [1, 1, 1, 1, 0, 0]), (3, [1, 1, 1, 1, 1, 1])):
    one_shot.append_jsonl(path, one_shot.accuracy_records(step, exs, rewards, 2, indices=idx))
  one_shot.truncate_log(path, 2)  # a resumed run from step 2 drops step 3
  assert {r["step"] for r in one_shot.read_jsonl(path)} == {1, 2}
  assert one_shot.select_examples(path, top=3) == [0, 2, 1]
  one_shot.truncate_log(path, 0)  # a fresh run starts empty
  assert not (tmp_path / "acc.jsonl").exists()

"""data.selection (LIMR, arXiv 2502.11886): back-fill, LIM scores on a hand-made accuracy
matrix (values computed by hand), selection, and accuracy log -> JSONL of kept examples."""

import numpy as np
import pytest

from jaxrl_llm import data
from jaxrl_llm.data import one_shot, rehearsal, selection

NAN = np.nan
# Rows: e0, e1, e2 (epoch 0 missing: back-filled from epoch 1), e3 (epochs 1-2 missing:
# only epoch 1 could be filled from epoch 2, which is missing too -> dropped), e4.
ACC = np.array([[0.0, 0.5, 1.0],
                [0.5, 1.0, 0.5],
                [NAN, 0.0, 0.5],
                [0.0, NAN, NAN],
                [1.0, 0.0, 0.0]])


def test_backfill_takes_the_next_epoch_once():
  out = selection.backfill_next([[NAN, NAN, 0.5, NAN], [NAN, 0.25, NAN, 1.0]])
  np.testing.assert_array_equal(out, [[NAN, 0.5, 0.5, NAN], [0.25, 0.25, 1.0, 1.0]])


def test_limr_scores_by_hand():
  # Valid: e0, e1, e2 = [0, 0, .5], e4. r_avg = [.375, .375, .5];
  # denominator (1-.375)^2 * 2 + .5^2 = 1.03125 = 33/32.
  # e0: .375^2 + .125^2 + .5^2 = 13/32 -> 1 - 13/33 = 20/33
  # e1: .125^2 + .625^2 + 0    = 13/32 -> 20/33
  # e2: .375^2 + .375^2 + 0    =  9/32 -> 24/33 = 8/11
  # e4: .625^2 + .375^2 + .5^2 = 25/32 -> 8/33
  valid, scores = selection.limr_scores(ACC)
  np.testing.assert_array_equal(valid, [True, True, True, False, True])
  np.testing.assert_allclose(scores[[0, 1, 2, 4]], [20 / 33, 20 / 33, 8 / 11, 8 / 33])
  assert np.isnan(scores[3])
  keep, _ = selection.limr_select(ACC, theta=0.6)
  np.testing.assert_array_equal(keep, [True, True, True, False, False])
  keep, _ = selection.limr_select(ACC, theta=0.7)
  np.testing.assert_array_equal(keep, [False, False, True, False, False])
  # K = 1: e3 is complete in epoch 0; r_avg = (0 + .5 + 0 + 0 + 1)/5 = .3, denominator .49:
  # e0 -> 1 - .09/.49 = 40/49, e1 -> 1 - .04/.49 = 45/49, e4 -> 1 - .49/.49 = 0.
  valid, scores = selection.limr_scores(ACC, num_epochs=1)
  assert valid.all()
  np.testing.assert_allclose(scores, [40 / 49, 45 / 49, 40 / 49, 40 / 49, 0.0], atol=1e-12)


def test_limr_errors_name_the_problem():
  with pytest.raises(ValueError, match="average accuracy is 1"):
    selection.limr_scores(np.ones((2, 3)))
  with pytest.raises(ValueError, match="no example has an accuracy"):
    selection.limr_scores([[NAN, 0.5, NAN]])
  with pytest.raises(ValueError, match="num_epochs must be in"):
    selection.limr_scores(ACC, num_epochs=4)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    selection.limr_scores([[1.5, 0.0]])


def _records(step, idx, rewards):
  return {"step": step, "index": idx, "prompt": f"p{idx}", "rewards": rewards,
          "accuracy": float(np.mean(np.asarray(rewards) >= 1.0))}


def test_log_to_jsonl_keeps_the_examples_and_task_train_examples_loads_them(tmp_path):
  items = tuple(data.Example(f"{i}+1=", str(i + 1), completion=str(i + 1), task="arithmetic",
                             metadata={"a": i, "pair": (i, 1)}) for i in range(5))
  source = data.ListSource(items)
  # One record per (example, epoch) with 2 rewards each, accuracies = ACC, in log format;
  # example 2 skips epoch 0, example 3 epochs 1 and 2.
  recs = []
  for e in range(3):
    for i in range(5):
      a = ACC[i, e]
      if not np.isnan(a):
        recs.append(_records(e + 1, i, [1.0 if k < 2 * a else 0.0 for k in range(2)]))
  log = tmp_path / "acc.jsonl"
  one_shot.append_jsonl(str(log), recs)
  out = tmp_path / "sel" / "limr.jsonl"
  # One step per epoch: the log's steps are the epochs of ACC.
  info = selection.select_to_jsonl(str(log), source, str(out), theta=0.6, steps_per_epoch=1)
  assert info["kept"] == [0, 1, 2] and info["num_valid"] == 4 and info["num_examples"] == 5
  np.testing.assert_allclose([info["scores"][i] for i in (0, 2, 4)], [20 / 33, 8 / 11, 8 / 33])
  loaded = rehearsal.load_examples(str(out))
  assert [e.prompt for e in loaded] == ["0+1=", "1+1=", "2+1="]
  assert loaded[2].metadata == {"a": 2, "pair": (2, 1)} and loaded[1].answer == "2"
  # By appearance (one_shot.accuracy_matrix) example 2's two records are its epochs 0 and
  # 1 ([0, .5, NaN]: incomplete) and example 3's one record epoch 0: both dropped.
  # Valid e0, e1, e4: r_avg = [.5, .5, .5], denominator .75; e0: (.25 + 0 + .25)/.75 ->
  # 1/3; e1: (0 + .25 + 0)/.75 -> 2/3; e4: (.25 + .25 + .25)/.75 -> 0.
  kept, info = selection.select_from_log(str(log), theta=0.6)
  assert kept == [1] and info["num_valid"] == 3
  np.testing.assert_allclose([info["scores"][i] for i in (0, 1, 4)], [1 / 3, 2 / 3, 0.0],
                             atol=1e-12)
  with pytest.raises(ValueError, match="kept no example"):
    selection.select_to_jsonl(str(log), source, str(tmp_path / "x.jsonl"), theta=0.99,
                              steps_per_epoch=1)
  with pytest.raises(ValueError, match="finite training set"):
    selection.examples_of(data.ArithmeticTask(digits=2), [0])


def test_epoch_accuracy_pools_the_rollouts_of_each_epochs_steps():
  # Steps per epoch 2: example 0 at steps 1 (1 of 2 correct) and 2 (3 of 4) -> 4/6 in
  # epoch 0; at step 3 (0 of 2) -> 0 in epoch 1. Example 1 only at step 4 -> NaN, 1.0.
  recs = [_records(1, 0, [1.0, 0.0]), _records(2, 0, [1.0, 1.0, 1.0, 0.0]),
          _records(3, 0, [0.0, 0.0]), _records(4, 1, [1.0, 1.0])]
  ids, acc = selection.epoch_accuracy_matrix(recs, steps_per_epoch=2)
  assert ids == [0, 1]
  np.testing.assert_allclose(acc, [[4 / 6, 0.0], [NAN, 1.0]])
  # The appearance-based matrix of one_shot counts step 2 as example 0's second epoch.
  _, acc1 = one_shot.accuracy_matrix(recs)
  np.testing.assert_allclose(acc1, [[0.5, 0.75, 0.0], [1.0, NAN, NAN]])

"""DPH-RL pre-sampling split and rehearsal storage (pure NumPy pieces)."""

import os

import numpy as np
import pytest

from jaxrl_llm.data import Example, rehearsal


def test_split_by_solve_rate_hand():
  # 4 problems x k = 3 samples: solved 3/3, 2/3, 0/3, 3/3 (reward 0.1 is a format score, not correct).
  r = np.array([[1, 1, 1], [1, 0.1, 1], [0, 0, 0.1], [1.0, 1, 1]], np.float32)
  is_pef, m = rehearsal.split_by_solve_rate(r)
  np.testing.assert_array_equal(is_pef, [True, False, False, True])
  assert m["pef_frac"] == 0.5
  np.testing.assert_allclose(m["pass_at_1"], 8 / 12)
  assert m["any_correct_frac"] == 0.75
  relaxed, _ = rehearsal.split_by_solve_rate(r, min_correct=2)
  np.testing.assert_array_equal(relaxed, [True, True, False, True])
  with pytest.raises(ValueError, match="min_correct"):
    rehearsal.split_by_solve_rate(r, min_correct=4)
  with pytest.raises(ValueError, match="rewards"):
    rehearsal.split_by_solve_rate(r[0])


def test_first_correct_hand():
  r = np.array([[0, 1, 1], [0, 0, 0], [1, 0, 0]])
  np.testing.assert_array_equal(rehearsal.first_correct(r), [1, -1, 0])


def _set():
  # Two stored rows: prompt width 3 (left-padded), completion width 4 (right-padded).
  return rehearsal.RehearsalSet(
      prompt_tokens=np.array([[0, 5, 6], [7, 8, 9]], np.int32),
      prompt_mask=np.array([[0, 1, 1], [1, 1, 1]], bool),
      completion_tokens=np.array([[1, 2, 3, 0], [4, 5, 0, 0]], np.int32),
      completion_mask=np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool),
      base_logprobs=np.array([[-0.1, -0.2, -0.3, 0], [-0.4, -0.5, 0, 0]], np.float32),
      prompts=np.array(["a", "bb"]))


def test_save_load_roundtrip_and_atomic(tmp_path):
  path = os.path.join(tmp_path, "sub", "rehearsal.npz")
  rehearsal.save_rehearsal(path, _set(), {"temperature": 1.0, "k": 8})
  assert sorted(os.listdir(os.path.dirname(path))) == ["rehearsal.npz"]  # no temp file left
  rs, meta = rehearsal.load_rehearsal(path)
  for name in rehearsal.RehearsalSet._fields:
    np.testing.assert_array_equal(getattr(rs, name), getattr(_set(), name))
  assert meta["temperature"] == 1.0 and meta["k"] == 8 and meta["format_version"] == 1
  with pytest.raises(ValueError, match="does not exist"):
    rehearsal.load_rehearsal(os.path.join(tmp_path, "missing.npz"))


def test_save_rejects_bad_shapes(tmp_path):
  bad = _set()._replace(base_logprobs=np.zeros((2, 3), np.float32))
  with pytest.raises(ValueError, match="base_logprobs"):
    rehearsal.save_rehearsal(os.path.join(tmp_path, "x.npz"), bad)
  empty = rehearsal.RehearsalSet(*(np.zeros((0, 2)) for _ in range(5)), np.zeros((0,), str))
  with pytest.raises(ValueError, match="empty"):
    rehearsal.save_rehearsal(os.path.join(tmp_path, "y.npz"), empty)


def test_rehearsal_rows_cycle_pad_and_truncate():
  rs = _set()
  # start 1, count 3: rows 1, 0, 1; prompts widened to 4 (one more left pad), completions cut to 2.
  out = rehearsal.rehearsal_rows(rs, 1, 3, prompt_width=4, completion_width=2, pad_id=99)
  np.testing.assert_array_equal(out["indices"], [1, 0, 1])
  np.testing.assert_array_equal(out["prompt_tokens"], [[99, 7, 8, 9], [99, 99, 5, 6],
                                                       [99, 7, 8, 9]])
  np.testing.assert_array_equal(out["prompt_mask"], [[0, 1, 1, 1], [0, 0, 1, 1], [0, 1, 1, 1]])
  np.testing.assert_array_equal(out["completion_tokens"], [[4, 5], [1, 2], [4, 5]])
  np.testing.assert_array_equal(out["completion_mask"], [[1, 1], [1, 1], [1, 1]])
  np.testing.assert_allclose(out["base_logprobs"], [[-0.4, -0.5], [-0.1, -0.2], [-0.4, -0.5]])
  np.testing.assert_array_equal(out["truncated"], [False, True, False])
  # Narrower prompt: keep the last 2 tokens; wider completion: right-pad with mask 0, lp 0.
  out = rehearsal.rehearsal_rows(rs, 0, 1, prompt_width=2, completion_width=6, pad_id=99)
  np.testing.assert_array_equal(out["prompt_tokens"], [[5, 6]])
  np.testing.assert_array_equal(out["completion_tokens"], [[1, 2, 3, 99, 99, 99]])
  np.testing.assert_array_equal(out["completion_mask"], [[1, 1, 1, 0, 0, 0]])
  np.testing.assert_allclose(out["base_logprobs"], [[-0.1, -0.2, -0.3, 0, 0, 0]])
  with pytest.raises(ValueError, match="count"):
    rehearsal.rehearsal_rows(rs, 0, 0, prompt_width=2, completion_width=2)


def test_examples_roundtrip(tmp_path):
  exs = [Example("[1,2,3]->6:", "6", "1+2+3", "countdown",
                 {"numbers": (1, 2, 3), "target": 6, "key": "1,2,3->6"}),
         Example("1+2=", "3", "3", "arithmetic", {"a": 1, "b": 2, "op": "+"})]
  path = rehearsal.save_examples(os.path.join(tmp_path, "d_exp.jsonl"), exs)
  back = rehearsal.load_examples(path)
  assert [(e.prompt, e.answer, e.completion, e.task, dict(e.metadata)) for e in back] == \
      [(e.prompt, e.answer, e.completion, e.task, dict(e.metadata)) for e in exs]
  assert isinstance(back[0].metadata["numbers"], tuple)

"""make_task: names and options from a config, with clear errors."""

import json

import pytest

from jaxrl_llm.data import (TASKS, ArithmeticTask, CountdownTask, DataPosition, ListSource,
                            make_task, take_batch)


def test_make_task(tmp_path):
  assert make_task("arithmetic", digits=3, split="test") == ArithmeticTask(digits=3, split="test")
  assert make_task("countdown", num_numbers=4) == CountdownTask(num_numbers=4)
  path = tmp_path / "g.jsonl"
  path.write_text("\n".join(json.dumps({"q": f"q{i}", "answer": f"#### {i}"}) for i in range(3)))
  src = make_task("jsonl", path=str(path), question_field="q", shuffle=False)
  assert isinstance(src, ListSource) and len(src) == 3
  batch, _ = take_batch(src, DataPosition(0, 0), 3)
  assert [ex.answer for ex in batch] == ["0", "1", "2"]


def test_make_task_errors():
  with pytest.raises(ValueError) as err:
    make_task("sudoku")
  assert all(name in str(err.value) for name in TASKS)
  with pytest.raises(ValueError, match=r"unknown options \['digit'\]"):
    make_task("arithmetic", digit=2)
  with pytest.raises(ValueError, match="missing option 'path'"):
    make_task("jsonl")
  with pytest.raises(ValueError, match=r"unknown options \['colour'\]"):
    make_task("jsonl", path="x", colour=1)

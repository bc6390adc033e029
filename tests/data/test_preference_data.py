"""Preference JSONL: paired and labelled records, errors that name the file line and field,
unpairing, and the wrong-answer pair generator."""

import json

import pytest

from jaxrl_llm import data
from jaxrl_llm.data import preference as pdata


def _write(tmp_path, lines, name="p.jsonl"):
  path = tmp_path / name
  path.write_text("".join((l if isinstance(l, str) else json.dumps(l)) + "\n" for l in lines))
  return path


def test_paired_and_unpaired_records(tmp_path):
  path = _write(tmp_path, [{"prompt": "1+1=", "chosen": "2", "rejected": "3"}, "",
                           {"prompt": "2+2=", "chosen": "4", "rejected": "5", "extra": 1}])
  pairs = pdata.load_preference_jsonl(path)
  assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [("1+1=", "2", "3"),
                                                               ("2+2=", "4", "5")]
  assert pairs[1].metadata["line"] == 3
  responses = pdata.unpair(pairs)
  assert [(r.completion, r.label) for r in responses] == [("2", True), ("3", False),
                                                          ("4", True), ("5", False)]
  path = _write(tmp_path, [{"prompt": "a", "completion": "b", "label": True},
                           {"prompt": "a", "completion": "c", "label": 0}], "u.jsonl")
  labelled = pdata.load_preference_jsonl(path)
  assert [r.label for r in labelled] == [True, False]
  # Round trip through the writer.
  again = pdata.load_preference_jsonl(pdata.write_preference_jsonl(tmp_path / "w.jsonl", pairs))
  assert [(p.prompt, p.chosen, p.rejected) for p in again] == [(p.prompt, p.chosen, p.rejected)
                                                               for p in pairs]


@pytest.mark.parametrize("lines,fmt,match", [
    ([{"prompt": "1+1=", "chosen": "2"}], "auto", r"p.jsonl:1: missing field 'rejected'"),
    ([{"prompt": "x", "chosen": "2", "rejected": "3"}, {"chosen": "2", "rejected": "3"}],
     "auto", r"p.jsonl:2: missing field 'prompt'"),
    ([{"prompt": "x", "chosen": 2, "rejected": "3"}], "auto",
     r":1: field 'chosen' must be a string, got int"),
    (['{"prompt": "x", '], "auto", r":1: invalid JSON"),
    (["[1, 2]"], "auto", r":1: expected a JSON object, got list"),
    ([{"prompt": "x", "completion": "y", "label": "yes"}], "auto",
     r":1: field 'label' must be true/false"),
    ([{"prompt": "x", "completion": "y"}], "unpaired", r":1: missing field 'label'"),
    ([{"prompt": "x", "completion": "y", "label": True}], "paired",
     r":1: missing field 'chosen'"),
    ([""], "auto", r"has no records"),
])
def test_bad_lines_name_the_line_and_field(tmp_path, lines, fmt, match):
  path = _write(tmp_path, lines)
  with pytest.raises(ValueError, match=match):
    pdata.load_preference_jsonl(path, format=fmt)


def test_missing_file_and_bad_format(tmp_path):
  with pytest.raises(FileNotFoundError, match="no file"):
    pdata.load_preference_jsonl(tmp_path / "none.jsonl")
  with pytest.raises(ValueError, match="format must be one of"):
    pdata.load_preference_jsonl(tmp_path / "none.jsonl", format="pairs")


def test_wrong_answer_pairs():
  task = data.ArithmeticTask(digits=2, operators="+-")
  examples = task.examples(0, 0, 50)
  pairs = pdata.wrong_answer_pairs(examples, seed=3, max_offset=2)
  assert pairs == pdata.wrong_answer_pairs(examples, seed=3, max_offset=2)  # deterministic
  for ex, p in zip(examples, pairs):
    assert p.prompt == ex.prompt and p.chosen == ex.answer
    assert 1 <= abs(int(p.rejected) - int(ex.answer)) <= 2 and int(p.rejected) >= 0
  with pytest.raises(ValueError, match="non-integer answer"):
    pdata.wrong_answer_pairs([data.Example("q", "x")], seed=0)

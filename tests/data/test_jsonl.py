"""JSONL loader: GSM8K / MATH fields, and errors that name the line and field."""

import json

import pytest

from jaxrl_llm.data import gsm8k_final_answer, load_jsonl


def _write(tmp_path, lines, name="d.jsonl"):
  path = tmp_path / name
  path.write_text("\n".join(lines) + "\n", encoding="utf-8")
  return path


def test_gsm8k_file(tmp_path):
  rows = [{"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
          {"question": "Big?", "answer": "It costs 1,234 dollars.\n#### 1,234"},
          {"question": "Neg?", "answer": "#### -5\nextra line"}]
  path = _write(tmp_path, [json.dumps(rows[0]), "", "   ", json.dumps(rows[1]), json.dumps(rows[2])])
  exs = load_jsonl(path, prompt_template="Q: {question}\nA:")
  assert [e.answer for e in exs] == ["7", "1234", "-5"]
  assert exs[0].prompt == "Q: Tom has 3 apples and buys 4. How many?\nA:"
  assert exs[1].completion == rows[1]["answer"]
  assert [e.metadata["line"] for e in exs] == [1, 4, 5]  # blank lines skipped, numbering kept
  assert load_jsonl(path, max_examples=2)[-1].answer == "1234"
  assert gsm8k_final_answer("no marker") is None
  assert gsm8k_final_answer("a #### 1 b\n#### 2,000 ") == "2000"


def test_math_style_file(tmp_path):
  rows = [{"problem": "Half?", "solution": "...", "answer": "\\frac{1}{2}"},
          {"problem": "Count?", "answer": 12}]
  path = _write(tmp_path, [json.dumps(r) for r in rows])
  exs = load_jsonl(path, question_field="problem")
  assert [e.answer for e in exs] == ["\\frac{1}{2}", "12"]
  assert exs[0].prompt == "Half?"


@pytest.mark.parametrize("line, fmt, pattern", [
    ('{"question": "q", "answer": "#### 1"', "auto", r":2: invalid JSON"),
    ('[1, 2]', "auto", r":2: expected a JSON object, got list"),
    ('{"answer": "#### 1"}', "auto", r":2: missing field 'question'"),
    ('{"question": "q"}', "auto", r":2: missing field 'answer'"),
    ('{"question": 5, "answer": "#### 1"}', "auto", r":2: field 'question' must be a string"),
    ('{"question": "q", "answer": null}', "auto", r":2: field 'answer' must be a string"),
    ('{"question": "q", "answer": "7"}', "gsm8k", r":2: field 'answer' has no '#### <answer>'"),
    ('{"question": "q", "answer": "  "}', "raw", r":2: field 'answer' is empty"),
])
def test_malformed_line_names_line_and_field(tmp_path, line, fmt, pattern):
  path = _write(tmp_path, ['{"question": "ok", "answer": "#### 1"}', line])
  with pytest.raises(ValueError, match=pattern):
    load_jsonl(path, answer_format=fmt)


def test_file_level_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="no file"):
    load_jsonl(tmp_path / "missing.jsonl")
  with pytest.raises(ValueError, match="no examples"):
    load_jsonl(_write(tmp_path, [""], "empty.jsonl"))
  with pytest.raises(ValueError, match="answer_format"):
    load_jsonl(_write(tmp_path, ['{"question": "q", "answer": "1"}']), answer_format="csv")

"""Final-answer extraction on hand-written completions."""

import pytest

from jaxrl_llm.rewards import (extract_answer_tag, extract_boxed, extract_final_answer,
                               extract_hash_answer, extract_last_number)


@pytest.mark.parametrize("text, expected", [
    (r"The answer is \boxed{42}.", "42"),
    (r"so \boxed{\frac{1}{2}}", r"\frac{1}{2}"),
    (r"\boxed{1} then \boxed{ 2 }", "2"),
    (r"\boxed{7} and an unclosed \boxed{8", "7"),
    (r"\boxed{a{b}c}", "a{b}c"),
    (r"\boxed{\{1,2\}}", r"\{1,2\}"),
    (r"\fbox{7}", "7"),
    (r"\boxed{\boxed{3}}", "3"),
    ("no box here 5", None),
    (r"\boxed", None),
])
def test_extract_boxed(text, expected):
  assert extract_boxed(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("so 3+4=7\n#### 7", "7"),
    ("#### 1,234\nmore text", "1,234"),
    ("#### 1\n#### 2", "2"),
    ("####   \n", None),
    ("no marker", None),
])
def test_extract_hash_answer(text, expected):
  assert extract_hash_answer(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("<think>hmm</think><answer> 12 </answer>", "12"),
    ("<answer>1</answer> <answer>2</answer>", "2"),
    ("<answer>12", None),
    ("</answer> 3 <answer>", None),
])
def test_extract_answer_tag(text, expected):
  assert extract_answer_tag(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("I have 3 apples and 10-3=7", "7"),
    ("10-3", "3"),                      # binary minus is not a sign
    ("it is -5", "-5"),
    ("total -1,234.5 dollars", "-1,234.5"),
    ("the ratio is 3/4.", "3/4"),
    ("x-3", "3"),
    ("value 5.", "5"),
    ("abc", None),
    ("\u0663\u0664", None),                # Arabic-Indic digits are not ASCII numbers
    ("1,23", "23"),                     # not a thousands group: two numbers
])
def test_extract_last_number(text, expected):
  assert extract_last_number(text) == expected


def test_final_answer_priority_and_bad_method():
  text = r"5 #### 4 <answer>3</answer> \boxed{2}"
  assert extract_final_answer(text) == "2"
  assert extract_final_answer(text.replace(r"\boxed{2}", "")) == "3"
  assert extract_final_answer("5 #### 4") == "4"
  assert extract_final_answer("5 apples") == "5"
  assert extract_final_answer("nothing") is None
  assert extract_final_answer(text, methods=("last_number",)) == "2"
  with pytest.raises(ValueError, match="unknown method 'regex'"):
    extract_final_answer(text, methods=("regex",))

"""Answer-correctness and format rewards on hand-written completions."""

import pytest

from jaxrl_llm.data import ArithmeticTask, Example
from jaxrl_llm.rewards import (answer_present_reward, answer_tag_format_reward,
                               boxed_format_reward, exact_answer_reward, math_answer_reward)


@pytest.mark.parametrize("completion, expected", [
    ("46", 1.0), (" 46\n", 1.0), ("46.0", 1.0), ("046", 1.0), ("47", 0.0), ("46abc", 0.0),
    ("4 6", 0.0), ("", 0.0), ("-46", 0.0),
])
def test_exact_answer_reward(completion, expected):
  for example in (Example(prompt="12+34=", answer="46"), {"answer": "46"}, "46", 46):
    assert exact_answer_reward(completion, example) == expected


def test_exact_answer_on_generated_arithmetic():
  for ex in ArithmeticTask(digits=3, operators="+-*").examples(0, 0, 50):
    assert exact_answer_reward(ex.completion, ex) == 1.0
    assert exact_answer_reward(str(int(ex.answer) + 1), ex) == 0.0


@pytest.mark.parametrize("completion, reference, expected", [
    ("He pays 1,000 + 234.\n#### 1,234", "1234", 1.0),
    (r"Thus $\boxed{\frac{1}{2}}$.", "0.5", 1.0),
    ("<answer>3/4</answer>", "0.75", 1.0),
    ("So the answer is 18.", "18", 1.0),
    ("So the answer is 18, not 17.", "18", 0.0),     # last number rule
    (r"\boxed{17} though 18", "18", 0.0),              # boxed wins over the last number
    (r"\boxed{x+1}", "x + 1", 1.0),
    ("no number", "18", 0.0),
])
def test_math_answer_reward(completion, reference, expected):
  assert math_answer_reward(completion, {"answer": reference}) == expected


def test_missing_or_bad_answer_field():
  with pytest.raises(ValueError, match="'answer'"):
    exact_answer_reward("1", {"question": "q"})
  with pytest.raises(ValueError, match="'answer'"):
    math_answer_reward("1", {"answer": [1]})


@pytest.mark.parametrize("completion, expected", [
    ("<think>x</think><answer>5</answer>", 1.0),
    ("reasoning <answer>5</answer>\n", 1.0),
    ("<answer>5</answer> extra", 0.0),
    ("<answer> </answer>", 0.0),
    ("<answer>5", 0.0),
    ("<answer>1</answer><answer>2</answer>", 0.0),
    ("<think>x <answer>5</answer>", 0.0),           # unclosed think
    ("<think>x <answer>5</answer></think>", 0.0),
    ("</answer>5<answer>", 0.0),
])
def test_answer_tag_format_reward(completion, expected):
  assert answer_tag_format_reward(completion, None) == expected


@pytest.mark.parametrize("completion, boxed, present", [
    (r"\boxed{5}", 1.0, 1.0), (r"\boxed{}", 0.0, 0.0), (r"\boxed{5", 0.0, 1.0),
    ("abc", 0.0, 0.0), ("x 5", 0.0, 1.0), ("#### yes", 0.0, 1.0),
])
def test_boxed_and_present(completion, boxed, present):
  assert boxed_format_reward(completion) == boxed
  assert answer_present_reward(completion) == present

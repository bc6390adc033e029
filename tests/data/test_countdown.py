"""Countdown generator: every recorded solution is checked by an independent evaluator."""

import re
from fractions import Fraction

import pytest

from jaxrl_llm.data import CountdownTask, countdown_key
from jaxrl_llm.data.countdown import _combine, _Node
from jaxrl_llm.rewards import check_countdown


def _oracle_value(solution: str) -> Fraction:
  # Test-only oracle on generator-made strings (digits, + - * / and parentheses):
  # Python's own parser with every literal lifted to an exact Fraction.
  assert re.fullmatch(r"[0-9+\-*/() ]+", solution), solution
  return eval(re.sub(r"[0-9]+", lambda m: f"F({m.group(0)})", solution), {"F": Fraction})


def test_minimal_parentheses_printing():
  one, two, three, six, eight = (_Node(v, str(v)) for v in (1, 2, 3, 6, 8))
  assert _combine(six, "-", _combine(two, "+", one)).text == "6-(2+1)"
  assert _combine(six, "+", _combine(two, "-", one)).text == "6+2-1"
  assert _combine(eight, "/", _combine(two, "*", two)).text == "8/(2*2)"
  assert _combine(_combine(one, "+", two), "*", three).text == "(1+2)*3"
  assert _combine(three, "*", _combine(six, "/", two)).text == "3*6/2"
  assert _combine(two, "-", three) is None          # negative intermediate
  assert _combine(three, "/", two) is None          # inexact division
  assert _combine(three, "/", _Node(0, "0")) is None


@pytest.mark.parametrize("num_numbers", [2, 3, 4])
def test_every_problem_has_its_recorded_solution(num_numbers):
  task = CountdownTask(num_numbers=num_numbers, min_number=1, max_number=12, max_target=120)
  for ex in task.examples(0, 0, 150):
    numbers, target = ex.metadata["numbers"], ex.metadata["target"]
    assert len(numbers) == num_numbers and all(1 <= n <= 12 for n in numbers)
    assert 1 <= target <= 120 and ex.answer == str(target)
    solution = ex.completion
    assert solution == ex.metadata["solution"]
    assert _oracle_value(solution) == target
    # Uses every given number exactly once (multiset equality of the literals).
    assert sorted(int(t) for t in re.findall(r"[0-9]+", solution)) == sorted(numbers)
    assert check_countdown(solution, numbers, target, use_all=True).valid
    assert ex.prompt == "[" + ",".join(map(str, numbers)) + f"]->{target}:"


def test_splits_disjoint_and_deterministic():
  train, test = CountdownTask(split="train", test_fraction=0.2), CountdownTask(split="test",
                                                                               test_fraction=0.2)
  train_keys = {ex.metadata["key"] for ex in train.examples(0, 0, 800)}
  test_keys = {ex.metadata["key"] for ex in test.examples(1, 0, 200)}
  assert len(test_keys) > 50 and not train_keys & test_keys
  assert countdown_key((7, 3, 5), 8) == "3,5,7->8"  # order-free key
  assert train.examples(4, 0, 20) == train.examples(4, 0, 20)
  assert train.examples(4, 0, 20) != train.examples(5, 0, 20)


def test_prompts_fit_the_char_tokenizer():
  from jaxrl_llm.models import CharTokenizer
  tok = CharTokenizer()
  for ex in CountdownTask(num_numbers=4).examples(0, 0, 50):
    tok.encode(ex.prompt + ex.completion)
    assert len(ex.prompt) <= 24


@pytest.mark.parametrize("kwargs, field", [
    (dict(num_numbers=1), "num_numbers"), (dict(min_number=5, max_number=2), "max_number"),
    (dict(min_target=9, max_target=2), "max_target"), (dict(operators="^"), "operators"),
    (dict(split="dev"), "split"), (dict(test_fraction=2.0), "test_fraction"),
])
def test_bad_config(kwargs, field):
  with pytest.raises(ValueError, match=field):
    CountdownTask(**kwargs)


def test_unreachable_target_range_fails_clearly():
  task = CountdownTask(num_numbers=2, max_number=3, operators="+", min_target=100,
                       max_target=200, max_tries=50)
  with pytest.raises(ValueError, match="no 'train' problem"):
    task.example(0, 0)


def test_max_lengths():
  # "[10,10,10]->100:" is 16 chars; 3 two-digit numbers + 2 operators + 1 parenthesis pair = 10.
  task = CountdownTask(num_numbers=3, max_number=10, max_target=100)
  assert task.max_prompt_chars() == 16 and task.max_solution_chars() == 10
  task4 = CountdownTask(num_numbers=4, max_number=12)
  exs = task4.examples(0, 0, 300)
  assert max(len(ex.prompt) for ex in exs) <= task4.max_prompt_chars()
  assert max(len(ex.completion) for ex in exs) <= task4.max_solution_chars()

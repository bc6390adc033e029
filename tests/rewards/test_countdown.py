"""Countdown checker: valid, wrong value, reuse, division by zero, parse errors, bounds."""

import collections
from fractions import Fraction

import pytest

from jaxrl_llm.data import CountdownTask, Example
from jaxrl_llm.rewards import (MAX_DEPTH, check_countdown, countdown_reward,
                               countdown_use_all_reward, evaluate_countdown_expression,
                               extract_countdown_expression)


@pytest.mark.parametrize("expr, numbers, target", [
    ("(3+5)*2", [3, 5, 2], 16),
    ("3+5*2", [2, 3, 5], 13),          # precedence: 3 + 10
    ("10-4-3", [10, 4, 3], 3),         # left associative: (10-4)-3
    ("24/4/2", [24, 4, 2], 3),         # (24/4)/2
    ("8/(3-8/3)", [8, 3, 8, 3], 24),   # exact: 3 - 8/3 = 1/3; float would give 23.99...
    ("(1+1/3)*3", [1, 1, 3, 3], 4),
    ("3*3", [3, 3], 9),                # a number given twice may be used twice
    (" ( 7 - 2 ) × 3 ", [7, 2, 3], 15),
    ("6÷3", [6, 3], 2),
    ("5", [5, 9], 5),                  # at most once: unused numbers allowed
])
def test_valid(expr, numbers, target):
  check = check_countdown(expr, numbers, target)
  assert check.valid and check.value == Fraction(target) and check.reason == ""


@pytest.mark.parametrize("expr, numbers, target, reason", [
    ("(3+5)*2", [3, 5, 2], 13, "!= target"),
    ("3*3", [3, 5], 9, "number 3"),                 # reuse
    ("7+1", [3, 5], 8, "number 7"),                 # not given
    ("5/(3-3)", [5, 3, 3], 5, "division by zero"),
    ("5/(3-3)", [5, 3, 3], 0, "division by zero"),
    ("3+", [3], 3, "end of expression"),
    ("(3+5", [3, 5], 8, "expected ')'"),
    ("3 5", [3, 5], 8, "unexpected token 5"),
    ("3+5)", [3, 5], 8, "unexpected token ')'"),
    ("", [3], 3, "empty"),
    ("3**5", [3, 5], 243, "unexpected token '*'"),
    ("3^5", [3, 5], 243, "unexpected character"),
    ("2x3", [2, 3], 6, "unexpected character 'x'"),
    ("-3+5", [3, 5], 2, "unexpected token '-'"),    # no unary minus by default
    ("1" * 19, [int("1" * 19)], int("1" * 19), "longer than 18 digits"),
])
def test_invalid(expr, numbers, target, reason):
  check = check_countdown(expr, numbers, target)
  assert not check.valid
  assert reason in check.reason, check.reason


def test_use_all_and_unary_minus_options():
  assert check_countdown("3+5", [3, 5, 2], 8).valid
  check = check_countdown("3+5", [3, 5, 2], 8, use_all=True)
  assert not check.valid and "not used: [2]" in check.reason
  assert check_countdown("(3+5)*2", [3, 5, 2], 16, use_all=True).valid
  assert check_countdown("-3+5", [3, 5], 2, allow_unary_minus=True).valid
  value, unused = evaluate_countdown_expression("2*5", [2, 5, 5, 7])
  assert value == 10 and unused == collections.Counter({5: 1, 7: 1})
  with pytest.raises(ValueError, match="division by zero"):
    evaluate_countdown_expression("2/(5-5)", [2, 5, 5])


def test_depth_and_length_bounds():
  ok = "(" * MAX_DEPTH + "3" + ")" * MAX_DEPTH
  assert check_countdown(ok, [3], 3).valid
  deep = "(" * (MAX_DEPTH + 1) + "3" + ")" * (MAX_DEPTH + 1)
  assert "max_depth" in check_countdown(deep, [3], 3).reason
  assert "max_length" in check_countdown("3" + " " * 600, [3], 3).reason
  assert check_countdown("(" * 10 + "3" + ")" * 10, [3], 3, max_depth=5).reason.startswith("nesting")


def test_countdown_reward_wrappers():
  ex = {"numbers": [3, 5, 2], "target": 16}
  assert extract_countdown_expression("<think>try</think><answer>(3+5)*2</answer>") == "(3+5)*2"
  assert extract_countdown_expression("(3+5)*2=16") == "(3+5)*2"
  assert countdown_reward("<answer>(3+5)*2</answer>", ex) == 1.0
  assert countdown_reward("(3+5)*2=16", ex) == 1.0
  assert countdown_reward("3+5", ex) == 0.0
  assert countdown_reward("3+5", ex, format_score=0.1) == 0.1   # parses, wrong value
  assert countdown_reward("3+3", ex, format_score=0.1) == 0.0   # reuse: not a legal expression
  assert countdown_reward("5*3+2-5", {"numbers": [5, 3, 2, 5], "target": 12}) == 1.0
  assert countdown_use_all_reward("5*3-3", {"numbers": [5, 3, 3, 2], "target": 12}) == 0.0
  # Works on data Examples (numbers/target in metadata) and on generated problems.
  gen = CountdownTask(num_numbers=4).examples(0, 0, 20)
  assert all(countdown_use_all_reward(ex.completion, ex) == 1.0 for ex in gen)
  with pytest.raises(ValueError, match="'numbers'"):
    countdown_reward("1", Example(prompt="p", answer="1"))

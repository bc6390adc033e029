"""Exact numeric equivalence, hand-computed cases."""

from fractions import Fraction

import pytest

from jaxrl_llm.rewards import answers_match, parse_number


@pytest.mark.parametrize("text, expected", [
    ("42", Fraction(42)), ("-7", Fraction(-7)), ("+7", Fraction(7)), ("\u22127", Fraction(-7)),
    ("0.75", Fraction(3, 4)), (".5", Fraction(1, 2)), ("5.", Fraction(5)),
    ("1,234,567", Fraction(1234567)), ("1{,}000", Fraction(1000)),
    ("3/4", Fraction(3, 4)), ("-6/8", Fraction(-3, 4)), (r"\frac{3}{4}", Fraction(3, 4)),
    (r"-\dfrac{6}{8}", Fraction(-3, 4)), (r"\tfrac{1}{-2}", Fraction(-1, 2)),
    ("$1,000.50", Fraction(100050, 100)), (r"\$5", Fraction(5)), ("50%", Fraction(50)),
    (r"12\%", Fraction(12)), ("{5}", Fraction(5)), ("1e3", Fraction(1000)),
    ("2.5E-1", Fraction(1, 4)), ("  8 ", Fraction(8)),
    ("1" * 999, Fraction(int("1" * 999))),
    (r"18\text{ dollars}", Fraction(18)), (r"\text{18}", Fraction(18)), (r"\textbf{-7}", Fraction(-7)),
    (r"90^\circ", Fraction(90)), (r"45^{\circ}", Fraction(45)), ("x = 5", Fraction(5)),
    (r"$\frac{1}{4}\text{ cup}$", Fraction(1, 4)),
])
def test_parse_number(text, expected):
  assert parse_number(text) == expected


@pytest.mark.parametrize("text", [
    "", "-", ".", "1,23", "12,3456", "1/0", r"\frac{1}{0}", "nan", "inf", "-Infinity",
    "1e1000", "1" * 1001, "x", "1 2", "3/4/5", "\u0663", r"\sqrt{2}", "0x10", "x = y", r"\text{ten}",
])
def test_not_a_number(text):
  assert parse_number(text) is None


@pytest.mark.parametrize("predicted, reference, expected", [
    ("42", "42.0", True), ("1,234", "1234", True), ("-3/4", "-0.75", True),
    (r"\frac{3}{4}", "0.75", True), (r"\dfrac{-3}{4}", "-3/4", True), ("+7", "7", True),
    ("$1,000", "1000", True), ("0.333", "1/3", False), ("3", "-3", False), ("1e3", "1000", True),
    ("046", "46", True), ("x + 1", "x+1", True), (r"\left(1,2\right)", "(1,2)", True),
    ("nan", "nan", True), ("nan", "1", False), ("1", "nan", False), (None, "1", False),
    ("", "", False), ("7", "#### 7", False),
    ("y = 3/2", "1.5", True), (r"5\text{ apples}", "5", True),
])
def test_answers_match(predicted, reference, expected):
  assert answers_match(predicted, reference) is expected

"""Totality: every reward returns a float for any string, fast.

A hypothesis fuzz test (random text and random sequences of the syntax the
parsers care about) plus explicit adversarial inputs, each under a generous
wall-clock bound. Two references are symbolic (``x^2+1``, ``2^{1/2}``), so the
math rewards send every extracted answer through math-verify
(:mod:`jaxrl_llm.rewards.symbolic`); its worker is started before timing
(start-up is a one-off cost, not a per-completion one), and a pathological
answer (``9^{9^{9}}``) must come back within the same bound.
"""

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrl_llm.data import Example
from jaxrl_llm.rewards import (REWARD_FNS, answers_match, check_countdown, default_verifier,
                               extract_final_answer, parse_number)

TIME_BOUND_S = 1.0
_EXAMPLES = (
    Example(prompt="12+34=", answer="46"),
    Example(prompt="[3,5,2]->16:", answer="16", metadata={"numbers": (3, 5, 2), "target": 16}),
    {"answer": r"\frac{1}{2}", "numbers": [1, 2], "target": 2},
    {"answer": "x^2+1", "numbers": [1, 2], "target": 3},
    Example(prompt="p", answer="2^{1/2}", metadata={"numbers": (2,), "target": 2}),
)
_PIECES = ["(", ")", "{", "}", r"\boxed{", r"\frac{", "<answer>", "</answer>", "<think>",
           "</think>", "####", "-", "+", "*", "/", "=", ",", ".", "e", "%", "$", " ", "\n",
           "0", "1", "3", "5", "16", "46", "9" * 40, "nan", "inf", "\u0663", "\u00d7", "\u2212",
           "\U0001F600", "\\", "\x00", "^", "x", "2", r"\sqrt{", "!", r"\pi", "(x+1)", "^{"]
# RLCR's tabc format (rewards/calibration.py) and step lines (rewards/process.py)
_PIECES += ["<confidence>", "</confidence>", "<analysis>", "</analysis>", "0.5", "1e-1", "3+5=8"]
_SYNTAX_TEXT = st.lists(st.sampled_from(_PIECES), max_size=120).map("".join)
# RLCR: acc - (q - acc)^2 (format failure -1); the released weighted sum 0.5 (fmt + acc + brier)
_RANGES = {"rlcr": (-1.0, 1.0), "rlcr_code": (0.0, 1.5)}


@pytest.fixture(scope="module", autouse=True)
def _symbolic_worker_started():
  default_verifier().warm_up()


def _check_all(text):
  """Calls every reward on every example example; asserts a finite float and the time bound."""
  for name, fn in REWARD_FNS.items():
    for example in _EXAMPLES:
      if name.startswith("countdown") and isinstance(example, Example) and not example.metadata:
        continue  # arithmetic examples carry no numbers: that is a caller error, not a completion one
      start = time.perf_counter()
      value = fn(text, example)
      elapsed = time.perf_counter() - start
      assert type(value) is float and math.isfinite(value), (name, value)
      low, high = _RANGES.get(name, (0.0, 1.0))
      assert low <= value <= high, (name, value)
      assert elapsed < TIME_BOUND_S, (name, elapsed)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_arbitrary_text(text):
  _check_all(text)


@settings(max_examples=150, deadline=None)
@given(_SYNTAX_TEXT)
def test_fuzz_syntax_heavy_text(text):
  _check_all(text)
  # The helpers are total too, and the checker never raises.
  extract_final_answer(text)
  parse_number(text)
  answers_match(text, text)
  assert isinstance(check_countdown(text, [3, 5, 2], 16).valid, bool)


_ADVERSARIAL = {
    "100k digits": "9" * 100_000,
    "10k balanced parens": "(" * 10_000 + "3" + ")" * 10_000,
    "100k open parens": "(" * 100_000,
    "20k unclosed boxes": r"\boxed{" * 20_000,
    "50k nested braces": r"\boxed" + "{" * 50_000 + "1" + "}" * 50_000,
    "thousands separators": "1" + ",000" * 25_000 + ".5",
    "comma list": "1," * 50_000,
    "power text": "10**5000",
    "5001-digit number": "1" + "0" * 5000,
    "huge fraction": "1" * 50_000 + "/" + "7" * 50_000,
    "huge exponent": "1e99999 1e309 -1e-99999",
    "nan/inf text": "NaN nan inf -inf Infinity -Infinity 1e309 #### nan",
    "unicode": "\U0001F600" * 10_000 + "\u0663" * 1_000 + "\u00d7\u00f7\u2212" * 1_000,
    "answer tags": "<answer>" * 10_000 + "</answer>" * 10_000,
    "minus run": "-" * 100_000,
    "dot run": "1." * 50_000,
    "hash run": "#### " * 20_000,
    "frac run": r"\frac{" * 10_000,
    "long countdown": "3+" * 50_000 + "3",
    "deep unary": "-" * 10_000 + "3",
    "nul bytes": "\x00" * 1_000,
    "mixed": (r"\boxed{\frac{1}{" + "(" * 100 + "<answer>" + "1,2" * 100) * 500,
    # The symbolic path: SymPy would evaluate these for minutes or recurse deeply.
    "symbolic power tower": r"so \boxed{9^{9^{9}}}",
    "symbolic exponent chain": r"\boxed{x^{x^{x^{x^{x^{x^{x^{x}}}}}}}}",
    "symbolic nesting": r"\boxed{" + "(" * 120 + "x" + ")" * 120 + "}",
    "symbolic over length": r"\boxed{" + "x+" * 200 + "1}",
    "symbolic many boxes": r"\boxed{x^2+1}" * 5_000,
    "tabc tags": ("<think>" + "</think> <answer>" * 5_000 + "</answer><analysis>" * 5_000
                  + "</analysis> <confidence>" * 5_000 + "0.5</confidence>"),
    "tabc long confidence": "<think></think><answer>46</answer><analysis></analysis><confidence>"
                            + "0" * 100_000 + "</confidence>",
    "tabc many closes": "<think>" + "</think>" * 20_000 + " " * 20_000 + "</confidence>",
    "many step lines": "3+5=8\n" * 20_000,
}


@pytest.mark.parametrize("name", sorted(_ADVERSARIAL))
def test_adversarial_inputs(name):
  text = _ADVERSARIAL[name]
  _check_all(text)
  start = time.perf_counter()
  extract_final_answer(text)
  parse_number(text)
  answers_match(text, "46")
  assert not check_countdown(text, [3, 5, 2], 16).valid
  assert time.perf_counter() - start < TIME_BOUND_S


def test_adversarial_values_are_right():
  # Deep nesting is rejected (0.0), not a crash; a 5001-digit number is not parsed.
  deep = "(" * 10_000 + "3" + ")" * 10_000
  assert REWARD_FNS["countdown"](deep, {"numbers": [3], "target": 3}) == 0.0
  assert parse_number("1" + "0" * 5000) is None
  assert REWARD_FNS["math"]("1" + "0" * 5000, {"answer": "1"}) == 0.0
  assert REWARD_FNS["math"]("so nan", {"answer": "1"}) == 0.0
  # Cut at the deadline: undecided is no reward; a correct symbolic answer still scores.
  assert REWARD_FNS["math"](_ADVERSARIAL["symbolic power tower"], {"answer": "1"}) == 0.0
  assert REWARD_FNS["math"](_ADVERSARIAL["symbolic many boxes"], {"answer": "1+x^2"}) == 1.0

"""Rule-based step scorers (the PRM stand-in of rewards/process.py): hand-scored
Countdown and arithmetic step lines, step end offsets, and totality under fuzzing."""

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from jaxrl_llm.rewards import MAX_STEPS, STEP_SCORERS, Step, get_step_scorer

import pytest

CD = {"numbers": [3, 5, 2], "target": 16}


def scores(name, text, example=CD):
  return tuple(s.score for s in get_step_scorer(name)(text, example))


def test_countdown_steps_by_hand():
  # 3+5=8 (pool {3,5,2} -> {2,8}), 8*2=16 (pool -> {16}): both right.
  assert get_step_scorer("countdown_steps")("3+5=8\n8*2=16", CD) == (Step(5, 1.0), Step(12, 1.0))
  # 3+5=9 is wrong (pool unchanged); 3*3 uses 3 twice: wrong.
  assert scores("countdown_steps", "3+5=9\n3*3=9") == (0.0, 0.0)
  # 5*2=10 -> {3,10}; 10+3=13 -> {13}; 13+3 needs a second 3: wrong.
  assert scores("countdown_steps", "5*2=10\n10+3=13\n13+3=16") == (1.0, 1.0, 0.0)
  # Only lines with '=' are steps; spaces allowed; the step ends after its last non-space.
  assert get_step_scorer("countdown_steps")("I think\n3+5 = 8  \nso", CD) == (Step(15, 1.0),)
  assert scores("countdown_steps", "3+5=8=8") == (0.0,)   # rhs "8=8" is not an integer
  assert scores("countdown_steps", "(3+5)*2") == ()
  assert scores("countdown_steps", "") == ()
  assert scores("countdown_steps", "3+x=8\n=\n2*8=16") == (0.0, 0.0, 0.0)  # 8 not in pool
  assert len(scores("countdown_steps", "3=3\n" * (MAX_STEPS + 5))) == MAX_STEPS


def test_equation_lines_by_hand():
  fn = get_step_scorer("equation_lines")
  assert fn("12+34=46\n46*2=90", None) == (Step(8, 1.0), Step(16, 0.0))
  assert scores("equation_lines", "-3+5=2\n1/3*3=1\n7/0=1", None) == (1.0, 1.0, 0.0)
  assert scores("equation_lines", "2*(3+4) = 14\nno", None) == (1.0,)
  with pytest.raises(ValueError, match="unknown step scorer"):
    get_step_scorer("prm")


_PIECES = ["3", "5", "2", "8", "16", "+", "-", "*", "/", "=", "\n", " ", "(", ")", "x",
           "9" * 30, "\u0663", "<answer>", "-", "\x00"]


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.lists(st.sampled_from(_PIECES), max_size=150).map("".join)))
def test_scorers_are_total(text):
  for name, fn in STEP_SCORERS.items():
    start = time.perf_counter()
    steps = fn(text, CD)
    assert time.perf_counter() - start < 1.0
    ends = [s.end for s in steps]
    assert ends == sorted(ends) and all(0 < e <= len(text) for e in ends)
    assert all(s.score in (0.0, 1.0) for s in steps)

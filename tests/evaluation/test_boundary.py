"""evaluation.boundary: k grid, per-problem pass@k against math.comb, bootstrap bands over
problems, maj@k by hand, the plot."""

import math
from fractions import Fraction

import numpy as np
import pytest

from jaxrl_llm.evaluation import boundary


def _comb_pass(n, c, k):
  return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def test_power_of_two_ks():
  assert boundary.power_of_two_ks(1) == [1]
  assert boundary.power_of_two_ks(8) == [1, 2, 4, 8]
  assert boundary.power_of_two_ks(12) == [1, 2, 4, 8, 12]
  with pytest.raises(ValueError, match="positive"):
    boundary.power_of_two_ks(0)


def test_pass_at_k_curve_against_math_comb():
  # 3 problems, n = 4: counts 0, 1, 3.
  correct = np.array([[0, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 1]], bool)
  cv = boundary.pass_at_k_curve(correct, reps=500, seed=1)
  assert cv["ks"] == [1, 2, 4] and cv["correct_counts"] == [0, 1, 3]
  # By hand: k=1: (0 + 1/4 + 3/4)/3 = 1/3; k=2: (0 + (1 - 3/6) + 1)/3 = 1/2; k=4: 2/3.
  np.testing.assert_allclose(cv["pass_at_k"], [1 / 3, 1 / 2, 2 / 3], rtol=1e-12)
  want = [np.mean([_comb_pass(4, c, k) for c in (0, 1, 3)]) for k in (1, 2, 4)]
  np.testing.assert_allclose(cv["pass_at_k"], want, rtol=1e-12)
  for lo, p, hi in zip(cv["low"], cv["pass_at_k"], cv["high"]):
    assert 0.0 <= lo <= p <= hi <= 1.0
  # k = 4 per problem is 0, 1, 1: a resample's mean is j/3, so the band lies on that grid.
  assert cv["low"][2] in (0.0, pytest.approx(1 / 3)) and cv["high"][2] == 1.0


def test_bootstrap_bands_by_hand():
  # One problem: every resample is that problem, the band has zero width.
  b = boundary.bootstrap_bands([[0.25, 0.5]], reps=50)
  assert b == {"mean": [0.25, 0.5], "low": [0.25, 0.5], "high": [0.25, 0.5]}
  # Values 0 and 1: a resample of 2 has mean 0 (p 1/4), 1/2 (p 1/2) or 1 (p 1/4); with
  # many resamples the 2.5 % / 97.5 % quantiles are 0 and 1, the mean 1/2.
  b = boundary.bootstrap_bands([[0.0], [1.0]], reps=4000, seed=3)
  assert b["mean"] == [0.5] and b["low"] == [0.0] and b["high"] == [1.0]
  # A fixed seed gives the same band; the band narrows with more problems.
  x = np.random.default_rng(0).uniform(size=(40, 1))
  assert boundary.bootstrap_bands(x, seed=5) == boundary.bootstrap_bands(x, seed=5)
  wide = boundary.bootstrap_bands(x[:10], seed=5)
  narrow = boundary.bootstrap_bands(np.tile(x[:10], (16, 1)), seed=5)
  assert narrow["high"][0] - narrow["low"][0] < wide["high"][0] - wide["low"][0]
  with pytest.raises(ValueError, match="confidence"):
    boundary.bootstrap_bands(x, confidence=1.0)


def test_maj_at_k_by_hand():
  answers = [["3", "4", "4", None],      # majority 4 (wrong), correct answer 3
             ["7", "7", "8", "8"],       # tie 7/8: the first seen (7, correct) wins
             [None, None, None, None]]   # nothing to vote: 0
  correct = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], bool)
  np.testing.assert_array_equal(boundary.maj_at_k_per_problem(answers, correct, 4), [0, 1, 0])
  # k = 1 is the mean correctness of one random sample: estimated over subsets; with
  # all 4 singletons equally likely, 400 subsets land near 1/4 and 1/2.
  one = boundary.maj_at_k_per_problem(answers, correct, 1, num_subsets=400, seed=0)
  assert abs(one[0] - 0.25) < 0.08 and abs(one[1] - 0.5) < 0.08 and one[2] == 0.0
  # k = 2 of problem 1: pairs {7,7} -> 7 ok, {8,8} -> 8 wrong, mixed -> first (7) ok: 5/6.
  two = boundary.maj_at_k_per_problem(answers, correct, 2, num_subsets=600, seed=1)
  assert abs(two[1] - 5 / 6) < 0.06
  with pytest.raises(ValueError, match=r"\[1, n=4\]"):
    boundary.maj_at_k_per_problem(answers, correct, 5)


def test_plot_writes_png(tmp_path):
  cv = boundary.pass_at_k_curve(np.eye(4, dtype=bool), reps=20)
  boundary.plot_pass_at_k({"a": cv, "b": cv}, str(tmp_path / "p.png"))
  assert (tmp_path / "p.png").stat().st_size > 1000

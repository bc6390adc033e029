import math
from fractions import Fraction

import numpy as np
import pytest

from jaxrl_llm.evaluation import maj_at_k, majority_vote, pass_at_k


def _exact(n, c, k):
  # 1 - C(n-c, k) / C(n, k) with exact integers (math.comb(m, k) = 0 for k > m).
  return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def test_pass_at_k_hand_values():
  assert pass_at_k(5, 2, 1) == pytest.approx(0.4)          # c / n
  assert pass_at_k(5, 2, 2) == pytest.approx(1 - 3 / 10)   # 1 - C(3,2)/C(5,2)
  assert pass_at_k(5, 4, 2) == 1.0                         # n - c < k
  assert pass_at_k(5, 0, 3) == 0.0
  assert pass_at_k(5, 5, 5) == 1.0


def test_pass_at_k_large_n_matches_exact_binomials():
  for n, c, k in [(1024, 3, 512), (1024, 1, 1), (128, 17, 64), (128, 100, 16)]:
    assert pass_at_k(n, c, k) == pytest.approx(_exact(n, c, k), rel=1e-12, abs=1e-15)


def test_pass_at_k_vectorised_over_problems():
  got = pass_at_k(16, np.array([0, 1, 8, 16]), 4)
  np.testing.assert_allclose(got, [_exact(16, c, 4) for c in (0, 1, 8, 16)], rtol=1e-12)


def test_pass_at_k_bad_inputs():
  with pytest.raises(ValueError, match="c <= n"):
    pass_at_k(4, 5, 1)
  with pytest.raises(ValueError, match="k <= n"):
    pass_at_k(4, 1, 8)
  with pytest.raises(ValueError, match="k must"):
    pass_at_k(4, 1, 0)


def test_majority_vote_and_maj_at_k():
  answers = ["a", "b", None, "b", "a", None, None]
  assert majority_vote(answers) == "a"           # tie a/b: first seen wins; None never votes
  assert majority_vote([None, None]) is None
  assert maj_at_k(answers, "a") == 1.0
  assert maj_at_k(["1", "2", "2"], "1") == 0.0
  assert maj_at_k([None], "1") == 0.0

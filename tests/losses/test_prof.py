"""PROF consistency filter (arXiv 2509.03403): the k+/k- split, r_pro with the step-count
penalty, and which rows a hand-made group keeps under PROF-POS and PROF-BOTH."""

import jax
import numpy as np
import pytest

from jaxrl_llm import losses


@pytest.mark.parametrize("n_pos,n_neg,m,expected", [
    (5, 3, 4, (2, 2)), (4, 4, 4, (2, 2)), (1, 7, 4, (1, 3)), (0, 8, 4, (0, 4)),
    (8, 0, 4, (4, 0)), (3, 2, 4, (2, 2)), (6, 1, 4, (3, 1)),
    (1, 2, 3, (1, 2)), (2, 2, 3, (1, 2)), (2, 1, 3, (2, 1)),   # odd m: tie to floor(m/2)
])
def test_prof_split(n_pos, n_neg, m, expected):
  assert losses.prof_split(n_pos, n_neg, m) == expected


def test_prof_split_too_few_rows():
  with pytest.raises(ValueError, match="cannot keep"):
    losses.prof_split(1, 1, 3)


def test_prof_process_scores_by_hand():
  # H = 2 (no penalty), 1 (too short), 0 (no steps), 8 (>= H_lambda): lam = 0.5
  r = losses.prof_process_scores([0.5, 1.0, 0.0, 0.75], [2, 1, 0, 8],
                                 [True, True, False, False], lam=0.5, h_lambda=8)
  np.testing.assert_allclose(r, [0.5, 0.5, 0.5, -0.25])
  mean, count = losses.step_score_stats([[1.0, 0.0], [], [1.0]])
  np.testing.assert_allclose(mean, [0.5, 0.0, 1.0])
  np.testing.assert_array_equal(count, [2, 0, 1])


# Group 0: G+ = rows {0, 2, 3, 6}, G- = {1, 4, 5, 7}  -> k+ = k- = 2.
# Group 1 (rows 8..15): all incorrect             -> k+ = 0, k- = 4.
CORRECT = np.array([1, 0, 1, 1, 0, 0, 1, 0] + [0] * 8, bool)
R_PRO = np.array([0.2, -0.9, 0.8, 0.5, -0.1, -0.6, 0.8, -0.3,
                  -0.5, 0.1, -0.2, 0.3, -0.7, 0.0, 0.2, -0.4])


def test_prof_both_keeps_by_hand():
  rows, counts = losses.prof_select(R_PRO, CORRECT, num_samples=8, keep=4, variant="both",
                                    key=jax.random.key(0))
  # G+: top-2 r_pro 0.8 (row 2), 0.8 (row 6; tie -> lower index first), row 3 (0.5) dropped.
  # G-: highest r_pro = lowest PRM: -0.1 (row 4), -0.3 (row 7).
  # Group 1: top-4 of [-.5, .1, -.2, .3, -.7, 0, .2, -.4] -> rows 11 (.3), 14 (.2), 9 (.1), 13 (0).
  np.testing.assert_array_equal(rows, [2, 4, 6, 7, 9, 11, 13, 14])
  np.testing.assert_array_equal(counts["k_pos"], [2, 0])
  np.testing.assert_array_equal(counts["k_neg"], [2, 4])
  np.testing.assert_array_equal(counts["n_pos"], [4, 0])


def test_prof_pos_keeps_top_correct_and_random_incorrect():
  seen = set()
  for seed in range(30):
    rows, _ = losses.prof_select(R_PRO, CORRECT, num_samples=8, keep=4, variant="pos",
                                 key=jax.random.key(seed))
    g0, g1 = rows[:4], rows[4:]
    assert {2, 6} <= set(g0)                       # the same top-2 correct rows
    neg = set(g0) - {2, 6}
    assert len(neg) == 2 and neg <= {1, 4, 5, 7}   # two incorrect rows, any of them
    assert len(set(g1)) == 4 and set(g1) <= set(range(8, 16))
    seen.add(tuple(sorted(neg)))
    again, _ = losses.prof_select(R_PRO, CORRECT, num_samples=8, keep=4, variant="pos",
                                  key=jax.random.key(seed))
    np.testing.assert_array_equal(rows, again)     # a fixed key gives the same rows
  assert len(seen) > 2                             # ... and the choice is random over keys


def test_prof_select_errors():
  with pytest.raises(ValueError, match="variant"):
    losses.prof_select(R_PRO, CORRECT, num_samples=8, keep=4, variant="neg",
                       key=jax.random.key(0))
  with pytest.raises(ValueError, match="keep"):
    losses.prof_select(R_PRO, CORRECT, num_samples=8, keep=9, variant="pos",
                       key=jax.random.key(0))

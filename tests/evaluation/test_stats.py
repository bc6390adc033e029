"""Tests of jaxrl_llm.evaluation.stats against hand computations and the `rliable` package."""

import numpy as np
import pytest

from jaxrl_llm.evaluation import stats

rliable = pytest.importorskip("rliable")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")
from rliable import library as rly  # noqa: E402
from rliable import metrics as rl_metrics  # noqa: E402


def _score_matrices():
  rng = np.random.RandomState(7)
  a = rng.normal(0.6, 0.25, size=(10, 4))
  b = rng.normal(0.5, 0.3, size=(10, 4))
  return {"A": a, "B": b}


def test_iqm_hand_computed():
  # 8 pooled scores 1..8: drop floor(0.25*8)=2 from each end -> mean(3,4,5,6) = 4.5.
  scores = np.array([[8.0, 1.0], [3.0, 6.0], [5.0, 2.0], [7.0, 4.0]])
  assert stats.iqm(scores) == pytest.approx(4.5)


def test_mean_median_gap_hand_computed():
  scores = np.array([[0.0, 1.0, 2.0], [1.0, 3.0, 0.5]])  # per-task means: 0.5, 2.0, 1.25
  assert stats.mean(scores) == pytest.approx((0.5 + 2.0 + 1.25) / 3)
  assert stats.median(scores) == pytest.approx(1.25)
  # min(x, 1): 0,1,1,1,1,0.5 -> mean 4.5/6 = 0.75 -> gap 0.25
  assert stats.optimality_gap(scores) == pytest.approx(0.25)


def test_probability_of_improvement_hand_computed():
  x = np.array([[1.0], [2.0]])
  y = np.array([[2.0], [0.0]])
  # pairs: (1,2) loss, (1,0) win, (2,2) tie=0.5, (2,0) win -> 2.5/4
  assert stats.probability_of_improvement(x, y) == pytest.approx(0.625)
  assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)


def test_point_estimates_match_rliable():
  for scores in _score_matrices().values():
    np.testing.assert_allclose(stats.iqm(scores), rl_metrics.aggregate_iqm(scores), rtol=0, atol=1e-12)
    np.testing.assert_allclose(stats.mean(scores), rl_metrics.aggregate_mean(scores), atol=1e-12)
    np.testing.assert_allclose(stats.median(scores), rl_metrics.aggregate_median(scores), atol=1e-12)
    np.testing.assert_allclose(stats.optimality_gap(scores),
                               rl_metrics.aggregate_optimality_gap(scores), atol=1e-12)
  d = _score_matrices()
  np.testing.assert_allclose(stats.probability_of_improvement(d["A"], d["B"]),
                             rl_metrics.probability_of_improvement(d["A"], d["B"]), atol=1e-12)
  # ties: rounded scores create many equal pairs
  xa, xb = np.round(d["A"], 1), np.round(d["B"], 1)
  np.testing.assert_allclose(stats.probability_of_improvement(xa, xb),
                             rl_metrics.probability_of_improvement(xa, xb), atol=1e-12)


def test_bootstrap_cis_match_rliable_within_monte_carlo():
  d = _score_matrices()
  reps = 4000
  agg = lambda x: np.array([rl_metrics.aggregate_median(x), rl_metrics.aggregate_iqm(x),
                            rl_metrics.aggregate_mean(x), rl_metrics.aggregate_optimality_gap(x)])
  rl_point, rl_ci = rly.get_interval_estimates(d, agg, reps=reps,
                                               random_state=np.random.RandomState(0))
  point, ci = stats.interval_estimates(d, stats.aggregate_metrics, reps=reps, seed=0)
  for algo in d:
    np.testing.assert_allclose(point[algo], rl_point[algo], atol=1e-12)
    width = rl_ci[algo][1] - rl_ci[algo][0]
    # Monte-Carlo error of a 2.5% quantile with 4000 reps is ~2-4% of the CI width.
    np.testing.assert_array_less(np.abs(ci[algo] - rl_ci[algo]),
                                  np.broadcast_to(0.12 * width + 1e-9, (2, 4)))
    assert np.all(ci[algo][0] <= point[algo]) and np.all(point[algo] <= ci[algo][1])


def test_probability_of_improvement_ci_matches_rliable():
  d = _score_matrices()
  # rliable's PoI bootstrap calls scipy per task per resample (slow): 1000 reps there, 4000 here.
  rl_p, rl_ci = rly.get_interval_estimates({"A,B": (d["A"], d["B"])},
                                           rl_metrics.probability_of_improvement, reps=1000,
                                           random_state=np.random.RandomState(0))
  p, ci = stats.probability_of_improvement_ci(d["A"], d["B"], reps=4000, seed=0)
  np.testing.assert_allclose(p, rl_p["A,B"], atol=1e-12)
  width = rl_ci["A,B"][1] - rl_ci["A,B"][0]
  np.testing.assert_array_less(np.abs(ci - np.ravel(rl_ci["A,B"])), np.full(2, 0.12 * width))


def test_performance_profile_matches_rliable():
  d = _score_matrices()
  taus = np.linspace(-0.2, 1.4, 9)
  rl_prof, rl_ci = rly.create_performance_profile(d, taus, reps=500)
  prof, ci = stats.performance_profiles(d, taus, reps=500, seed=1)
  for algo in d:
    np.testing.assert_allclose(prof[algo], rl_prof[algo], atol=1e-12)
    # hand check of one tau: fraction of the 40 scores above it
    assert prof[algo][4] == pytest.approx(np.mean(d[algo] > taus[4]))
    np.testing.assert_array_less(np.abs(ci[algo] - rl_ci[algo]), np.full(ci[algo].shape, 0.1))
  avg = stats.performance_profile(d["A"], taus, use_score_distribution=False)
  np.testing.assert_allclose(avg, [np.mean(d["A"].mean(0) > t) for t in taus])


def test_bootstrap_is_seeded():
  s = _score_matrices()["A"]
  _, ci1 = stats.stratified_bootstrap_ci(s, stats.iqm, reps=300, seed=3)
  _, ci2 = stats.stratified_bootstrap_ci(s, stats.iqm, reps=300, seed=3)
  _, ci3 = stats.stratified_bootstrap_ci(s, stats.iqm, reps=300, seed=4)
  np.testing.assert_array_equal(ci1, ci2)
  assert not np.array_equal(ci1, ci3)


def test_stratified_resample_keeps_tasks():
  s = np.arange(12.0).reshape(4, 3)  # column j holds values {j, j+3, j+6, j+9}
  res = stats.stratified_bootstrap(s, np.random.default_rng(0), 50)
  assert res.shape == (50, 4, 3)
  for j in range(3):
    assert set(np.unique(res[:, :, j])) <= set(s[:, j])


def test_bad_input_errors():
  with pytest.raises(ValueError, match="scores"):
    stats.iqm(np.ones(5))
  with pytest.raises(ValueError, match="NaN"):
    stats.mean(np.array([[1.0, np.nan]]))
  with pytest.raises(ValueError, match="tasks"):
    stats.probability_of_improvement(np.ones((3, 2)), np.ones((3, 4)))


def test_plots(tmp_path):
  d = _score_matrices()
  point, ci = stats.interval_estimates(d, stats.aggregate_metrics, reps=200, seed=0)
  stats.plot_interval_estimates(point, ci, path=str(tmp_path / "agg.png"))
  taus = np.linspace(0, 1.2, 13)
  prof, pci = stats.performance_profiles(d, taus, reps=200)
  stats.plot_performance_profiles(prof, taus, pci, path=str(tmp_path / "prof.png"))
  p, pci2 = stats.probability_of_improvement_ci(d["A"], d["B"], reps=200)
  stats.plot_probability_of_improvement({"A,B": p}, {"A,B": pci2}, path=str(tmp_path / "poi.png"))
  curves = {k: np.stack([v, v + 0.1, v + 0.2], axis=-1) for k, v in d.items()}  # [runs, tasks, 3]
  cp, cc = stats.sample_efficiency_curves(curves, reps=200)
  np.testing.assert_allclose(cp["A"], [stats.iqm(d["A"]) + 0.1 * t for t in range(3)])
  assert cc["A"].shape == (2, 3) and np.all(cc["A"][0] <= cp["A"]) and np.all(cp["A"] <= cc["A"][1])
  stats.plot_sample_efficiency_curves([0, 1000, 2000], cp, cc, path=str(tmp_path / "curve.png"))
  for f in ("agg.png", "prof.png", "poi.png", "curve.png"):
    assert (tmp_path / f).stat().st_size > 1000

"""Aggregate statistics for RL evaluation (rliable-style), in plain NumPy.

Reference: Agarwal, Schwarzer, Castro, Courville, Bellemare, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice", NeurIPS 2021.

Score matrices are `[num_runs, num_tasks]` arrays of (normalised) scores. Every
aggregate below is written for arrays of shape `[..., num_runs, num_tasks]` so the
stratified bootstrap can evaluate all resamples in one vectorised call.

The statistics run on the host (NumPy), not under `jit`: they are evaluation-time
summaries of a handful of numbers, and NumPy's `Generator` gives a reproducible
stream from an integer seed.
"""

from __future__ import annotations

from typing import Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

Array = np.ndarray
ScoreFn = Callable[[Array], Array]

__all__ = [
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "aggregate_metrics",
    "probability_of_improvement",
    "stratified_bootstrap",
    "stratified_bootstrap_ci",
    "interval_estimates",
    "probability_of_improvement_ci",
    "performance_profile",
    "performance_profiles",
    "plot_interval_estimates",
    "plot_performance_profiles",
    "plot_probability_of_improvement",
    "sample_efficiency_curves",
    "plot_sample_efficiency_curves",
]


def _check_scores(scores, name: str = "scores") -> Array:
  scores = np.asarray(scores, dtype=np.float64)
  if scores.ndim < 2:
    raise ValueError(
        f"`{name}` must have shape [..., num_runs, num_tasks]; got shape {scores.shape}.")
  if scores.shape[-1] < 1 or scores.shape[-2] < 1:
    raise ValueError(f"`{name}` has an empty runs or tasks axis: shape {scores.shape}.")
  if not np.all(np.isfinite(scores)):
    raise ValueError(f"`{name}` contains NaN or inf values.")
  return scores


# ----------------------------------------------------------------------------- point estimates


def iqm(scores) -> Array:
  """Interquartile mean over all runs x tasks pooled.

  IQM = mean of the sorted pooled scores x_(k+1) .. x_(n-k), with n = runs*tasks and
  k = floor(0.25 n): the 25% trimmed mean (`scipy.stats.trim_mean(x, 0.25)`).
  Agarwal et al. (2021), Sec. 4.
  """
  scores = _check_scores(scores)
  flat = np.sort(scores.reshape(scores.shape[:-2] + (-1,)), axis=-1)
  n = flat.shape[-1]
  k = int(0.25 * n)
  return flat[..., k:n - k].mean(axis=-1)


def mean(scores) -> Array:
  """Mean over tasks of the per-task mean over runs."""
  scores = _check_scores(scores)
  return scores.mean(axis=-2).mean(axis=-1)


def median(scores) -> Array:
  """Median over tasks of the per-task mean over runs."""
  scores = _check_scores(scores)
  return np.median(scores.mean(axis=-2), axis=-1)


def optimality_gap(scores, gamma: float = 1.0) -> Array:
  """Optimality gap: `gamma - mean(min(x, gamma))` over all runs x tasks.

  The amount by which scores fall short of the target `gamma` (1 = expert).
  """
  scores = _check_scores(scores)
  return gamma - np.minimum(scores, gamma).mean(axis=(-2, -1))


def aggregate_metrics(scores) -> Array:
  """`[median, iqm, mean, optimality_gap]`, stacked on the last axis (rliable's order)."""
  return np.stack([median(scores), iqm(scores), mean(scores), optimality_gap(scores)], axis=-1)


def probability_of_improvement(scores_x, scores_y) -> Array:
  """P(X > Y): mean over tasks of P(X_m > Y_m) + 0.5 P(X_m = Y_m).

  For task m with runs x_i (i<n_x) and y_j (j<n_y):
  `P_m = 1/(n_x n_y) sum_ij [1(x_i > y_j) + 0.5 1(x_i = y_j)]` (the Mann-Whitney U
  statistic over n_x n_y). Agarwal et al. (2021), Sec. 4.3.
  Accepts batched `[..., runs, tasks]` arrays with equal leading axes.
  """
  x = _check_scores(scores_x, "scores_x")
  y = _check_scores(scores_y, "scores_y")
  if x.shape[-1] != y.shape[-1]:
    raise ValueError(
        f"`scores_x` and `scores_y` must have the same number of tasks; got {x.shape[-1]} and {y.shape[-1]}.")
  diff = x[..., :, None, :] - y[..., None, :, :]  # [..., n_x, n_y, tasks]
  wins = (diff > 0).astype(np.float64) + 0.5 * (diff == 0)
  return wins.mean(axis=(-3, -2)).mean(axis=-1)


# ----------------------------------------------------------------------------- bootstrap


def _rng(seed: Union[int, np.random.Generator, None]) -> np.random.Generator:
  if isinstance(seed, np.random.Generator):
    return seed
  return np.random.default_rng(seed)


def stratified_bootstrap(scores, rng: np.random.Generator, reps: int,
                         task_bootstrap: bool = False) -> Array:
  """`reps` stratified resamples of a `[runs, tasks]` matrix -> `[reps, runs, tasks]`.

  Runs are resampled with replacement independently *within each task* (each task is a
  stratum). With `task_bootstrap=True` the task columns are also resampled with
  replacement (rliable's `task_bootstrap`).
  """
  scores = _check_scores(scores)
  if scores.ndim != 2:
    raise ValueError(f"`scores` must be [runs, tasks]; got shape {scores.shape}.")
  runs, tasks = scores.shape
  run_idx = rng.integers(0, runs, size=(reps, runs, tasks))
  if task_bootstrap:
    task_idx = rng.integers(0, tasks, size=(reps, 1, tasks))
  else:
    task_idx = np.broadcast_to(np.arange(tasks), (reps, 1, tasks))
  return scores[run_idx, task_idx]


def _percentile_ci(samples: Array, point: Array, confidence: float, method: str) -> Array:
  alpha = 1.0 - confidence
  lo, hi = np.percentile(samples, [100 * alpha / 2, 100 * (1 - alpha / 2)], axis=0)
  if method == "percentile":
    return np.stack([lo, hi])
  if method == "basic":  # reflect the percentile interval around the point estimate
    return np.stack([2 * point - hi, 2 * point - lo])
  raise ValueError(f"Unknown bootstrap `method` {method!r}; known: 'percentile', 'basic'.")


def stratified_bootstrap_ci(scores, statistic: ScoreFn = iqm, *, reps: int = 2000,
                            seed: Union[int, np.random.Generator, None] = 0,
                            confidence: float = 0.95, method: str = "percentile",
                            task_bootstrap: bool = False,
                            chunk_size: int = 5000) -> Tuple[Array, Array]:
  """Point estimate and stratified-bootstrap confidence interval of `statistic(scores)`.

  `statistic` maps `[..., runs, tasks] -> [..., *stat_shape]` (all aggregates in this
  module do). Returns `(point, ci)` with `ci` of shape `[2, *stat_shape]` (lower, upper):
  the `(1-c)/2` and `(1+c)/2` percentiles of the statistic over `reps` resamples
  (`method='percentile'`, rliable's default), or the basic (reflected) interval.
  """
  scores = _check_scores(scores)
  if reps < 1:
    raise ValueError(f"`reps` must be >= 1; got {reps}.")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"`confidence` must be in (0, 1); got {confidence}.")
  rng = _rng(seed)
  point = np.asarray(statistic(scores))
  samples = []
  for start in range(0, reps, chunk_size):
    n = min(chunk_size, reps - start)
    samples.append(np.asarray(statistic(stratified_bootstrap(scores, rng, n, task_bootstrap))))
  return point, _percentile_ci(np.concatenate(samples, axis=0), point, confidence, method)


def interval_estimates(score_dict: Mapping[str, Array], statistic: ScoreFn = aggregate_metrics,
                       *, reps: int = 2000, seed: Union[int, None] = 0,
                       confidence: float = 0.95, method: str = "percentile",
                       task_bootstrap: bool = False) -> Tuple[Dict[str, Array], Dict[str, Array]]:
  """Per-algorithm point estimates and CIs (rliable's `get_interval_estimates`).

  Each algorithm gets its own generator, seeded from `(seed, index)`, so the result
  does not depend on dict order beyond the index.
  """
  points, cis = {}, {}
  for i, (name, scores) in enumerate(score_dict.items()):
    rng = np.random.default_rng(None if seed is None else [seed, i])
    points[name], cis[name] = stratified_bootstrap_ci(
        scores, statistic, reps=reps, seed=rng, confidence=confidence, method=method,
        task_bootstrap=task_bootstrap)
  return points, cis


def probability_of_improvement_ci(scores_x, scores_y, *, reps: int = 2000,
                                  seed: Union[int, np.random.Generator, None] = 0,
                                  confidence: float = 0.95,
                                  chunk_size: int = 1000) -> Tuple[Array, Array]:
  """P(X > Y) with a CI from independent stratified resampling of X and of Y.

  X's runs and Y's runs are each resampled within every task, independently of each
  other (rliable's `StratifiedIndependentBootstrap`). Returns `(point, ci[2])`.
  """
  x = _check_scores(scores_x, "scores_x")
  y = _check_scores(scores_y, "scores_y")
  rng = _rng(seed)
  point = probability_of_improvement(x, y)
  samples = []
  for start in range(0, reps, chunk_size):
    n = min(chunk_size, reps - start)
    xs = stratified_bootstrap(x, rng, n)
    ys = stratified_bootstrap(y, rng, n)
    samples.append(probability_of_improvement(xs, ys))
  return point, _percentile_ci(np.concatenate(samples), point, confidence, "percentile")


# ----------------------------------------------------------------------------- performance profiles


def performance_profile(scores, taus: Sequence[float], use_score_distribution: bool = True) -> Array:
  """Score distribution `F(tau) = P(score > tau)` for each tau.

  `use_score_distribution=True`: fraction of all runs x tasks with score > tau (the run-score
  distribution). False: fraction of tasks whose run-mean score > tau (average-score
  distribution). Agarwal et al. (2021), Sec. 4.2. Returns `[..., len(taus)]`.
  """
  scores = _check_scores(scores)
  taus = np.asarray(taus, dtype=np.float64)
  if use_score_distribution:
    return (scores[..., None] > taus).mean(axis=(-3, -2))
  return (scores.mean(axis=-2)[..., None] > taus).mean(axis=-2)


def performance_profiles(score_dict: Mapping[str, Array], taus: Sequence[float], *,
                         use_score_distribution: bool = True, reps: int = 2000,
                         seed: Optional[int] = 0, confidence: float = 0.95,
                         task_bootstrap: bool = False):
  """Per-algorithm performance profiles and their stratified-bootstrap CIs.

  Returns `(profiles, cis)`: dicts of `[len(taus)]` and `[2, len(taus)]` arrays.
  """
  fn = lambda s: performance_profile(s, taus, use_score_distribution)
  return interval_estimates(score_dict, fn, reps=reps, seed=seed, confidence=confidence,
                            task_bootstrap=task_bootstrap)


def sample_efficiency_curves(score_dict: Mapping[str, Array], statistic: ScoreFn = iqm, *,
                             reps: int = 2000, seed: Optional[int] = 0, confidence: float = 0.95):
  """Aggregate score over training: `score_dict[algo]` is `[runs, tasks, num_points]`.

  Returns `(points, cis)`: dicts of `[num_points]` and `[2, num_points]` arrays, the statistic
  and its stratified-bootstrap CI at every evaluation point.
  """
  points, cis = {}, {}
  for i, (name, scores) in enumerate(score_dict.items()):
    scores = np.asarray(scores, np.float64)
    if scores.ndim != 3:
      raise ValueError(f"`score_dict[{name!r}]` must be [runs, tasks, num_points]; got shape {scores.shape}.")
    rng = np.random.default_rng(None if seed is None else [seed, i])
    per_point = [stratified_bootstrap_ci(scores[..., t], statistic, reps=reps, seed=rng, confidence=confidence)
                 for t in range(scores.shape[-1])]
    points[name] = np.array([p for p, _ in per_point])
    cis[name] = np.stack([c for _, c in per_point], axis=-1)
  return points, cis


# ----------------------------------------------------------------------------- plots


def _plt():
  import matplotlib
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt
  return plt


def plot_interval_estimates(points: Mapping[str, Array], cis: Mapping[str, Array],
                            metric_names: Sequence[str] = ("Median", "IQM", "Mean", "Optimality Gap"),
                            algorithms: Optional[Sequence[str]] = None,
                            xlabel: str = "Normalized score", path: Optional[str] = None):
  """One panel per metric; a horizontal CI bar and a point per algorithm. Returns the figure."""
  plt = _plt()
  algorithms = list(algorithms or points.keys())
  fig, axes = plt.subplots(1, len(metric_names), figsize=(3.2 * len(metric_names), 0.5 * len(algorithms) + 1.2),
                           squeeze=False)
  for m, (ax, metric) in enumerate(zip(axes[0], metric_names)):
    for i, algo in enumerate(algorithms):
      p = np.atleast_1d(points[algo])[m]
      lo, hi = np.asarray(cis[algo]).reshape(2, -1)[:, m]
      ax.barh(i, hi - lo, left=lo, height=0.6, alpha=0.6, color=f"C{i}")
      ax.plot([p, p], [i - 0.3, i + 0.3], color="k", lw=1.5)
    ax.set_yticks(range(len(algorithms)))
    ax.set_yticklabels(algorithms if m == 0 else [])
    ax.set_title(metric)
    ax.grid(axis="x", alpha=0.3)
  fig.supxlabel(xlabel)
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=120)
  return fig


def plot_performance_profiles(profiles: Mapping[str, Array], taus: Sequence[float],
                              cis: Optional[Mapping[str, Array]] = None,
                              xlabel: str = r"Normalized score $\tau$",
                              ylabel: str = r"Fraction of runs with score $> \tau$",
                              path: Optional[str] = None):
  """Performance-profile curves with optional CI bands. Returns the figure."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 3.5))
  taus = np.asarray(taus)
  for i, (algo, prof) in enumerate(profiles.items()):
    ax.plot(taus, prof, label=algo, color=f"C{i}")
    if cis is not None and algo in cis:
      ax.fill_between(taus, cis[algo][0], cis[algo][1], color=f"C{i}", alpha=0.2)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.set_ylim(0, 1.02)
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=120)
  return fig


def plot_probability_of_improvement(points: Mapping[str, float], cis: Mapping[str, Array],
                                    path: Optional[str] = None):
  """One row per pair "X,Y": P(X > Y) with its CI. Returns the figure."""
  plt = _plt()
  pairs = list(points.keys())
  fig, ax = plt.subplots(figsize=(5, 0.5 * len(pairs) + 1.2))
  for i, pair in enumerate(pairs):
    lo, hi = np.asarray(cis[pair]).reshape(2)
    ax.barh(i, hi - lo, left=lo, height=0.6, alpha=0.6, color=f"C{i}")
    ax.plot([points[pair]] * 2, [i - 0.3, i + 0.3], color="k", lw=1.5)
  ax.axvline(0.5, ls="--", color="gray")
  ax.set_yticks(range(len(pairs)))
  ax.set_yticklabels([p.replace(",", " > ") for p in pairs])
  ax.set_xlim(0, 1)
  ax.set_xlabel("P(X > Y)")
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=120)
  return fig


def plot_sample_efficiency_curves(steps: Sequence[float], points: Mapping[str, Array],
                                  cis: Optional[Mapping[str, Array]] = None, xlabel: str = "Gradient steps",
                                  ylabel: str = "IQM normalized score", path: Optional[str] = None):
  """Aggregate score vs training steps, with CI bands. Returns the figure."""
  plt = _plt()
  fig, ax = plt.subplots(figsize=(5, 3.5))
  for i, (algo, curve) in enumerate(points.items()):
    ax.plot(steps, curve, label=algo, color=f"C{i}", marker="o", ms=3)
    if cis is not None and algo in cis:
      ax.fill_between(steps, cis[algo][0], cis[algo][1], color=f"C{i}", alpha=0.2)
  ax.set_xlabel(xlabel)
  ax.set_ylabel(ylabel)
  ax.legend()
  ax.grid(alpha=0.3)
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=120)
  return fig

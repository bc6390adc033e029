"""Reasoning-boundary statistics from n sampled solutions per problem: pass@k curves,
maj@k and bootstrap bands over problems.

Yue et al. 2025, "Does Reinforcement Learning Really Incentivize Reasoning Capacity in
LLMs Beyond the Base Model?", arXiv 2504.13837 (App. A.2, Eq. 2): with n samples of
problem x of which c_x are correct, the unbiased estimate of the benchmark pass@k is

    pass@k = mean_x [ 1 - C(n - c_x, k) / C(n, k) ]

(`jaxrl_llm.evaluation.passk.pass_at_k`, the stable product form), plotted for
k = 1, 2, 4, ..., n: RL-trained models win at small k, the base model can overtake them
at large k. maj@k (Wang et al. 2023, "Self-Consistency Improves Chain of Thought
Reasoning", arXiv 2203.11171) votes over the extracted final answers of k samples.

The band of a curve resamples the problems (the benchmark's sampling unit) with
replacement: `reps` resamples, one index draw shared by every k so a band is a band of
curves, and the (1 -+ confidence)/2 percentiles of the resampled means (Efron &
Tibshirani 1993). Sampling noise within a problem (n draws) is not resampled.

Host-side NumPy (float64) on small integer matrices; nothing here is jit-compiled.
"""

from __future__ import annotations

from typing import Hashable, Mapping, Optional, Sequence

import numpy as np

from jaxrl_llm.evaluation.passk import majority_vote, pass_at_k


def power_of_two_ks(n: int) -> list:
  """``[1, 2, 4, ..., 2^m]`` with ``2^m <= n``, then ``n`` itself if it is not a power of two."""
  if int(n) != n or n < 1:
    raise ValueError(f"n must be a positive integer, got {n!r}")
  ks, k = [], 1
  while k <= n:
    ks.append(k)
    k *= 2
  if ks[-1] != n:
    ks.append(int(n))
  return ks


def _check_correct(correct) -> np.ndarray:
  c = np.asarray(correct)
  if c.ndim != 2 or c.shape[0] < 1 or c.shape[1] < 1:
    raise ValueError(f"correct must be a [num_problems, n] matrix, got shape {c.shape}")
  if c.dtype != np.bool_:
    if not np.all((c == 0) | (c == 1)):
      raise ValueError("correct must hold booleans (or 0/1)")
    c = c.astype(bool)
  return c


def _check_ks(ks, n: int) -> list:
  ks = [int(k) for k in ks]
  if not ks:
    raise ValueError("ks is empty")
  bad = [k for k in ks if k < 1 or k > n]
  if bad:
    raise ValueError(f"every k must lie in [1, n={n}], got {bad}")
  return ks


def pass_at_k_per_problem(correct_counts, n: int, ks: Sequence[int]) -> np.ndarray:
  """``[P, len(ks)]`` unbiased pass@k of each problem from its correct count ``c_x`` of ``n``."""
  counts = np.asarray(correct_counts)
  if counts.ndim != 1:
    raise ValueError(f"correct_counts must be [num_problems], got shape {counts.shape}")
  ks = _check_ks(ks, n)
  return np.stack([np.atleast_1d(pass_at_k(int(n), counts.astype(np.int64), k)) for k in ks],
                  axis=1)


def bootstrap_bands(per_problem, *, reps: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> dict:
  """Mean over problems of ``per_problem [P, K]`` and its percentile-bootstrap band.

  ``reps`` resamples of the P problems with replacement (``np.random.default_rng(seed)``,
  one index matrix ``[reps, P]`` for all K columns). Returns ``{"mean", "low", "high"}``
  (lists of K floats).
  """
  x = np.asarray(per_problem, np.float64)
  if x.ndim != 2 or x.shape[0] < 1:
    raise ValueError(f"per_problem must be [num_problems, K], got shape {x.shape}")
  if reps < 1:
    raise ValueError(f"reps must be >= 1, got {reps}")
  if not 0.0 < confidence < 1.0:
    raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, x.shape[0], size=(reps, x.shape[0]))
  means = x[idx].mean(axis=1)  # [reps, K]
  a = (1.0 - confidence) / 2
  low, high = np.quantile(means, [a, 1 - a], axis=0)
  return {"mean": x.mean(axis=0).tolist(), "low": low.tolist(), "high": high.tolist()}


def _voted_correct(answers: Sequence[Optional[Hashable]], correct: np.ndarray) -> float:
  voted = majority_vote(answers)
  if voted is None:
    return 0.0
  return float(correct[next(i for i, a in enumerate(answers) if a == voted)])


def maj_at_k_per_problem(answers: Sequence[Sequence[Optional[Hashable]]], correct, k: int, *,
                         num_subsets: int = 16, seed: int = 0) -> np.ndarray:
  """``[P]`` maj@k of each problem: is the majority answer of k of its n samples correct?

  ``answers[x][j]`` is sample j's extracted final answer (None: none; None never votes),
  ``correct[x][j]`` its verdict; the voted answer counts as correct when the first of its
  samples (in sample order) is correct, so the task's own verifier decides. With k = n
  the vote is over all n samples; with k < n it is the mean over ``num_subsets`` random
  k-subsets (without replacement, in sample order; ``default_rng([seed, x])``) -- an
  estimate of the expectation over subsets, as pass@k is for the union.
  """
  c = _check_correct(correct)
  p, n = c.shape
  if len(answers) != p or any(len(a) != n for a in answers):
    raise ValueError(f"answers must be {p} lists of {n} answers (as correct), got "
                     f"{[len(a) for a in answers]}")
  k = _check_ks([k], n)[0]
  if num_subsets < 1:
    raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
  out = np.empty((p,), np.float64)
  for x in range(p):
    if k == n:
      out[x] = _voted_correct(list(answers[x]), c[x])
      continue
    rng = np.random.default_rng([seed, x])
    vals = []
    for _ in range(num_subsets):
      sub = np.sort(rng.choice(n, size=k, replace=False))
      vals.append(_voted_correct([answers[x][j] for j in sub], c[x][sub]))
    out[x] = float(np.mean(vals))
  return out


def pass_at_k_curve(correct, ks: Optional[Sequence[int]] = None, *, reps: int = 2000,
                    confidence: float = 0.95, seed: int = 0) -> dict:
  """The pass@k curve of a ``[P, n]`` correctness matrix with bootstrap bands over problems.

  ``ks`` defaults to :func:`power_of_two_ks` (n). Returns a JSON-ready dict: ``n``,
  ``num_problems``, ``ks``, ``pass_at_k`` (mean over problems), ``low``/``high`` (the
  band), ``confidence``, ``reps``, ``seed`` and ``correct_counts`` (c_x per problem).
  """
  c = _check_correct(correct)
  p, n = c.shape
  ks = power_of_two_ks(n) if ks is None else _check_ks(ks, n)
  counts = c.sum(axis=1).astype(np.int64)
  bands = bootstrap_bands(pass_at_k_per_problem(counts, n, ks), reps=reps,
                          confidence=confidence, seed=seed)
  return {"n": int(n), "num_problems": int(p), "ks": ks, "pass_at_k": bands["mean"],
          "low": bands["low"], "high": bands["high"], "confidence": confidence, "reps": reps,
          "seed": seed, "correct_counts": counts.tolist()}


def plot_pass_at_k(curves: Mapping[str, Mapping], path: Optional[str] = None, *,
                   title: str = "", ylabel: str = "pass@k"):
  """pass@k vs k (log2 x axis) for each named curve of :func:`pass_at_k_curve`, with its
  band shaded. Writes ``path`` (PNG/SVG by suffix) when given; returns the figure."""
  import matplotlib
  matplotlib.use("Agg", force=False)
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(5.5, 3.8))
  for i, (name, cv) in enumerate(curves.items()):
    ks = np.asarray(cv["ks"])
    ax.plot(ks, cv["pass_at_k"], marker="o", ms=3, color=f"C{i}", label=name)
    ax.fill_between(ks, cv["low"], cv["high"], color=f"C{i}", alpha=0.2, lw=0)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("k")
  ax.set_ylabel(ylabel)
  ax.set_ylim(0, 1.02)
  ax.grid(alpha=0.3, which="both")
  if title:
    ax.set_title(title, fontsize=9)
  ax.legend()
  fig.tight_layout()
  if path:
    fig.savefig(path, dpi=120)
  return fig

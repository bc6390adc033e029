"""PROF: process-consistency filter over oversampled groups (data-level, no gradient).

PROF (Process Consistency Filter), arXiv 2509.03403 (repository Chenluye99/PROF;
spec §15, SECONDARY: a detailed paper summary; the official repository has no code
yet, so n, m, lambda and H_lambda are options with unverified defaults). Per prompt, ``n``
responses with outcome ``r^o_i in {-1, +1}`` and PRM step scores ``r_i^1..r_i^{H_i}``::

    r_pro_i = [ (1/H_i) sum_h r_i^h  -  lambda * 1(H_i <= 1 or H_i >= H_lambda) ] * r^o_i

(``H_i = 0``, no step at all, counts as too short like ``H_i = 1`` and has mean 0;
the summary states only ``H_i == 1``.) The correct set G+ and the incorrect set G-
keep ``k+`` and ``k-`` rows, ``k+ + k- = m``, ``k+ <= |G+|``, ``k- <= |G-|``,
maximising ``k+ k-`` (``k+`` as close to ``m/2`` as the sizes allow; for odd ``m`` the
tie goes to ``k+ = floor(m/2)``). G+ keeps its ``k+`` highest ``r_pro`` (most
consistent process); G- keeps, for ``PROF-POS`` (``variant="pos"``), ``k-`` rows at
random, and for ``PROF-BOTH`` (``"both"``) its ``k-`` highest ``r_pro``, i.e. the
lowest mean PRM (the README: "remove the incorrect responses with the highest PRM
values"). Ties in ``r_pro`` go to the lower row index. The policy update then uses
the kept ``m`` rows per prompt (advantages computed on the kept set).
"""

from typing import Sequence

import jax
import numpy as np

PROF_VARIANTS = ("pos", "both")


def prof_process_scores(step_mean, num_steps, correct, *, lam: float,
                        h_lambda: int) -> np.ndarray:
  """``r_pro [R] = (step_mean - lam * 1(H <= 1 or H >= h_lambda)) * (+1 if correct else -1)``."""
  step_mean = np.asarray(step_mean, np.float64)
  num_steps = np.asarray(num_steps)
  correct = np.asarray(correct, bool)
  if step_mean.ndim != 1 or num_steps.shape != step_mean.shape or correct.shape != step_mean.shape:
    raise ValueError(f"prof_process_scores: step_mean {step_mean.shape}, num_steps "
                     f"{num_steps.shape} and correct {correct.shape} must be equal [R] shapes")
  penalty = (num_steps <= 1) | (num_steps >= h_lambda)
  sign = np.where(correct, 1.0, -1.0)
  return (step_mean - lam * penalty) * sign


def prof_split(n_pos: int, n_neg: int, m: int) -> tuple[int, int]:
  """``(k+, k-)``: ``k+ + k- = m``, ``k+ <= n_pos``, ``k- <= n_neg``, ``k+ k-`` maximal
  (``k+`` nearest ``m/2``, ties to ``floor(m/2)``)."""
  if m < 1 or n_pos < 0 or n_neg < 0 or n_pos + n_neg < m:
    raise ValueError(f"prof_split: cannot keep m={m} of n_pos={n_pos} + n_neg={n_neg} rows")
  lo, hi = max(0, m - n_neg), min(n_pos, m)
  k_pos = min(max(m // 2, lo), hi)
  return k_pos, m - k_pos


def prof_select(r_pro, correct, *, num_samples: int, keep: int, variant: str,
                key) -> tuple[np.ndarray, dict]:
  """Kept row indices ``[P * keep]`` (ascending within each group) of ``P`` contiguous
  groups of ``num_samples`` rows, and counts ``{"k_pos": [P], "k_neg": [P], "n_pos": [P]}``.

  ``key`` (a ``jax.random`` key) drives PROF-POS's random choice in G-: group ``g``
  draws ``jax.random.permutation(fold_in(key, g), |G-_g|)``.
  """
  if variant not in PROF_VARIANTS:
    raise ValueError(f"prof_select: variant must be one of {PROF_VARIANTS}, got {variant!r}")
  r_pro = np.asarray(r_pro, np.float64)
  correct = np.asarray(correct, bool)
  n = int(num_samples)
  if r_pro.ndim != 1 or correct.shape != r_pro.shape or n < 1 or r_pro.shape[0] % n:
    raise ValueError(f"prof_select: r_pro {r_pro.shape} and correct {correct.shape} must be "
                     f"[P * num_samples] with num_samples={num_samples}")
  if not 1 <= keep <= n:
    raise ValueError(f"prof_select: keep={keep} must be in [1, num_samples={n}]")
  rows, k_pos, k_neg, n_pos = [], [], [], []
  for g in range(r_pro.shape[0] // n):
    idx = g * n + np.arange(n)
    pos, neg = idx[correct[idx]], idx[~correct[idx]]
    kp, kn = prof_split(len(pos), len(neg), keep)
    kept_pos = pos[np.argsort(-r_pro[pos], kind="stable")][:kp]
    if variant == "both":
      kept_neg = neg[np.argsort(-r_pro[neg], kind="stable")][:kn]
    else:
      perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, g), len(neg)))
      kept_neg = neg[perm[:kn]]
    rows.append(np.sort(np.concatenate([kept_pos, kept_neg])))
    k_pos.append(kp)
    k_neg.append(kn)
    n_pos.append(len(pos))
  return (np.concatenate(rows).astype(np.int32),
          {"k_pos": np.asarray(k_pos), "k_neg": np.asarray(k_neg), "n_pos": np.asarray(n_pos)})


def step_score_stats(steps: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
  """``(mean [R], count [R])`` of each row's step scores (mean 0 for a row without steps)."""
  count = np.asarray([len(s) for s in steps], np.int32)
  mean = np.asarray([float(np.mean(s)) if len(s) else 0.0 for s in steps], np.float64)
  return mean, count

"""pass@k and maj@k for sampled solutions.

These are evaluation utilities on small host-side integer counts, so they are
NumPy (float64), not jit-compiled.
"""

from collections import Counter
from typing import Hashable, Optional, Sequence

import numpy as np


def _pass_at_k_scalar(n: int, c: int, k: int) -> float:
  if n - c < k:
    return 1.0
  # 1 - C(n-c, k)/C(n, k) = 1 - prod_{i=n-c+1}^{n} (1 - k/i): no large binomials.
  return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1, dtype=np.float64)))


def pass_at_k(n, c, k: int):
  """Unbiased pass@k estimate from ``n`` samples of which ``c`` are correct.

  Chen et al. 2021, "Evaluating Large Language Models Trained on Code",
  arXiv 2107.03374, in the numerically stable product form::

      pass@k = 1 - C(n - c, k) / C(n, k)
             = 1                                        if n - c < k
             = 1 - prod_{i = n-c+1}^{n} (1 - k / i)     otherwise

  ``n`` and ``c`` may be ints or integer arrays (broadcast together; one entry
  per problem); average the result over problems for the benchmark pass@k.

  Raises:
    ValueError: unless ``0 <= c <= n`` and ``1 <= k <= n``.
  """
  n_arr, c_arr = np.broadcast_arrays(np.asarray(n), np.asarray(c))
  if not (np.issubdtype(n_arr.dtype, np.integer) and np.issubdtype(c_arr.dtype, np.integer)):
    raise ValueError(f"n and c must be integers, got dtypes {n_arr.dtype}, {c_arr.dtype}")
  if int(k) != k or k < 1:
    raise ValueError(f"k must be a positive integer, got {k}")
  if np.any(c_arr < 0) or np.any(c_arr > n_arr):
    raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
  if np.any(n_arr < k):
    raise ValueError(f"need k <= n, got k={k}, n={n}")
  out = np.vectorize(_pass_at_k_scalar, otypes=[np.float64])(n_arr, c_arr, int(k))
  return float(out) if out.ndim == 0 else out


def majority_vote(answers: Sequence[Optional[Hashable]]) -> Optional[Hashable]:
  """Most frequent non-None answer; ties go to the answer that appears first. None if none."""
  counts = Counter(a for a in answers if a is not None)
  if not counts:
    return None
  best = max(counts.values())
  for a in answers:
    if a is not None and counts[a] == best:
      return a
  return None  # unreachable


def maj_at_k(answers: Sequence[Optional[Hashable]], reference: Hashable) -> float:
  """maj@k for one problem: 1.0 if the majority answer (:func:`majority_vote`) equals ``reference``.

  ``answers`` are the k parsed final answers (None when unparseable).
  Wang et al. 2023, "Self-Consistency Improves Chain of Thought Reasoning".
  """
  voted = majority_vote(answers)
  return float(voted is not None and voted == reference)

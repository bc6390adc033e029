"""LIMR data selection: keep the training examples whose accuracy trajectory follows
the model's overall learning curve.

Li et al. 2025, "LIMR: Less is More for RL Scaling", arXiv 2502.11886 (spec:
/work/shared/reference/rlvr_methods.md section 18, read in ``GAIR-NLP/LIMR``
``lim/lim_selection.py`` and ``limr.pdf`` sections 2.2/2.4). From a full-set RL run,
``r_i^k`` is the accuracy of example ``i`` in epoch ``k`` (the fraction of its rollouts
with reward 1), ``r_avg^k = (1/N) sum_i r_i^k`` the average learning curve, and the
Learning Impact Measurement score::

    s_i = 1 - sum_k (r_i^k - r_avg^k)^2 / sum_k (1 - r_avg^k)^2

is 1 for an example that tracks the average curve and falls as it departs from it;
examples with ``s_i >= theta`` (0.6 in the paper, 1,389 of 8,523 MATH problems) are kept.

The accuracy history is the per-example log of ``experiments/rl.py`` with
``rl.accuracy_log`` (:mod:`jaxrl_llm.data.one_shot`'s records); :func:`select_to_jsonl`
reads it and writes the kept examples as the JSONL that ``task.train_examples`` loads.

Plain Python / NumPy (no ``jaxrl_llm.models`` / ``training`` imports).
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from jaxrl_llm.data import one_shot
from jaxrl_llm.data import rehearsal as rehearsal_data

DEFAULT_THETA = 0.6


def backfill_next(accuracy) -> np.ndarray:
  """Missing (NaN) entries take the value of the following epoch, as the official
  script fills them: one pass over ``k = 0 .. K-2`` with ``r[k] = r[k+1]`` where ``r[k]``
  is missing and the *original* ``r[k+1]`` is present. Of a run of several missing
  epochs only the last one is filled (the others stay NaN); a missing last epoch stays
  missing."""
  acc = np.array(accuracy, np.float64, copy=True)
  if acc.ndim != 2:
    raise ValueError(f"accuracy must be [num_examples, num_epochs], got shape {acc.shape}")
  orig = acc.copy()
  fill = np.isnan(orig[:, :-1]) & ~np.isnan(orig[:, 1:])
  acc[:, :-1] = np.where(fill, orig[:, 1:], orig[:, :-1])
  return acc


def limr_scores(accuracy, num_epochs: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """``(valid [N] bool, scores [N] float64)``: the LIM score of every example.

  ``accuracy [N, E]`` holds ``r_i^k`` in ``[0, 1]`` (NaN: not seen that epoch). Missing
  entries are back-filled from the next epoch (:func:`backfill_next`); the first
  ``K = num_epochs`` epochs (default all ``E``) are used and an example that still has a
  missing value among them is invalid (score NaN) and left out of ``r_avg``::

      r_avg^k = mean over valid i of r_i^k
      s_i     = 1 - sum_{k<K} (r_i^k - r_avg^k)^2 / sum_{k<K} (1 - r_avg^k)^2

  Raises ``ValueError`` when no example is valid or ``r_avg^k = 1`` for every ``k``
  (every valid example always solved: the denominator is 0).
  """
  acc = backfill_next(accuracy)
  n, e = acc.shape
  k = e if num_epochs is None else int(num_epochs)
  if not 1 <= k <= e:
    raise ValueError(f"num_epochs must be in [1, {e}] (the epochs in the accuracy matrix), "
                     f"got {num_epochs}")
  acc = acc[:, :k]
  if np.any((acc < 0) | (acc > 1)):
    raise ValueError("accuracy entries must lie in [0, 1] (NaN for missing)")
  valid = ~np.isnan(acc).any(axis=1)
  if not valid.any():
    raise ValueError(f"no example has an accuracy in each of the first {k} epochs")
  avg = acc[valid].mean(axis=0)                      # [K]
  denom = np.sum((1.0 - avg) ** 2)
  if denom == 0.0:
    raise ValueError("the average accuracy is 1 in every epoch: the LIM score is undefined")
  scores = np.full((n,), np.nan)
  scores[valid] = 1.0 - np.sum((acc[valid] - avg[None]) ** 2, axis=1) / denom
  return valid, scores


def limr_select(accuracy, theta: float = DEFAULT_THETA,
                num_epochs: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """``(keep [N] bool, scores [N])``: valid examples with ``s_i >= theta`` (:func:`limr_scores`)."""
  valid, scores = limr_scores(accuracy, num_epochs)
  keep = valid & (np.nan_to_num(scores, nan=-np.inf) >= theta)
  return keep, scores


def epoch_accuracy_matrix(records, steps_per_epoch: int,
                          correct_threshold: float = 1.0) -> tuple[list, np.ndarray]:
  """``(ids, accuracy [N, E])`` with epoch ``k`` = log steps ``k*S+1 .. (k+1)*S``
  (``S = steps_per_epoch``), as the official script groups its step files: an example's
  accuracy in an epoch is the fraction of *all* its rollouts in those steps with
  ``reward >= correct_threshold`` (NaN if it was not drawn). ``ids`` as in
  :func:`one_shot.accuracy_matrix` (indices, then prompts). :func:`one_shot.accuracy_matrix`
  instead counts the e-th appearance as epoch e (the same thing when every example is
  drawn exactly once per epoch)."""
  if isinstance(records, (str, os.PathLike)):
    records = one_shot.read_jsonl(os.fspath(records))
  if steps_per_epoch < 1:
    raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
  counts = {}
  num_epochs = 0
  for rec in records:
    ident = rec["index"] if rec.get("index") is not None else rec["prompt"]
    epoch = (int(rec["step"]) - 1) // steps_per_epoch
    num_epochs = max(num_epochs, epoch + 1)
    rew = np.asarray(rec["rewards"], np.float64)
    c = counts.setdefault(ident, {}).setdefault(epoch, [0, 0])
    c[0] += int(np.sum(rew >= correct_threshold))
    c[1] += int(rew.size)
  ids = sorted(counts, key=lambda x: (isinstance(x, str), x))
  acc = np.full((len(ids), num_epochs), np.nan)
  for row, ident in enumerate(ids):
    for epoch, (hit, total) in counts[ident].items():
      if total:
        acc[row, epoch] = hit / total
  return ids, acc


def select_from_log(log_path: str, *, theta: float = DEFAULT_THETA,
                    num_epochs: Optional[int] = None,
                    steps_per_epoch: Optional[int] = None) -> tuple[list, dict]:
  """``(kept ids, info)`` of an accuracy log (``rl.accuracy_log``): the example ids
  (source indices, or prompts for an endless generator) with LIM score ``>= theta``.
  ``steps_per_epoch`` None: epoch = the e-th appearance (:func:`one_shot.accuracy_matrix`);
  an int: epochs of that many steps (:func:`epoch_accuracy_matrix`). ``info`` holds
  ``ids``, ``scores`` (by id, NaN for dropped-as-missing) and the counts."""
  if steps_per_epoch is None:
    ids, acc = one_shot.accuracy_matrix(log_path)
  else:
    ids, acc = epoch_accuracy_matrix(log_path, steps_per_epoch)
  keep, scores = limr_select(acc, theta, num_epochs)
  info = {"ids": ids, "scores": {i: float(s) for i, s in zip(ids, scores)},
          "num_examples": len(ids), "num_valid": int(np.sum(~np.isnan(scores))),
          "num_kept": int(keep.sum()), "theta": float(theta)}
  return [i for i, k in zip(ids, keep) if k], info


def examples_of(source, ids: Sequence) -> list:
  """The examples behind log ids: an int id indexes ``source.items`` (a finite source:
  a JSONL task, ``task.pool_size``); a str id is matched against the items' prompts."""
  items = getattr(source, "items", None)
  if items is None:
    raise ValueError("LIMR selection needs a finite training set (task.pool_size > 0 or a "
                     "JSONL task) whose items the log's indices refer to")
  by_prompt = {}
  for ex in items:
    by_prompt.setdefault(ex.prompt, ex)
  out = []
  for i in ids:
    if isinstance(i, str):
      if i not in by_prompt:
        raise ValueError(f"the log's prompt {i!r} is not in the training set")
      out.append(by_prompt[i])
    else:
      if not 0 <= int(i) < len(items):
        raise ValueError(f"the log's index {i} is outside the {len(items)} training items")
      out.append(items[int(i)])
  return out


def select_to_jsonl(log_path: str, source, out_path: str, *, theta: float = DEFAULT_THETA,
                    num_epochs: Optional[int] = None,
                    steps_per_epoch: Optional[int] = None) -> dict:
  """Reads the accuracy log, keeps the examples with ``s_i >= theta`` and writes them (in
  source order) as a JSONL of :func:`data.rehearsal.save_examples`, the format
  ``task.train_examples`` loads. Returns :func:`select_from_log`'s info plus ``path``.
  Raises ``ValueError`` when nothing is kept (an empty training set)."""
  kept, info = select_from_log(log_path, theta=theta, num_epochs=num_epochs,
                               steps_per_epoch=steps_per_epoch)
  if not kept:
    raise ValueError(f"LIMR kept no example at theta={theta} (scores: {info['scores']})")
  examples = examples_of(source, kept)
  rehearsal_data.save_examples(out_path, examples)
  return {**info, "kept": kept, "path": os.fspath(out_path)}

"""1-shot RLVR data pieces: per-example accuracy logs, historical-variance ranking,
and sources restricted to a finite pool or to a few chosen examples.

Wang et al. 2025, "Reinforcement Learning for Reasoning in Large Language Models
with One Training Example", arXiv 2504.20571 (spec: /work/shared/reference/
rlvr_methods.md section 17, read in ``ypwang61/One-Shot-RLVR``). The recipe:

1. run RL on a finite training set for several epochs, recording each example's
   accuracy every time it is drawn (:func:`accuracy_records`, appended to a JSONL
   by ``experiments/rl.py`` with ``rl.accuracy_log``);
2. turn the log into an ``[examples, epochs]`` matrix (:func:`accuracy_matrix`)
   and rank the examples by the spread of their accuracy over training
   (:func:`historical_variance_ranking`; pi_1 is rank 1);
3. train on pi_1 alone, duplicated to fill every batch (:func:`only_examples_source`,
   the task option ``task.only_examples=(index,)``).

Plain Python / NumPy (no ``jaxrl_llm.models`` / ``training`` imports).
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

from jaxrl_llm.data.batching import ListSource
from jaxrl_llm.data.types import Example

RANKING_METHODS = ("std",)


def historical_variance_ranking(accuracy, method: str = "std",
                                ddof: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Ranks examples by how much their training accuracy moved: ``(order, scores)``.

  One-shot RLVR's "historical variance score" (Wang et al. 2025, arXiv
  2504.20571, ``data/data_selection.py --method std``)::

      score_i = std_e acc[i, e]          (over the epochs e where example i was seen)

  ``order`` lists example rows best first (``order[0]`` is pi_1); ties keep the
  lower row first. ``NaN`` entries mean "not seen in that epoch" and are skipped;
  an example with fewer than ``ddof + 1`` observations gets score ``NaN`` and is
  ranked after every scored one.

  Args:
    accuracy: ``[num_examples, num_epochs]`` per-epoch accuracy in ``[0, 1]``
      (NaN: missing).
    method: ``"std"`` (the official script's method).
    ddof: delta degrees of freedom of the std. 0 (population std) is NumPy's
      default, which the official script is taken to use (not confirmed); 1 is
      the sample std. Either gives the same order when every example has the
      same number of epochs.

  Returns:
    ``order`` ``[num_examples]`` int64 and ``scores`` ``[num_examples]`` float64.
  """
  acc = np.asarray(accuracy, np.float64)
  if acc.ndim != 2:
    raise ValueError(f"accuracy must be [num_examples, num_epochs], got shape {acc.shape}")
  if method not in RANKING_METHODS:
    raise ValueError(f"unknown ranking method {method!r}; known: {', '.join(RANKING_METHODS)}")
  if ddof < 0:
    raise ValueError(f"ddof must be >= 0, got {ddof}")
  seen = ~np.isnan(acc)
  n = seen.sum(axis=1)
  filled = np.where(seen, acc, 0.0)
  mean = filled.sum(axis=1) / np.maximum(n, 1)
  sq = np.where(seen, (acc - mean[:, None]) ** 2, 0.0).sum(axis=1)
  scores = np.where(n > ddof, np.sqrt(sq / np.maximum(n - ddof, 1)), np.nan)
  key = np.where(np.isnan(scores), -np.inf, scores)
  order = np.argsort(-key, kind="stable")
  return order.astype(np.int64), scores


# ---- per-example accuracy log ------------------------------------------------------------


def example_indices(source) -> Optional[dict]:
  """``{prompt: index}`` of a finite source's items (first occurrence), None for an
  endless generator (its examples are then keyed by prompt in the log)."""
  items = getattr(source, "items", None)
  if items is None:
    return None
  out = {}
  for i, ex in enumerate(items):
    out.setdefault(ex.prompt, i)
  return out


def accuracy_records(step: int, examples: Sequence[Example], rewards, group_size: int, *,
                     indices: Optional[Mapping[str, int]] = None,
                     correct_threshold: float = 1.0) -> list[dict]:
  """One record per example (group) of a rollout batch.

  ``rewards`` are the ``[len(examples) * group_size]`` task rewards in group
  order; each record is ``{"step", "index", "prompt", "rewards", "accuracy"}``
  with ``accuracy = mean_j 1[r_j >= correct_threshold]`` over the group and
  ``index`` from ``indices`` (None when not given or the prompt is unknown).
  """
  r = np.asarray(rewards, np.float64).reshape(-1)
  if group_size < 1 or r.shape[0] != len(examples) * group_size:
    raise ValueError(f"rewards has {r.shape[0]} entries, expected len(examples)="
                     f"{len(examples)} x group_size={group_size}")
  out = []
  for k, ex in enumerate(examples):
    g = r[k * group_size:(k + 1) * group_size]
    out.append({"step": int(step),
                "index": None if indices is None else indices.get(ex.prompt),
                "prompt": ex.prompt, "rewards": [float(x) for x in g],
                "accuracy": float(np.mean(g >= correct_threshold))})
  return out


def append_jsonl(path: str, records: Iterable[Mapping]) -> None:
  """Appends one JSON line per record to ``path`` (created with its directory)."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a", encoding="utf-8") as f:
    for rec in records:
      f.write(json.dumps(rec) + "\n")


def read_jsonl(path: str) -> list[dict]:
  if not os.path.isfile(path):
    raise ValueError(f"accuracy log {path!r} does not exist")
  with open(path, encoding="utf-8") as f:
    return [json.loads(line) for line in f if line.strip()]


def accuracy_matrix(records, num_epochs: Optional[int] = None) -> tuple[list, np.ndarray]:
  """``(ids, accuracy [num_examples, num_epochs])`` from an accuracy log.

  ``records`` are :func:`accuracy_records` dicts, or the path of the JSONL they
  were appended to. An example is identified by its ``index`` (or its ``prompt``
  when the index is None); its e-th appearance, in step order, is epoch ``e`` (a
  finite source visits every example once per epoch). Missing entries are NaN;
  ``num_epochs`` (default: the most appearances) truncates or pads. ``ids`` are
  sorted (indices numerically, then prompts).
  """
  if isinstance(records, (str, os.PathLike)):
    records = read_jsonl(os.fspath(records))
  per = {}
  for rec in sorted(records, key=lambda x: x["step"]):  # stable: batch order within a step
    ident = rec["index"] if rec.get("index") is not None else rec["prompt"]
    per.setdefault(ident, []).append(float(rec["accuracy"]))
  ids = sorted(per, key=lambda x: (isinstance(x, str), x))
  width = max((len(v) for v in per.values()), default=0) if num_epochs is None else num_epochs
  acc = np.full((len(ids), width), np.nan)
  for row, ident in enumerate(ids):
    v = per[ident][:width]
    acc[row, :len(v)] = v
  return ids, acc


# ---- restricted sources ------------------------------------------------------------------


def finite_pool(source, size: int, *, seed: int = 0, shuffle: bool = True) -> ListSource:
  """The first ``size`` examples of stream ``seed`` of a generator task, as a finite
  training set (reshuffled every epoch): item ``i`` is ``source.example(seed, i)``."""
  if size < 1:
    raise ValueError(f"pool size must be >= 1, got {size}")
  return ListSource(tuple(source.examples(seed, 0, size)), shuffle=shuffle)


def only_examples_source(source, indices: Sequence[int], *, seed: int = 0) -> ListSource:
  """A source that yields only the examples ``indices`` of ``source``, cycled in that
  order, so one index fills every batch with copies of that example (1-shot RLVR's
  pi_1 duplicated to the batch size).

  ``indices`` index the items of a finite source (a JSONL file, a
  :func:`finite_pool`) or, for an endless generator, its stream ``seed``.
  """
  indices = [int(i) for i in indices]
  if not indices:
    raise ValueError("only_examples: give at least one example index")
  items = getattr(source, "items", None)
  if items is not None:
    bad = [i for i in indices if not 0 <= i < len(items)]
    if bad:
      raise ValueError(f"only_examples: indices {bad} are outside the {len(items)} items")
    chosen = [items[i] for i in indices]
  else:
    bad = [i for i in indices if i < 0]
    if bad:
      raise ValueError(f"only_examples: indices {bad} must be >= 0")
    chosen = [source.example(seed, i) for i in indices]
  return ListSource(tuple(chosen), shuffle=False)



def truncate_log(path: str, after_step: int) -> None:
  """Drops the records of steps > ``after_step`` from the log at ``path`` (0: all of it),
  so a resumed run does not count a re-run step twice and a fresh one starts empty."""
  if not os.path.isfile(path):
    return
  if after_step <= 0:
    os.remove(path)
    return
  keep = [rec for rec in read_jsonl(path) if rec["step"] <= after_step]
  os.remove(path)
  append_jsonl(path, keep)


def select_examples(log_path: str, top: int = 1, method: str = "std",
                    num_epochs: Optional[int] = None) -> list:
  """The ``top`` best-ranked example ids (indices for a finite source) of an accuracy log:
  pass them as ``task.only_examples`` (pi_1 = ``select_examples(path)[0]``)."""
  ids, acc = accuracy_matrix(log_path, num_epochs=num_epochs)
  order, _ = historical_variance_ranking(acc, method=method)
  return [ids[i] for i in order[:top]]

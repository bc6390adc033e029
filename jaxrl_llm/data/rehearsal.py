"""DPH-RL's pre-sampling split and rehearsal storage (no model, no sampling here).

Li et al. 2025, "The Choice of Divergence: A Neglected Key to Mitigating Diversity
Collapse in Reinforcement Learning with Verifiable Reward", arXiv 2509.07430: the base
policy pi_0 samples every training problem ``k`` (= 8) times; problems solved every
time form D_pef (the official ``train_correct``), the others D_exp (``train_wrong``).
RL trains on D_exp only; for D_pef one correct pi_0 completion per problem is stored
with pi_0's per-token log-probs and rehearsed with an f-divergence
(:func:`jaxrl_llm.losses.dph_rl_loss`).

This module holds the pure pieces: :func:`split_by_solve_rate` over already-sampled
rewards ``[P, k]``, :func:`first_correct`, the :class:`RehearsalSet` arrays with an
atomic ``.npz`` writer and loader, :func:`rehearsal_rows` (rows ready to append to a
``RolloutBatch``, padded/truncated to its widths) and a JSONL writer/reader for the
D_exp examples. The sampling driver is ``jaxrl_llm.training.rehearsal.presample``.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Mapping, NamedTuple, Optional, Sequence

import numpy as np

from jaxrl_llm.data.types import Example

FORMAT_VERSION = 1


def split_by_solve_rate(rewards, *, min_correct: Optional[int] = None,
                        correct_threshold: float = 1.0) -> tuple[np.ndarray, dict]:
  """``(is_pef [P] bool, metrics)``: which problems go to D_pef.

  ``rewards [P, k]`` are the verifier rewards of ``k`` base-model samples per problem;
  a sample is correct when ``reward >= correct_threshold``. DPH-RL's rule is
  ``min_correct = k`` (solved every time, the default ``None``); a smaller
  ``min_correct`` is a relaxed split (not the paper's). D_exp is ``~is_pef``.
  Metrics: ``pef_frac``, ``pass_at_1`` (mean correct rate), ``any_correct_frac``.
  """
  r = np.asarray(rewards)
  if r.ndim != 2 or r.shape[1] < 1:
    raise ValueError(f"rewards must be [P, k] with k >= 1, got shape {r.shape}")
  k = r.shape[1]
  need = k if min_correct is None else int(min_correct)
  if not 1 <= need <= k:
    raise ValueError(f"min_correct must be in [1, k={k}], got {min_correct}")
  correct = r >= correct_threshold
  n_correct = correct.sum(axis=1)
  is_pef = n_correct >= need
  p = max(r.shape[0], 1)
  metrics = {"pef_frac": float(is_pef.sum() / p), "pass_at_1": float(correct.mean()) if r.size else 0.0,
             "any_correct_frac": float((n_correct > 0).sum() / p)}
  return is_pef, metrics


def first_correct(rewards, *, correct_threshold: float = 1.0) -> np.ndarray:
  """``[P]`` int: index of the first correct sample of each problem, ``-1`` if none.

  The ``k`` samples of a problem are i.i.d., so the first correct one is a uniformly
  random correct sample.
  """
  correct = np.asarray(rewards) >= correct_threshold
  if correct.ndim != 2:
    raise ValueError(f"rewards must be [P, k], got shape {correct.shape}")
  return np.where(correct.any(axis=1), np.argmax(correct, axis=1), -1).astype(np.int64)


class RehearsalSet(NamedTuple):
  """Stored pi_0 samples, one row per D_pef problem (host NumPy arrays).

  prompt_tokens, prompt_mask         [M, P] left-padded prompts
  completion_tokens, completion_mask [M, N] right-padded completions (mask through EOS)
  base_logprobs                      [M, N] float32, pi_0's per-token log-probs at the
                                     sampling temperature (0 off the mask)
  prompts                            [M] str, the prompt texts (for inspection)
  """

  prompt_tokens: np.ndarray
  prompt_mask: np.ndarray
  completion_tokens: np.ndarray
  completion_mask: np.ndarray
  base_logprobs: np.ndarray
  prompts: np.ndarray

  @property
  def num_rows(self) -> int:
    return int(self.completion_tokens.shape[0])


def check_rehearsal_set(rs: RehearsalSet) -> None:
  """Raises ``ValueError`` naming the field on inconsistent shapes or an empty set."""
  m, p = np.shape(rs.prompt_tokens) if np.ndim(rs.prompt_tokens) == 2 else (None, None)
  if m is None:
    raise ValueError(f"RehearsalSet.prompt_tokens must be [M, P], got {np.shape(rs.prompt_tokens)}")
  if m == 0:
    raise ValueError("RehearsalSet is empty (no D_pef problem)")
  if np.ndim(rs.completion_tokens) != 2 or np.shape(rs.completion_tokens)[0] != m:
    raise ValueError(f"RehearsalSet.completion_tokens must be [{m}, N], got "
                     f"{np.shape(rs.completion_tokens)}")
  n = np.shape(rs.completion_tokens)[1]
  for name, shape in (("prompt_mask", (m, p)), ("completion_mask", (m, n)),
                      ("base_logprobs", (m, n)), ("prompts", (m,))):
    if tuple(np.shape(getattr(rs, name))) != shape:
      raise ValueError(f"RehearsalSet.{name} must have shape {shape}, got "
                       f"{np.shape(getattr(rs, name))}")


def save_rehearsal(path: str, rs: RehearsalSet, metadata: Optional[Mapping[str, Any]] = None) -> str:
  """Writes ``rs`` (and JSON ``metadata``, e.g. temperature, k, model) to ``path`` (.npz)
  atomically: a temporary file in the same directory, then ``os.replace``."""
  check_rehearsal_set(rs)
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  arrays = {
      "prompt_tokens": np.asarray(rs.prompt_tokens, np.int32),
      "prompt_mask": np.asarray(rs.prompt_mask, bool),
      "completion_tokens": np.asarray(rs.completion_tokens, np.int32),
      "completion_mask": np.asarray(rs.completion_mask, bool),
      "base_logprobs": np.asarray(rs.base_logprobs, np.float32),
      "prompts": np.asarray(rs.prompts, dtype=str),
      "metadata": np.asarray(json.dumps({"format_version": FORMAT_VERSION,
                                         **dict(metadata or {})})),
  }
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rehearsal_", suffix=".npz")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **arrays)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def load_rehearsal(path: str) -> tuple[RehearsalSet, dict]:
  """``(RehearsalSet, metadata)`` from a file written by :func:`save_rehearsal`."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"rehearsal file {path!r} does not exist (write one with "
                     "training.rehearsal.presample + data.save_rehearsal)")
  with np.load(path, allow_pickle=False) as z:
    missing = [k for k in RehearsalSet._fields + ("metadata",) if k not in z.files]
    if missing:
      raise ValueError(f"rehearsal file {path!r} lacks {missing}")
    rs = RehearsalSet(**{k: z[k] for k in RehearsalSet._fields})
    metadata = json.loads(str(z["metadata"]))
  check_rehearsal_set(rs)
  return rs, metadata


def fit_left(x: np.ndarray, width: int) -> np.ndarray:
  """Left-pads (zeros) or keeps the last ``width`` columns."""
  if x.shape[1] >= width:
    return x[:, x.shape[1] - width:]
  return np.pad(x, ((0, 0), (width - x.shape[1], 0)))


def fit_right(x: np.ndarray, width: int) -> np.ndarray:
  """Right-pads (zeros) or keeps the first ``width`` columns."""
  if x.shape[1] >= width:
    return x[:, :width]
  return np.pad(x, ((0, 0), (0, width - x.shape[1])))


def rehearsal_rows(rs: RehearsalSet, start: int, count: int, *, prompt_width: int,
                   completion_width: int, pad_id: int = 0) -> dict:
  """``count`` stored rows from index ``start`` (cycling: row ``(start + i) % M``).

  Returns host arrays ``prompt_tokens``/``prompt_mask`` ``[count, prompt_width]``,
  ``completion_tokens``/``completion_mask``/``base_logprobs`` ``[count,
  completion_width]`` and ``truncated`` ``[count]`` bool. Widths: prompts are
  left-padded with ``pad_id`` (mask 0), or cut to their last ``prompt_width`` tokens;
  completions are right-padded (mask 0, log-prob 0), or cut to their first
  ``completion_width`` tokens (``truncated`` marks rows that lost masked tokens; their
  mask ends at the cut, so the divergence covers the kept prefix, whose log-probs do
  not depend on the cut). Callers pick widths >= the stored ones to avoid cuts.
  """
  check_rehearsal_set(rs)
  if count < 1:
    raise ValueError(f"count must be >= 1, got {count}")
  if prompt_width < 1 or completion_width < 1:
    raise ValueError(f"prompt_width and completion_width must be >= 1, got {prompt_width}, "
                     f"{completion_width}")
  idx = (int(start) + np.arange(count)) % rs.num_rows
  pmask = fit_left(np.asarray(rs.prompt_mask, bool)[idx], prompt_width)
  ptok = np.where(pmask, fit_left(np.asarray(rs.prompt_tokens, np.int32)[idx], prompt_width),
                  pad_id).astype(np.int32)
  cmask_full = np.asarray(rs.completion_mask, bool)[idx]
  cmask = fit_right(cmask_full, completion_width)
  truncated = cmask_full.sum(1) > cmask.sum(1)
  ctok = np.where(cmask, fit_right(np.asarray(rs.completion_tokens, np.int32)[idx],
                                    completion_width), pad_id).astype(np.int32)
  lp = np.where(cmask, fit_right(np.asarray(rs.base_logprobs, np.float32)[idx],
                                  completion_width), 0.0).astype(np.float32)
  return {"prompt_tokens": ptok, "prompt_mask": pmask, "completion_tokens": ctok,
          "completion_mask": cmask, "base_logprobs": lp, "truncated": truncated,
          "indices": idx}


# ---- D_exp examples as JSONL -------------------------------------------------------------


def _jsonable(x):
  if isinstance(x, (tuple, list)):
    return [_jsonable(v) for v in x]
  if isinstance(x, dict):
    return {str(k): _jsonable(v) for k, v in x.items()}
  if isinstance(x, np.generic):
    return x.item()
  return x


def save_examples(path: str, examples: Sequence[Example]) -> str:
  """Writes examples as JSONL (prompt, answer, completion, task, metadata), atomically.

  Tuples in metadata (e.g. Countdown's ``numbers``) are stored as lists and read back
  as tuples by :func:`load_examples`.
  """
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix=".examples_", suffix=".jsonl")
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      for ex in examples:
        f.write(json.dumps({"prompt": ex.prompt, "answer": ex.answer,
                            "completion": ex.completion, "task": ex.task,
                            "metadata": _jsonable(dict(ex.metadata))}) + "\n")
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
  return path


def load_examples(path: str) -> list[Example]:
  """The examples written by :func:`save_examples` (metadata lists come back as tuples)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise ValueError(f"examples file {path!r} does not exist")
  out = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        rec = json.loads(line)
        meta = {k: tuple(v) if isinstance(v, list) else v for k, v in rec["metadata"].items()}
        out.append(Example(prompt=rec["prompt"], answer=rec["answer"],
                           completion=rec.get("completion", ""), task=rec.get("task", ""),
                           metadata=meta))
      except (json.JSONDecodeError, KeyError, AttributeError) as e:
        raise ValueError(f"{path}:{lineno}: not an example record ({e})") from None
  if not out:
    raise ValueError(f"examples file {path!r} is empty")
  return out

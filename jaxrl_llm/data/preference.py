"""Preference data: JSONL files of pairs or labelled responses, and a local generator of
arithmetic pairs (chosen = the correct answer, rejected = a wrong one; no network).

Paired lines (DPO, IPO, SimPO, ORPO, INPO)::

  {"prompt": "12+34=", "chosen": "46", "rejected": "47"}

Unpaired lines (KTO; TRL's ``{"prompt", "completion", "label"}`` format)::

  {"prompt": "12+34=", "completion": "46", "label": true}

Plain Python on the host; this module does not import ``models`` or ``training``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from jaxrl_llm.data.types import Example

PREFERENCE_FORMATS = ("auto", "paired", "unpaired")
PAIRED_FIELDS = ("prompt", "chosen", "rejected")
UNPAIRED_FIELDS = ("prompt", "completion", "label")


@dataclasses.dataclass(frozen=True)
class PreferencePair:
  """A prompt with a preferred (``chosen``) and a dispreferred (``rejected``) response."""

  prompt: str
  chosen: str
  rejected: str
  metadata: dict = dataclasses.field(default_factory=dict, compare=False)

  __hash__ = None  # type: ignore[assignment]


@dataclasses.dataclass(frozen=True)
class LabelledResponse:
  """One response to a prompt, labelled desirable (``label=True``) or undesirable."""

  prompt: str
  completion: str
  label: bool
  metadata: dict = dataclasses.field(default_factory=dict, compare=False)

  __hash__ = None  # type: ignore[assignment]


Record = Union[PreferencePair, LabelledResponse]


def _string_field(record: dict, name: str, where: str) -> str:
  if name not in record:
    raise ValueError(f"load_preference_jsonl: {where}: missing field {name!r} "
                     f"(keys: {sorted(record)})")
  value = record[name]
  if not isinstance(value, str):
    raise ValueError(f"load_preference_jsonl: {where}: field {name!r} must be a string, "
                     f"got {type(value).__name__}")
  return value


def _label_field(record: dict, where: str) -> bool:
  if "label" not in record:
    raise ValueError(f"load_preference_jsonl: {where}: missing field 'label' "
                     f"(keys: {sorted(record)})")
  value = record["label"]
  if isinstance(value, bool):
    return value
  if isinstance(value, int) and value in (0, 1):
    return bool(value)
  raise ValueError(f"load_preference_jsonl: {where}: field 'label' must be true/false "
                   f"(or 0/1), got {value!r}")


def load_preference_jsonl(path, *, format: str = "auto",  # noqa: A002 (a file format)
                          max_examples: Optional[int] = None) -> list[Record]:
  """Reads preference records from a local JSONL file.

  Args:
    path: local file path (never downloads).
    format: ``"paired"`` (every line has ``prompt``, ``chosen``, ``rejected``),
      ``"unpaired"`` (``prompt``, ``completion``, ``label``) or ``"auto"`` (decided by
      the first record: ``chosen`` present means paired; all lines must agree).
    max_examples: keep only the first N records.

  Returns:
    :class:`PreferencePair` or :class:`LabelledResponse` records with
    ``metadata = {"line": lineno, "path": path}``.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: a malformed line, naming the file, the line number and the field.
  """
  if format not in PREFERENCE_FORMATS:
    raise ValueError(f"load_preference_jsonl: format must be one of {PREFERENCE_FORMATS}, "
                     f"got {format!r}")
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"load_preference_jsonl: no file at {path!r}")
  records: list[Record] = []
  kind = None if format == "auto" else format
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if max_examples is not None and len(records) >= max_examples:
        break
      if not line.strip():
        continue
      where = f"{path}:{lineno}"
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"load_preference_jsonl: {where}: invalid JSON ({e.msg} at column "
                         f"{e.colno})") from None
      if not isinstance(record, dict):
        raise ValueError(f"load_preference_jsonl: {where}: expected a JSON object, got "
                         f"{type(record).__name__}")
      if kind is None:
        kind = "paired" if "chosen" in record or "rejected" in record else "unpaired"
      meta = {"line": lineno, "path": path}
      prompt = _string_field(record, "prompt", where)
      if kind == "paired":
        records.append(PreferencePair(prompt, _string_field(record, "chosen", where),
                                      _string_field(record, "rejected", where), meta))
      else:
        records.append(LabelledResponse(prompt, _string_field(record, "completion", where),
                                        _label_field(record, where), meta))
  if not records:
    raise ValueError(f"load_preference_jsonl: {path!r} has no records")
  return records


def unpair(pairs: Sequence[PreferencePair]) -> list[LabelledResponse]:
  """Each pair as two labelled responses (chosen: desirable, rejected: undesirable),
  in the order ``c_0, r_0, c_1, r_1, ...`` (TRL's ``unpair_preference_dataset``)."""
  out = []
  for p in pairs:
    if not isinstance(p, PreferencePair):
      raise ValueError(f"unpair: expected PreferencePair records, got {type(p).__name__}")
    out.append(LabelledResponse(p.prompt, p.chosen, True, dict(p.metadata)))
    out.append(LabelledResponse(p.prompt, p.rejected, False, dict(p.metadata)))
  return out


def record_to_json(record: Record) -> dict:
  if isinstance(record, PreferencePair):
    return {"prompt": record.prompt, "chosen": record.chosen, "rejected": record.rejected}
  if isinstance(record, LabelledResponse):
    return {"prompt": record.prompt, "completion": record.completion, "label": record.label}
  raise ValueError(f"record_to_json: not a preference record: {type(record).__name__}")


def write_preference_jsonl(path, records: Iterable[Record]) -> str:
  """Writes records as JSONL (the format :func:`load_preference_jsonl` reads); returns the path."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    for r in records:
      f.write(json.dumps(record_to_json(r)) + "\n")
  os.replace(tmp, path)
  return path


def wrong_answer_pairs(examples: Sequence[Example], seed: int, *,
                       max_offset: int = 10) -> list[PreferencePair]:
  """Preference pairs from verifiable examples with integer answers (e.g. arithmetic):
  ``chosen`` = the reference answer, ``rejected`` = the answer plus a nonzero offset
  drawn uniformly from ``[-max_offset, max_offset]`` (mirrored to stay >= 0 when the
  answer is), from ``default_rng([seed, i])`` for example ``i``."""
  if max_offset < 1:
    raise ValueError(f"wrong_answer_pairs: max_offset must be >= 1, got {max_offset}")
  pairs = []
  for i, ex in enumerate(examples):
    try:
      answer = int(ex.answer)
    except ValueError:
      raise ValueError(f"wrong_answer_pairs: example {i} ({ex.prompt!r}) has a non-integer "
                       f"answer {ex.answer!r}") from None
    rng = np.random.default_rng([seed, i])
    offset = int(rng.integers(1, max_offset + 1)) * (1 if rng.random() < 0.5 else -1)
    wrong = answer + offset
    if answer >= 0 and wrong < 0:
      wrong = answer - offset
    pairs.append(PreferencePair(ex.prompt, ex.completion or ex.answer, str(wrong),
                                {"answer": ex.answer}))
  return pairs

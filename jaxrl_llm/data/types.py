"""The records every task produces and the checkpointable data position."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, NamedTuple


@dataclasses.dataclass(frozen=True)
class Example:
  """One verifiable prompt.

  Attributes:
    prompt: the text the policy is conditioned on (e.g. ``"12+34="``).
    answer: the reference final answer as text (e.g. ``"46"``); what the
      reward functions compare against.
    completion: a reference completion for SFT (arithmetic: the answer;
      Countdown: one solution expression; GSM8K: the worked solution).
    task: the task name (``"arithmetic"``, ``"countdown"``, ``"jsonl"``).
    metadata: task-specific fields (Countdown: ``numbers`` tuple and integer
      ``target``; arithmetic: ``a``, ``b``, ``op``; JSONL: ``line``).
  """

  prompt: str
  answer: str
  completion: str = ""
  task: str = ""
  metadata: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  # ``metadata`` is a dict, so the generated ``__hash__`` would fail anyway;
  # say so explicitly.
  __hash__ = None  # type: ignore[assignment]


class DataPosition(NamedTuple):
  """Where a data stream is: ``seed`` picks the stream, ``cursor`` counts the
  examples already consumed. Two Python ints; the trainer saves them with its
  checkpoint and passes them back to :func:`take_batch` to resume exactly."""

  seed: int
  cursor: int

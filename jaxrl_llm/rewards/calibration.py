"""RLCR calibration reward: reward a correct answer and an honest verbalised confidence.

Damani et al. 2025, "Beyond Binary Rewards: Training LMs to Reason About Their
Uncertainty" (RLCR), arXiv 2507.16806; official code ``damanimehul/RLCR`` @8904bed
(``reward_fns.py``, ``system_prompts.py``), spec §6 of ``rlvr_methods.md``.

Output format ("tabc", the whole completion, up to trailing whitespace)::

  <think>...</think> <answer>...</answer> <analysis>...</analysis> <confidence>q</confidence>

The four blocks come in this order, separated by optional whitespace; the
completion starts with ``<think>`` (after optional whitespace; whether the official
regex is anchored at the start was not checked, we anchor it), ends with
``</confidence>`` (only whitespace after it) and ``q`` must
parse as a finite float in ``[0, 1]``; otherwise the format fails. The answer is
the content of the *last* ``<answer>...</answer>`` pair and ``q`` that of the last
``<confidence>`` before the closing tag (block contents are free text, as the
official lazy regex ``<think>.*?</think>\\s*<answer>.*?</answer>...`` allows).

With ``acc = 1[answer == reference]`` (0 when the format fails):

* ``"paper"`` (default, registry ``"rlcr"``)::

      R = acc - (q - acc)^2                     in [-1, 1]

  A format failure gets ``format_fail_reward`` (default -1, the formula's minimum:
  a wrong answer stated with certainty). The paper formula has no format term;
  this value is our choice, made so that a failure is never better than a
  formatted answer, as in the code's weighting below.
* ``"code"`` (registry ``"rlcr_code"``), what the released configs optimise
  (weights 0.5 / 0.5 / 0.5 over format, accuracy and Brier reward functions)::

      R = 0.5 fmt + 0.5 acc + 0.5 (1 - (acc - q)^2)   = 0.5 R_paper + 0.5 + 0.5 fmt
      R = 0 when the format fails                      in [0, 1.5]

The parser uses ``str.find`` only (no backtracking regex; linear in the
completion length); a confidence longer than ``MAX_CONFIDENCE_CHARS`` fails the
format. Answers compare with :func:`~jaxrl_llm.rewards.equivalence.answers_match`
(numbers exactly, otherwise symbolically with math-verify, as the official
``math_verify`` accuracy).
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

from jaxrl_llm.rewards import _examples
from jaxrl_llm.rewards.equivalence import answers_match
from jaxrl_llm.rewards.symbolic import default_verifier

RLCR_MODES = ("paper", "code")
MAX_CONFIDENCE_CHARS = 32
TABC_TAGS = ("think", "answer", "analysis", "confidence")
# Our short wording (not the official TABC_PROMPT system prompt), kept to the character
# tokenizer's alphabet and short enough that a 2-digit sum prompt stays under 128 tokens.
TABC_INSTRUCTION = ("Reply as <think>..</think> <answer>..</answer> <analysis>..</analysis> "
                    "<confidence>0 to 1</confidence>\n")


class TabcParse(NamedTuple):
  """``ok``: the completion has the tabc format with a valid confidence;
  ``answer``: the last answer's content (None when not ok); ``confidence``: q (None when not ok)."""

  ok: bool
  answer: Optional[str]
  confidence: Optional[float]


_FAIL = TabcParse(False, None, None)


def _skip_ws(text: str, i: int) -> int:
  n = len(text)
  while i < n and text[i].isspace():
    i += 1
  return i


def _find_joined(text: str, close: str, open_: str, start: int, limit: int) -> int:
  """Earliest ``i >= start`` with ``close`` at ``i`` followed by whitespace and
  ``open_``, ending at most at ``limit``; returns the index after ``open_`` or -1.

  Linear overall: the whitespace runs skipped after distinct ``close`` hits are disjoint.
  """
  i = text.find(close, start)
  while 0 <= i:
    j = _skip_ws(text, i + len(close))
    if text.startswith(open_, j) and j + len(open_) <= limit:
      return j + len(open_)
    if j + len(open_) > limit:
      return -1
    i = text.find(close, i + 1)
  return -1


def parse_confidence(text: str) -> Optional[float]:
  """``float(text)`` if it is a finite number in ``[0, 1]`` (at most
  ``MAX_CONFIDENCE_CHARS`` characters), else None."""
  text = text.strip()
  if not text or len(text) > MAX_CONFIDENCE_CHARS:
    return None
  try:
    q = float(text)
  except ValueError:
    return None
  if not math.isfinite(q) or not 0.0 <= q <= 1.0:
    return None
  return q


def parse_tabc(completion: str) -> TabcParse:
  """Parses ``<think>..</think> <answer>..</answer> <analysis>..</analysis> <confidence>q</confidence>``.

  Leading whitespace is allowed, trailing text (other than whitespace) after the
  final ``</confidence>`` fails; see the module docstring for the rest.
  """
  text = completion.rstrip()
  if not text.endswith("</confidence>"):
    return _FAIL
  end = len(text) - len("</confidence>")  # start of the final closing tag
  pos = _skip_ws(text, 0)
  if not text.startswith("<think>", pos):
    return _FAIL
  pos += len("<think>")
  for close, open_ in (("</think>", "<answer>"), ("</answer>", "<analysis>"),
                       ("</analysis>", "<confidence>")):
    pos = _find_joined(text, close, open_, pos, end)
    if pos < 0:
      return _FAIL
  # The last <answer>...</answer> and the last <confidence> before the final close.
  q_open = text.rfind("<confidence>", pos - len("<confidence>"), end)
  q = parse_confidence(text[q_open + len("<confidence>"):end])
  if q is None:
    return _FAIL
  a_close = text.rfind("</answer>", 0, end)
  a_open = text.rfind("<answer>", 0, a_close)
  if a_close < 0 or a_open < 0:
    return _FAIL
  return TabcParse(True, text[a_open + len("<answer>"):a_close].strip(), q)


def rlcr_terms(completion: str, example, *, verifier=None) -> tuple[float, float, Optional[float]]:
  """``(fmt, acc, q)``: format 1/0, accuracy 1/0 (0 when the format fails), confidence (None)."""
  parsed = parse_tabc(completion)
  if not parsed.ok:
    return 0.0, 0.0, None
  symbolic = default_verifier() if verifier is None else verifier
  acc = answers_match(parsed.answer, _examples.reference_answer(example), symbolic=symbolic)
  return 1.0, (1.0 if acc and parsed.answer else 0.0), parsed.confidence


def rlcr_reward(completion: str, example, *, mode: str = "paper",
                format_fail_reward: float = -1.0, verifier=None) -> float:
  """RLCR reward of one completion (arXiv 2507.16806).

  ``mode="paper"``: ``R = acc - (q - acc)^2``, ``format_fail_reward`` on a format failure.
  ``mode="code"``: ``R = 0.5 fmt + 0.5 acc + 0.5 (1 - (acc - q)^2)``, 0 on a format failure.
  """
  if mode not in RLCR_MODES:
    raise ValueError(f"rlcr_reward: mode must be one of {RLCR_MODES}, got {mode!r}")
  fmt, acc, q = rlcr_terms(completion, example, verifier=verifier)
  if q is None:
    return float(format_fail_reward) if mode == "paper" else 0.0
  brier = (q - acc) ** 2
  if mode == "paper":
    return float(acc - brier)
  return float(0.5 * fmt + 0.5 * acc + 0.5 * (1.0 - brier))


def rlcr_code_reward(completion: str, example) -> float:
  """:func:`rlcr_reward` with ``mode="code"`` (the released weighted sum)."""
  return rlcr_reward(completion, example, mode="code")


def calibration_summary(completions, examples, *, group_size: int = 1,
                        verifier=None) -> dict:
  """Calibration metrics of a batch (``examples[i // group_size]`` is row i's).

  ``rlcr_format_frac``: rows in the tabc format; ``rlcr_answer_accuracy``: mean acc (0 when
  the format fails); ``rlcr_confidence_mean``: mean q, 0 for a failed row (as the official
  ``mean_confidence`` logging column); ``rlcr_brier``: mean ``(q - acc)^2`` with a failed row
  counted as 1 (the worst), i.e. ``1 - mean`` of the official Brier reward column.
  """
  if group_size < 1 or len(completions) != len(examples) * group_size:
    raise ValueError(f"calibration_summary: {len(completions)} completions for "
                     f"{len(examples)} examples x group_size={group_size}")
  n = max(len(completions), 1)
  fmt_sum = acc_sum = q_sum = brier_sum = 0.0
  for i, text in enumerate(completions):
    fmt, acc, q = rlcr_terms(text, examples[i // group_size], verifier=verifier)
    fmt_sum += fmt
    acc_sum += acc
    q_sum += 0.0 if q is None else q
    brier_sum += 1.0 if q is None else (q - acc) ** 2
  return {"rlcr_format_frac": fmt_sum / n, "rlcr_answer_accuracy": acc_sum / n,
          "rlcr_confidence_mean": q_sum / n, "rlcr_brier": brier_sum / n}

"""Final-answer extraction from a completion: ``\\boxed{...}``, ``<answer>`` tags,
``#### x`` and the last number.

Conventions: ``#### x`` is GSM8K's final-answer line (Cobbe et al. 2021,
"Training Verifiers to Solve Math Word Problems", arXiv 2110.14168);
``\\boxed{x}`` is MATH's (Hendrycks et al. 2021, arXiv 2103.03874);
``<think>...</think><answer>...</answer>`` is the R1-style template
(DeepSeek-AI 2025, arXiv 2501.12948).

Every function here is linear in the text length (one pass or ``rfind``; the
number regex has no nested quantifiers that can backtrack exponentially) and
returns ``None`` when nothing is found; none raises on any string.
"""

from __future__ import annotations

import re
from typing import Optional

_BOX_COMMANDS = ("\\boxed{", "\\fbox{")

# A number token: optional sign (only when not glued to a preceding word,
# digit or closing bracket, so "10-3" gives 10 and 3), digits with optional
# 3-digit thousands groups, optional decimals, optional "/denominator".
# ASCII only: Unicode digits (e.g. Arabic-Indic) are not numbers here.
_NUMBER_RE = re.compile(
    r"(?:(?<![0-9A-Za-z_)\]}])-)?"
    r"(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)"
    r"(?:\.[0-9]+)?"
    r"(?:/[0-9]+)?",
    re.ASCII)


def _matching_braces(text: str) -> dict[int, int]:
  """``{open_index: close_index}`` for every balanced, unescaped brace pair (one pass)."""
  stack, match = [], {}
  for m in re.finditer(r"[{}]", text):
    i = m.start()
    if i > 0 and text[i - 1] == "\\":  # \{ and \} are literal braces in LaTeX
      continue
    if text[i] == "{":
      stack.append(i)
    elif stack:
      match[stack.pop()] = i
  return match


def extract_boxed(text: str) -> Optional[str]:
  """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) with balanced braces.

  Nested braces are kept (``\\boxed{\\frac{1}{2}}`` -> ``\\frac{1}{2}``); an
  unclosed box is skipped. "Last" is by the position of ``\\boxed``.
  """
  starts = []
  for cmd in _BOX_COMMANDS:
    pos = text.find(cmd)
    while pos >= 0:
      starts.append(pos + len(cmd) - 1)  # index of the opening brace
      pos = text.find(cmd, pos + 1)
  if not starts:
    return None
  match = _matching_braces(text)
  for open_idx in sorted(starts, reverse=True):
    if open_idx in match:
      return text[open_idx + 1:match[open_idx]].strip()
  return None


def extract_answer_tag(text: str) -> Optional[str]:
  """Content of the last ``<answer>...</answer>`` pair, stripped; None if none."""
  close = text.rfind("</answer>")
  if close < 0:
    return None
  open_ = text.rfind("<answer>", 0, close)
  if open_ < 0:
    return None
  return text[open_ + len("<answer>"):close].strip()


def extract_hash_answer(text: str) -> Optional[str]:
  """GSM8K style: the rest of the line after the last ``####``, stripped; None if empty."""
  idx = text.rfind("####")
  if idx < 0:
    return None
  answer = text[idx + 4:].split("\n", 1)[0].strip()
  return answer or None


def extract_last_number(text: str) -> Optional[str]:
  """The last number token (e.g. ``"-1,234.5"``, ``"3/4"``) in the text; None if none."""
  last = None
  for last in _NUMBER_RE.finditer(text):
    pass
  return None if last is None else last.group(0)


EXTRACTORS = ("boxed", "answer_tag", "hash", "last_number")
_EXTRACTOR_FNS = {"boxed": extract_boxed, "answer_tag": extract_answer_tag,
                  "hash": extract_hash_answer, "last_number": extract_last_number}


def extract_final_answer(text: str, methods=EXTRACTORS) -> Optional[str]:
  """The first answer found by ``methods``, tried in order.

  Default order: ``\\boxed{}``, ``<answer>`` tags, ``#### x``, last number.
  """
  for name in methods:
    if name not in _EXTRACTOR_FNS:
      raise ValueError(f"extract_final_answer: unknown method {name!r}; known: {EXTRACTORS}")
    found = _EXTRACTOR_FNS[name](text)
    if found is not None:
      return found
  return None

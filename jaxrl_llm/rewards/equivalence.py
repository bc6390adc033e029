"""Numeric equivalence of answers with exact rational arithmetic (and, on request, symbolic).

``parse_number`` turns an answer string into a ``fractions.Fraction`` or
``None``. Accepted: integers, decimals, signs (``+``, ``-``, Unicode minus),
thousands separators in groups of three (``1,234,567``; LaTeX ``1{,}234``),
plain fractions ``a/b``, LaTeX ``\\frac{a}{b}`` / ``\\dfrac`` / ``\\tfrac``,
scientific notation with at most a 3-digit exponent, and decoration that does
not change the value: surrounding ``$``, ``\\$``, one trailing ``.``, a
trailing ``%`` / ``\\%`` (``50%`` is read as 50, as MATH's grader does: it
strips ``\\%``; so ``50\\%`` matches ``50``, not ``0.5``), LaTeX spacing
``\\!`` / ``\\,``, one layer of braces ``{5}``, degrees ``^\\circ``, a leading
single-letter assignment ``x = 5``, and ``\\text{...}`` units
(``18\\text{ dollars}`` is 18; ``\\text{18}`` is 18).
``NaN``/``inf`` and over-long strings (> ``MAX_NUMBER_CHARS``) are not numbers,
which keeps ``int()`` well under Python's 4300-digit limit and every parse
cheap. :func:`answers_match` compares numbers exactly and hands non-numeric
answers to a symbolic verifier when given one (:mod:`jaxrl_llm.rewards.symbolic`).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Optional

MAX_NUMBER_CHARS = 1000

_DECIMAL_RE = re.compile(
    r"([+-]?)((?:[0-9]{1,3}(?:,[0-9]{3})+)|[0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{1,3}))?",
    re.ASCII)
_TEXT_RE = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}", re.ASCII)
_ASSIGN_RE = re.compile(r"[A-Za-z]\s*=\s*([^=]*)", re.ASCII)
_FRAC_RE = re.compile(r"([+-]?)\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", re.ASCII)


def _parse_decimal(s: str) -> Optional[Fraction]:
  m = _DECIMAL_RE.fullmatch(s)
  if m is None:
    return None
  sign, whole, frac, exp = m.groups()
  whole = whole.replace(",", "")
  frac = frac or ""
  if not whole and not frac:
    return None
  value = Fraction(int(whole + frac or "0"), 10 ** len(frac))
  if exp is not None:
    value *= Fraction(10) ** int(exp)
  return -value if sign == "-" else value


def _strip_decoration(s: str) -> str:
  s = s.strip()
  for old, new in (("\u2212", "-"), ("{,}", ","), ("\\!", ""), ("\\,", ""), ("\\$", ""),
                   ("$", ""), ("^{\\circ}", ""), ("^\\circ", "")):
    s = s.replace(old, new)
  s = s.strip()
  m = _ASSIGN_RE.fullmatch(s)
  if m is not None:
    s = m.group(1).strip()
  if s.endswith("."):
    s = s[:-1]
  if s.endswith("\\%"):
    s = s[:-2]
  elif s.endswith("%"):
    s = s[:-1]
  s = s.strip()
  if len(s) >= 2 and s[0] == "{" and s[-1] == "}":
    s = s[1:-1].strip()
  return s


def parse_number(text: str) -> Optional[Fraction]:
  """The exact value of a numeric answer string, or ``None`` if it is not one."""
  if not isinstance(text, str) or len(text) > MAX_NUMBER_CHARS:
    return None
  if "\\" in text and _TEXT_RE.search(text):
    # Units first ("18\text{ dollars}"), then a number spelled inside \text{}.
    value = _parse_plain(_strip_decoration(_TEXT_RE.sub("", text)))
    if value is not None:
      return value
    text = _TEXT_RE.sub(lambda m: m.group(1), text)
  return _parse_plain(_strip_decoration(text))


def _parse_plain(s: str) -> Optional[Fraction]:
  m = _FRAC_RE.fullmatch(s)
  if m is not None:
    num, den = _parse_decimal(m.group(2).strip()), _parse_decimal(m.group(3).strip())
    if num is None or den is None or den == 0:
      return None
    value = num / den
    return -value if m.group(1) == "-" else value
  if s.count("/") == 1:
    num_text, den_text = s.split("/")
    num, den = _parse_decimal(num_text.strip()), _parse_decimal(den_text.strip())
    if num is None or den is None or den == 0:
      return None
    return num / den
  return _parse_decimal(s)


def normalize_answer_text(text: str) -> str:
  """String form for non-numeric comparison: no whitespace, ``$``, ``\\left``/``\\right``, trailing ``.``."""
  s = text
  for old in ("\\left", "\\right", "\\!", "\\,", "\\$", "$"):
    s = s.replace(old, "")
  s = "".join(s.split())
  return s[:-1] if s.endswith(".") else s


def answers_match(predicted: Optional[str], reference: str, *, symbolic=None) -> bool:
  """Whether a predicted answer equals the reference.

  1. Both parse as numbers (:func:`parse_number`): exact rational equality
     decides (``0.333`` is not ``1/3``; ``50%`` is 50, so ``50\\%`` matches
     ``50`` and not ``0.5``, as in MATH's grader, which strips ``\\%``).
  2. Equal, non-empty :func:`normalize_answer_text` forms match.
  3. With ``symbolic`` (a :class:`jaxrl_llm.rewards.symbolic.SymbolicVerifier`,
     or anything with ``equivalent(predicted, reference) -> True/False/None``),
     a non-numeric side goes to it: ``x^2+1`` matches ``1+x^2``, ``\\sqrt2``
     matches ``2^{1/2}``; undecided (its deadline passed) is no match.
  4. Otherwise no match (in particular a number against a non-number without
     ``symbolic``).
  """
  if predicted is None:
    return False
  p, r = parse_number(predicted), parse_number(reference)
  if p is not None and r is not None:
    return p == r
  p_text, r_text = normalize_answer_text(predicted), normalize_answer_text(reference)
  if bool(r_text) and p_text == r_text and (p is None) == (r is None):
    return True
  if symbolic is None or not p_text or not r_text:
    return False
  return symbolic.equivalent(predicted, reference) is True

"""Countdown verifier: a bounded recursive-descent parser with exact arithmetic (never ``eval``).

The task (reach a target from given numbers with + - * /) as an LM benchmark:
Gandhi et al. 2024, "Stream of Search (SoS): Learning to Search in
Language", arXiv 2404.03683; as an RLVR task: Pan et al. 2025, TinyZero
(github.com/Jiayi-Pan/TinyZero), whose reward is 1 for a correct equation
using the numbers, a small format score otherwise.

Grammar (whitespace ignored; ``×``/``÷`` accepted for ``*``/``/``)::

  expr   := term (("+" | "-") term)*
  term   := factor (("*" | "/") factor)*
  factor := NUMBER | "(" expr ")" | "-" factor      # unary minus only if allowed

Values are ``fractions.Fraction`` (so ``(1/3)*3 == 1`` exactly); division by
zero makes the expression invalid. Each literal must be one of the given
numbers, and each given number is consumed at most once (a multiset, so a
number given twice may be used twice); with ``use_all=True`` every given
number must be used exactly once. Totality: the text is rejected before
parsing if it exceeds ``max_length`` characters, parenthesis/unary nesting is
capped at ``max_depth`` (far below Python's recursion limit), and literals
longer than ``MAX_LITERAL_DIGITS`` are rejected, so any string is answered in
time linear in its length.
"""

from __future__ import annotations

import collections
from fractions import Fraction
from typing import NamedTuple, Optional

MAX_EXPRESSION_CHARS = 512
MAX_DEPTH = 64
MAX_LITERAL_DIGITS = 18
_OPERATOR_ALIASES = {"+": "+", "-": "-", "*": "*", "/": "/", "\u00d7": "*", "\u00f7": "/",
                     "\u2212": "-", "(": "(", ")": ")"}


class CountdownCheck(NamedTuple):
  """``valid``: the expression reaches the target legally; ``value``: its exact
  value when it parsed and evaluated (else None); ``reason``: why not valid ("" if valid)."""

  valid: bool
  value: Optional[Fraction]
  reason: str


class _Invalid(Exception):
  pass


def _tokenize(text: str) -> list:
  tokens, i, n = [], 0, len(text)
  while i < n:
    ch = text[i]
    if ch in " \t\r\n":
      i += 1
    elif "0" <= ch <= "9":
      j = i
      while j < n and "0" <= text[j] <= "9":
        j += 1
      if j - i > MAX_LITERAL_DIGITS:
        raise _Invalid(f"number literal longer than {MAX_LITERAL_DIGITS} digits at position {i}")
      tokens.append(int(text[i:j]))
      i = j
    elif ch in _OPERATOR_ALIASES:
      tokens.append(_OPERATOR_ALIASES[ch])
      i += 1
    else:
      raise _Invalid(f"unexpected character {ch!r} at position {i}")
  return tokens


class _Parser:
  """One-shot parser over a token list; ``available`` is the multiset of unused numbers."""

  def __init__(self, tokens, available, allow_unary_minus, max_depth):
    self.tokens, self.pos = tokens, 0
    self.available = available
    self.allow_unary_minus = allow_unary_minus
    self.max_depth = max_depth

  def peek(self):
    return self.tokens[self.pos] if self.pos < len(self.tokens) else None

  def expr(self, depth: int) -> Fraction:
    value = self.term(depth)
    while self.peek() in ("+", "-"):
      op = self.tokens[self.pos]
      self.pos += 1
      rhs = self.term(depth)
      value = value + rhs if op == "+" else value - rhs
    return value

  def term(self, depth: int) -> Fraction:
    value = self.factor(depth)
    while self.peek() in ("*", "/"):
      op = self.tokens[self.pos]
      self.pos += 1
      rhs = self.factor(depth)
      if op == "*":
        value = value * rhs
      elif rhs == 0:
        raise _Invalid("division by zero")
      else:
        value = value / rhs
    return value

  def factor(self, depth: int) -> Fraction:
    if depth > self.max_depth:
      raise _Invalid(f"nesting deeper than max_depth={self.max_depth}")
    tok = self.peek()
    if tok is None:
      raise _Invalid("unexpected end of expression")
    self.pos += 1
    if isinstance(tok, int):
      if self.available[tok] <= 0:
        raise _Invalid(f"number {tok} is not given or is used more often than given")
      self.available[tok] -= 1
      return Fraction(tok)
    if tok == "(":
      value = self.expr(depth + 1)
      if self.peek() != ")":
        raise _Invalid(f"expected ')' at token {self.pos}")
      self.pos += 1
      return value
    if tok == "-" and self.allow_unary_minus:
      return -self.factor(depth + 1)
    raise _Invalid(f"unexpected token {tok!r} at token {self.pos - 1}")


def evaluate_countdown_expression(expression: str, numbers, *, allow_unary_minus: bool = False,
                                  max_length: int = MAX_EXPRESSION_CHARS,
                                  max_depth: int = MAX_DEPTH) -> tuple[Fraction, collections.Counter]:
  """Parses and evaluates ``expression`` using each of ``numbers`` at most once.

  Returns ``(value, unused)`` where ``unused`` is the multiset of numbers not
  used. Raises ``ValueError`` (with the reason) for any invalid expression.
  """
  if len(expression) > max_length:
    raise ValueError(f"expression longer than max_length={max_length} characters")
  available = collections.Counter(int(n) for n in numbers)
  try:
    tokens = _tokenize(expression)
    if not tokens:
      raise _Invalid("empty expression")
    parser = _Parser(tokens, available, allow_unary_minus, max_depth)
    value = parser.expr(0)
    if parser.pos != len(tokens):
      raise _Invalid(f"unexpected token {tokens[parser.pos]!r} at token {parser.pos}")
  except _Invalid as e:
    raise ValueError(str(e)) from None
  return value, +available


def check_countdown(expression: str, numbers, target, *, use_all: bool = False,
                    allow_unary_minus: bool = False, max_length: int = MAX_EXPRESSION_CHARS,
                    max_depth: int = MAX_DEPTH) -> CountdownCheck:
  """Whether ``expression`` reaches ``target`` with ``numbers`` under the Countdown rules.

  Never raises for any ``expression`` string; the reason says what failed
  (parse error, reused number, division by zero, wrong value, unused numbers).
  """
  try:
    value, unused = evaluate_countdown_expression(
        expression, numbers, allow_unary_minus=allow_unary_minus, max_length=max_length,
        max_depth=max_depth)
  except ValueError as e:
    return CountdownCheck(False, None, str(e))
  if value != Fraction(target):
    return CountdownCheck(False, value, f"value {value} != target {target}")
  if use_all and unused:
    return CountdownCheck(False, value, f"numbers not used: {sorted(unused.elements())}")
  return CountdownCheck(True, value, "")

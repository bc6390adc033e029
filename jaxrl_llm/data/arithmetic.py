"""Multi-digit integer arithmetic: ``"12+34="`` -> ``"46"``.

Example ``index`` of the stream ``seed`` is a pure function of
``(seed, index, split)`` (NumPy ``default_rng([seed, index, split_id])``), so a
data position is just two integers and any example can be regenerated.
Problems are assigned to train/test by hashing their canonical key (operands
sorted for the commutative ``+`` and ``*``, so ``12+34`` and ``34+12`` share a
split); see :mod:`jaxrl_llm.data.splits`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from jaxrl_llm.data import splits
from jaxrl_llm.data.types import Example

ARITHMETIC_OPERATORS = "+-*/"
_MAX_DIGITS = 18  # operands stay within int64


def arithmetic_key(a: int, op: str, b: int) -> str:
  """Canonical problem key used for the split hash."""
  if op in "+*" and b < a:
    a, b = b, a
  return f"{a}{op}{b}"


def arithmetic_answer(a: int, op: str, b: int) -> int:
  """The exact integer result (``/`` only appears with an exact quotient)."""
  if op == "+":
    return a + b
  if op == "-":
    return a - b
  if op == "*":
    return a * b
  if op == "/":
    if b == 0 or a % b:
      raise ValueError(f"arithmetic_answer: {a}/{b} is not an exact integer division")
    return a // b
  raise ValueError(f"arithmetic_answer: unknown operator {op!r}; known: {ARITHMETIC_OPERATORS}")


@dataclasses.dataclass(frozen=True)
class ArithmeticTask:
  """Seeded generator of ``a op b =`` problems with an integer answer.

  Attributes:
    digits: largest operand length in digits (1..18).
    min_digits: smallest operand length; each operand first draws its length
      uniformly in ``[min_digits, digits]``, then a value of that length
      (1-digit operands include 0). Mixing lengths keeps short problems in
      the curriculum.
    operators: a subset of ``"+-*/"``, drawn uniformly per problem. ``/`` is
      generated as ``(b*q)/b`` with ``b >= 1`` so the answer is the integer
      ``q`` (the dividend may have up to ``2*digits`` digits).
    allow_negative: if False, ``a-b`` has ``a >= b`` (operands swapped).
    split: ``"train"`` or ``"test"``.
    test_fraction: share of the problem space assigned to ``"test"``.
    prompt_template: ``str.format`` template with fields ``a``, ``op``, ``b``.
    split_salt: salt of the split hash (change it to get another split).
    max_tries: rejection-sampling budget per example (error if exceeded,
      e.g. when a tiny problem space has no problem in the split).
  """

  digits: int = 2
  min_digits: int = 1
  operators: str = "+-"
  allow_negative: bool = False
  split: str = "train"
  test_fraction: float = 0.1
  prompt_template: str = "{a}{op}{b}="
  split_salt: str = splits.DEFAULT_SPLIT_SALT
  max_tries: int = 2000

  def __post_init__(self):
    if not 1 <= self.digits <= _MAX_DIGITS:
      raise ValueError(f"ArithmeticTask: digits must be in [1, {_MAX_DIGITS}], got {self.digits}")
    if not 1 <= self.min_digits <= self.digits:
      raise ValueError(f"ArithmeticTask: min_digits must be in [1, digits={self.digits}], "
                       f"got {self.min_digits}")
    if not self.operators or any(op not in ARITHMETIC_OPERATORS for op in self.operators):
      raise ValueError(f"ArithmeticTask: operators must be a non-empty subset of "
                       f"{ARITHMETIC_OPERATORS!r}, got {self.operators!r}")
    if len(set(self.operators)) != len(self.operators):
      raise ValueError(f"ArithmeticTask: operators has repeats: {self.operators!r}")
    splits.check_split(self.split)
    splits.check_test_fraction(self.test_fraction)
    if self.max_tries < 1:
      raise ValueError(f"ArithmeticTask: max_tries must be >= 1, got {self.max_tries}")

  def _operand(self, rng: np.random.Generator, min_value: int = 0) -> int:
    d = int(rng.integers(self.min_digits, self.digits + 1))
    lo = 0 if d == 1 else 10 ** (d - 1)
    return int(rng.integers(max(lo, min_value), 10 ** d))

  def _draw(self, rng: np.random.Generator) -> tuple[int, str, int]:
    op = self.operators[int(rng.integers(len(self.operators)))]
    if op == "/":
      b = self._operand(rng, min_value=1)
      q = self._operand(rng)
      return b * q, op, b
    a, b = self._operand(rng), self._operand(rng)
    if op == "-" and not self.allow_negative and a < b:
      a, b = b, a
    return a, op, b

  def example(self, seed: int, index: int) -> Example:
    """Example ``index`` of stream ``seed`` in this task's split."""
    seed, index = splits.check_seed_index(seed, index)
    rng = np.random.default_rng([seed, index, splits.SPLITS.index(self.split)])
    for _ in range(self.max_tries):
      a, op, b = self._draw(rng)
      key = arithmetic_key(a, op, b)
      if splits.split_of(key, self.test_fraction, self.split_salt) == self.split:
        answer = str(arithmetic_answer(a, op, b))
        return Example(prompt=self.prompt_template.format(a=a, op=op, b=b), answer=answer,
                       completion=answer, task="arithmetic",
                       metadata={"a": a, "op": op, "b": b, "key": key})
    raise ValueError(f"ArithmeticTask: no {self.split!r} problem found in {self.max_tries} draws "
                     f"(digits={self.digits}, operators={self.operators!r}, "
                     f"test_fraction={self.test_fraction}); the problem space may be too small")

  def max_prompt_chars(self) -> int:
    """Longest possible prompt (widest operands; a ``/`` dividend has ``2*digits`` digits)."""
    a_digits = 2 * self.digits if "/" in self.operators else self.digits
    return max(len(self.prompt_template.format(a="9" * a_digits, op=op, b="9" * self.digits))
               for op in self.operators)

  def max_answer_chars(self) -> int:
    """Longest possible answer: ``+`` digits+1, ``-`` digits (+1 sign), ``*`` 2*digits, ``/`` digits."""
    widths = {"+": self.digits + 1, "-": self.digits + int(self.allow_negative),
              "*": 2 * self.digits, "/": self.digits}
    return max(widths[op] for op in self.operators)

  def examples(self, seed: int, start: int, count: int) -> list[Example]:
    """Examples ``start, ..., start+count-1`` of stream ``seed``."""
    return [self.example(seed, start + i) for i in range(count)]

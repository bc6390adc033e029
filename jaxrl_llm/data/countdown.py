"""Countdown: reach ``target`` from ``numbers`` with ``+ - * /``, each number at most once.

Problems are built forwards so a solution always exists: draw the numbers,
then repeatedly pick two pool entries at random and combine them with a
random operator (intermediate values stay non-negative integers; ``/`` only
when exact and the divisor is non-zero) until one value is left; that value
is the target and the combination tree is the recorded solution, printed with
the fewest parentheses. The generated solution uses every number exactly once,
so it is valid under both the "at most once" and "exactly once" rules.
The split key is the sorted numbers plus the target (see
:mod:`jaxrl_llm.data.splits`).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from jaxrl_llm.data import splits
from jaxrl_llm.data.types import Example

COUNTDOWN_OPERATORS = "+-*/"
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


@dataclasses.dataclass(frozen=True)
class _Node:
  value: int
  text: str
  op: Optional[str] = None  # None for a leaf number


def _wrap(child: _Node, parent_op: str, right: bool) -> str:
  """Parenthesise ``child`` only where precedence/associativity needs it.

  Left child: parens iff its precedence is lower. Right child: also when the
  precedence is equal and the parent is ``-`` or ``/`` (``a-(b+c)``,
  ``a/(b*c)``); ``a+(b-c) = a+b-c`` and ``a*(b/c) = a*b/c`` hold exactly.
  """
  if child.op is None:
    return child.text
  cp, pp = _PRECEDENCE[child.op], _PRECEDENCE[parent_op]
  if cp < pp or (right and cp == pp and parent_op in "-/"):
    return f"({child.text})"
  return child.text


def _combine(left: _Node, op: str, right: _Node) -> Optional[_Node]:
  a, b = left.value, right.value
  if op == "+":
    value = a + b
  elif op == "-":
    if a < b:
      return None
    value = a - b
  elif op == "*":
    value = a * b
  else:
    if b == 0 or a % b:
      return None
    value = a // b
  return _Node(value, f"{_wrap(left, op, False)}{op}{_wrap(right, op, True)}", op)


def countdown_key(numbers, target: int) -> str:
  return ",".join(str(n) for n in sorted(numbers)) + f"->{target}"


@dataclasses.dataclass(frozen=True)
class CountdownTask:
  """Seeded Countdown generator with a guaranteed solution.

  Attributes:
    num_numbers: how many numbers are given (>= 2).
    min_number, max_number: the numbers are uniform integers in this range.
    min_target, max_target: accepted target range (others are redrawn).
    operators: subset of ``"+-*/"`` the generator may use.
    split, test_fraction, split_salt: see :mod:`jaxrl_llm.data.splits`.
    prompt_template: ``str.format`` template with ``numbers`` (comma-joined)
      and ``target``; the default gives e.g. ``"[3,5,7]->24:"``.
    max_tries: rejection budget per example.
  """

  num_numbers: int = 3
  min_number: int = 1
  max_number: int = 10
  min_target: int = 1
  max_target: int = 100
  operators: str = "+-*/"
  split: str = "train"
  test_fraction: float = 0.1
  prompt_template: str = "[{numbers}]->{target}:"
  split_salt: str = splits.DEFAULT_SPLIT_SALT
  max_tries: int = 2000

  def __post_init__(self):
    if self.num_numbers < 2:
      raise ValueError(f"CountdownTask: num_numbers must be >= 2, got {self.num_numbers}")
    if not 0 <= self.min_number <= self.max_number:
      raise ValueError(f"CountdownTask: need 0 <= min_number <= max_number, got "
                       f"min_number={self.min_number}, max_number={self.max_number}")
    if not self.min_target <= self.max_target:
      raise ValueError(f"CountdownTask: need min_target <= max_target, got "
                       f"min_target={self.min_target}, max_target={self.max_target}")
    if not self.operators or any(op not in COUNTDOWN_OPERATORS for op in self.operators):
      raise ValueError(f"CountdownTask: operators must be a non-empty subset of "
                       f"{COUNTDOWN_OPERATORS!r}, got {self.operators!r}")
    splits.check_split(self.split)
    splits.check_test_fraction(self.test_fraction)
    if self.max_tries < 1:
      raise ValueError(f"CountdownTask: max_tries must be >= 1, got {self.max_tries}")

  def _draw(self, rng: np.random.Generator) -> tuple[tuple[int, ...], Optional[_Node]]:
    numbers = tuple(int(x) for x in rng.integers(self.min_number, self.max_number + 1,
                                                 size=self.num_numbers))
    pool = [_Node(n, str(n)) for n in numbers]
    while len(pool) > 1:
      i, j = (int(k) for k in rng.choice(len(pool), size=2, replace=False))
      op = self.operators[int(rng.integers(len(self.operators)))]
      node = _combine(pool[i], op, pool[j])
      if node is None:
        return numbers, None
      pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [node]
    return numbers, pool[0]

  def example(self, seed: int, index: int) -> Example:
    """Example ``index`` of stream ``seed`` in this task's split."""
    seed, index = splits.check_seed_index(seed, index)
    rng = np.random.default_rng([seed, index, splits.SPLITS.index(self.split), 1])
    for _ in range(self.max_tries):
      numbers, solution = self._draw(rng)
      if solution is None or not self.min_target <= solution.value <= self.max_target:
        continue
      target = solution.value
      key = countdown_key(numbers, target)
      if splits.split_of(key, self.test_fraction, self.split_salt) != self.split:
        continue
      prompt = self.prompt_template.format(numbers=",".join(map(str, numbers)), target=target)
      return Example(prompt=prompt, answer=str(target), completion=solution.text,
                     task="countdown",
                     metadata={"numbers": numbers, "target": target, "solution": solution.text,
                               "key": key})
    raise ValueError(f"CountdownTask: no {self.split!r} problem with a target in "
                     f"[{self.min_target}, {self.max_target}] found in {self.max_tries} draws")

  def max_prompt_chars(self) -> int:
    """Longest possible prompt (every number and the target at their widest)."""
    widest = "9" * len(str(self.max_number))
    return len(self.prompt_template.format(numbers=",".join([widest] * self.num_numbers),
                                           target="9" * len(str(self.max_target))))

  def max_solution_chars(self) -> int:
    """Longest recorded solution: n numbers, n-1 operators, and at most one
    pair of parentheses around each of the n-2 non-root operator nodes."""
    n = self.num_numbers
    return n * len(str(self.max_number)) + (n - 1) + 2 * (n - 2)

  def examples(self, seed: int, start: int, count: int) -> list[Example]:
    """Examples ``start, ..., start+count-1`` of stream ``seed``."""
    return [self.example(seed, start + i) for i in range(count)]

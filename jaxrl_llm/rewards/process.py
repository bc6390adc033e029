"""Rule-based step scorers: a verifiable stand-in for a process reward model (PRM).

There is no learned PRM in this project. Process-reward methods (Clip / Delta
shaping, Gao et al. 2024, arXiv 2410.15115; the PROF consistency filter, Ye et
al. 2025, arXiv 2509.03403) need a score ``r^h`` per reasoning step, so this
module scores steps with exact rules instead: a step is one line of the
completion that states an equation ``lhs = rhs``, and it scores 1.0 if the
equation is arithmetically right (and, for Countdown, uses only allowed
numbers), else 0.0. A real PRM gives a probability per step; these scores are
its {0, 1} rule-based stand-in, so results obtained with them say nothing about
a learned PRM's noise or bias.

Every scorer is ``fn(completion: str, example) -> tuple[Step, ...]`` where
``Step.end`` is the character offset (exclusive) in ``completion`` where the step
ends (after its last non-space character) and ``Step.score`` its score; steps come
in text order. Lines without ``=`` are not steps. Scorers are total: any string gets
a tuple in time linear in its length; at most ``MAX_STEPS`` steps are scored
(later lines are ignored) and an expression longer than ``MAX_EXPRESSION_CHARS``
scores 0.
"""

from __future__ import annotations

import collections
import re
import types
from typing import Callable, NamedTuple

from jaxrl_llm.rewards import _examples
from jaxrl_llm.rewards.countdown import MAX_EXPRESSION_CHARS, check_countdown

MAX_STEPS = 64
_INT_RE = re.compile(r"-?[0-9]{1,18}", re.ASCII)
_LITERAL_RE = re.compile(r"[0-9]+", re.ASCII)


class Step(NamedTuple):
  """One scored step: ``end`` = character offset (exclusive) where it ends; ``score``."""

  end: int
  score: float


def _equation_lines(completion: str, max_steps: int):
  """``(end, lhs, rhs)`` of each line holding ``=`` (split at the first ``=``), in order."""
  start, n = 0, len(completion)
  count = 0
  while start < n and count < max_steps:
    stop = completion.find("\n", start)
    stop = n if stop < 0 else stop
    line = completion[start:stop]
    eq = line.find("=")
    if eq >= 0 and line.strip():
      end = start + len(line.rstrip())
      yield end, line[:eq].strip(), line[eq + 1:].strip()
      count += 1
    start = stop + 1


def _int_or_none(text: str):
  return int(text) if _INT_RE.fullmatch(text) else None


def countdown_step_scores(completion: str, example, *, max_steps: int = MAX_STEPS) -> tuple:
  """Countdown steps ``a op b = c`` (one per line), each scored against a number pool.

  The pool starts as the example's ``numbers`` (a multiset). A step ``lhs = rhs``
  scores 1.0 iff ``rhs`` is an integer and ``lhs`` evaluates exactly to it using
  pool numbers at most once each (:func:`~jaxrl_llm.rewards.countdown.check_countdown`);
  then the literals of ``lhs`` leave the pool and ``rhs`` joins it (so later steps
  may use intermediate results). A wrong step scores 0.0 and leaves the pool alone.
  E.g. numbers (3, 5, 2): ``"3+5=8\\n8*2=16"`` -> scores (1, 1); ``"3+5=9\\n3*3=9"`` -> (0, 0).
  """
  numbers, _ = _examples.countdown_problem(example)
  pool = collections.Counter(numbers)
  steps = []
  for end, lhs, rhs in _equation_lines(completion, max_steps):
    value = _int_or_none(rhs)
    ok = False
    if value is not None and len(lhs) <= MAX_EXPRESSION_CHARS:
      ok = check_countdown(lhs, tuple(pool.elements()), value).valid
    if ok:
      pool -= collections.Counter(int(x) for x in _LITERAL_RE.findall(lhs))
      pool[value] += 1
    steps.append(Step(end, 1.0 if ok else 0.0))
  return tuple(steps)


def equation_step_scores(completion: str, example=None, *, max_steps: int = MAX_STEPS) -> tuple:
  """Arithmetic steps ``lhs = rhs`` (one per line): 1.0 iff ``lhs`` (``+ - * /``,
  parentheses, unary minus, exact rationals) equals the integer ``rhs``, any numbers
  allowed. ``example`` is ignored. ``"12+34=46\\n46*2=90"`` -> scores (1, 0)."""
  del example
  steps = []
  for end, lhs, rhs in _equation_lines(completion, max_steps):
    value = _int_or_none(rhs)
    ok = False
    if value is not None and len(lhs) <= MAX_EXPRESSION_CHARS:
      literals = tuple(int(x) for x in _LITERAL_RE.findall(lhs))
      ok = check_countdown(lhs, literals, value, allow_unary_minus=True).valid
    steps.append(Step(end, 1.0 if ok else 0.0))
  return tuple(steps)


StepScorer = Callable[[str, object], tuple]

STEP_SCORERS = types.MappingProxyType({
    "countdown_steps": countdown_step_scores,
    "equation_lines": equation_step_scores,
})


def get_step_scorer(name: str) -> StepScorer:
  """The rule-based step scorer registered under ``name`` (see ``STEP_SCORERS``)."""
  if name not in STEP_SCORERS:
    raise ValueError(f"unknown step scorer {name!r}; known: {', '.join(sorted(STEP_SCORERS))}")
  return STEP_SCORERS[name]

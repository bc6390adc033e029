"""Correctness rewards: 1.0 if the completion's answer equals the reference, else 0.0.

Outcome reward of RL with verifiable rewards (RLVR; Lambert et al. 2024,
"Tulu 3", arXiv 2411.15124): r(x, y) = 1[answer(y) == answer*(x)].

Signature of every reward: ``fn(completion: str, example) -> float``; see
:mod:`jaxrl_llm.rewards._examples` for what ``example`` may be.
"""

from __future__ import annotations

from jaxrl_llm.rewards import _examples
from jaxrl_llm.rewards.countdown import MAX_EXPRESSION_CHARS, check_countdown
from jaxrl_llm.rewards.equivalence import answers_match
from jaxrl_llm.rewards.extraction import extract_answer_tag, extract_final_answer
from jaxrl_llm.rewards.symbolic import default_verifier


def exact_answer_reward(completion: str, example) -> float:
  """The whole completion (whitespace-stripped) must be the answer: ``"46"`` for ``"12+34="``.

  Strict on purpose for tiny models on synthetic arithmetic: trailing text
  makes it wrong. Numbers compare exactly (``"046"``, ``"46.0"`` are 46).
  """
  return 1.0 if answers_match(completion.strip(), _examples.reference_answer(example)) else 0.0


def math_answer_reward(completion: str, example, *, verifier=None) -> float:
  """GSM8K/MATH accuracy: extract the final answer (``\\boxed{}`` > ``<answer>``
  tags > ``#### x`` > last number) and compare with :func:`answers_match`:
  numbers exactly, anything else also symbolically with math-verify
  (``verifier``, default :func:`~jaxrl_llm.rewards.symbolic.default_verifier`,
  at most ``SYMBOLIC_TIMEOUT_S`` per comparison), so ``\\boxed{1+x^2}``
  earns 1.0 against ``x^2+1``.
  """
  predicted = extract_final_answer(completion)
  reference = _examples.reference_answer(example)
  if predicted is None:
    return 0.0
  symbolic = default_verifier() if verifier is None else verifier
  return 1.0 if answers_match(predicted, reference, symbolic=symbolic) else 0.0


def extract_countdown_expression(completion: str) -> str:
  """The expression to check: the last ``<answer>`` content if tags exist, else
  the whole completion; cut at the first ``=`` (so ``"3+5=8"`` checks ``3+5``)."""
  text = extract_answer_tag(completion)
  if text is None:
    text = completion
  return text.split("=", 1)[0].strip()


def countdown_reward(completion: str, example, *, use_all: bool = False,
                     format_score: float = 0.0) -> float:
  """1.0 if the completion's expression reaches ``example``'s target using its
  numbers at most once (exactly once with ``use_all``); ``format_score`` if
  it parses and evaluates but is wrong; else 0.0.

  ``example`` needs ``numbers`` and ``target`` (fields or metadata).
  """
  numbers, target = _examples.countdown_problem(example)
  expression = extract_countdown_expression(completion)
  check = check_countdown(expression, numbers, target, use_all=use_all,
                          max_length=MAX_EXPRESSION_CHARS)
  if check.valid:
    return 1.0
  return float(format_score) if check.value is not None else 0.0


def countdown_use_all_reward(completion: str, example) -> float:
  """:func:`countdown_reward` with ``use_all=True`` (every number exactly once)."""
  return countdown_reward(completion, example, use_all=True)

"""Format rewards: 1.0 if the completion has the requested shape, else 0.0.

R1-style rule-based format reward (DeepSeek-AI 2025, "DeepSeek-R1",
arXiv 2501.12948): r_format = 1[completion matches the tag template].

Implemented with ``str.find``/``count`` (no backtracking regexes), linear in
the completion length.
"""

from __future__ import annotations

from jaxrl_llm.rewards.extraction import extract_boxed, extract_final_answer


def answer_tag_format_reward(completion: str, example=None) -> float:
  """1.0 iff the completion ends with one non-empty ``<answer>...</answer>`` block.

  Exactly one ``<answer>`` and one ``</answer>``, in that order, non-blank
  content, only whitespace after ``</answer>``; if the completion opens a
  ``<think>`` block, a ``</think>`` must close it before ``<answer>``. Text
  before the answer is otherwise free. ``example`` is ignored.
  """
  if completion.count("<answer>") != 1 or completion.count("</answer>") != 1:
    return 0.0
  open_, close = completion.find("<answer>"), completion.find("</answer>")
  if close < open_ or not completion[open_ + len("<answer>"):close].strip():
    return 0.0
  if completion[close + len("</answer>"):].strip():
    return 0.0
  think = completion.find("<think>")
  if 0 <= think < open_ and not think < completion.find("</think>", think) < open_:
    return 0.0
  return 1.0


def boxed_format_reward(completion: str, example=None) -> float:
  """1.0 iff the completion has a balanced ``\\boxed{...}`` with non-blank content."""
  boxed = extract_boxed(completion)
  return 1.0 if boxed else 0.0


def answer_present_reward(completion: str, example=None) -> float:
  """1.0 iff any final answer can be extracted (boxed, tag, ``####`` or a number)."""
  answer = extract_final_answer(completion)
  return 1.0 if answer else 0.0

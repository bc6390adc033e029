"""GSM8K / MATH-style JSONL prompt files from a local path (never downloads).

Each non-blank line is a JSON object with a question and an answer field.
GSM8K answers are a worked solution ending in ``#### <number>``; the final
answer is the text after the last ``####`` with thousands separators removed,
and the whole answer text becomes the SFT ``completion``. MATH-style files
(e.g. ``problem`` / ``answer``) give the final answer directly.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from jaxrl_llm.data.types import Example

ANSWER_FORMATS = ("auto", "gsm8k", "raw")


def gsm8k_final_answer(answer_text: str) -> Optional[str]:
  """The text after the last ``####`` (first line of it), commas removed; None if absent."""
  idx = answer_text.rfind("####")
  if idx < 0:
    return None
  final = answer_text[idx + 4:].split("\n", 1)[0].strip().replace(",", "")
  return final or None


def load_jsonl(path, *, question_field: str = "question", answer_field: str = "answer",
               answer_format: str = "auto", prompt_template: str = "{question}",
               max_examples: Optional[int] = None) -> list[Example]:
  """Reads a JSONL file into :class:`Example` records.

  Args:
    path: local file path.
    question_field, answer_field: the JSON keys (MATH files: ``"problem"``).
    answer_format: ``"gsm8k"`` (answer must contain ``#### <final>``),
      ``"raw"`` (the answer field is the final answer), or ``"auto"``
      (``gsm8k`` when the answer contains ``####``, else ``raw``).
    prompt_template: ``str.format`` template with the field ``question``.
    max_examples: keep only the first N examples.

  Returns:
    Examples with ``prompt``, final ``answer``, ``completion`` (the full
    answer text) and ``metadata = {"line": lineno, "path": path}``.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: a malformed line, naming the file, line number and field.
  """
  if answer_format not in ANSWER_FORMATS:
    raise ValueError(f"load_jsonl: answer_format must be one of {ANSWER_FORMATS}, "
                     f"got {answer_format!r}")
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"load_jsonl: no file at {path!r}")
  examples = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if max_examples is not None and len(examples) >= max_examples:
        break
      if not line.strip():
        continue
      where = f"{path}:{lineno}"
      try:
        record = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"load_jsonl: {where}: invalid JSON ({e.msg} at column {e.colno})") from None
      if not isinstance(record, dict):
        raise ValueError(f"load_jsonl: {where}: expected a JSON object, got {type(record).__name__}")
      fields = {}
      for name in (question_field, answer_field):
        if name not in record:
          raise ValueError(f"load_jsonl: {where}: missing field {name!r} "
                           f"(keys: {sorted(record)})")
        value = record[name]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name == answer_field:
          value = str(value)
        if not isinstance(value, str):
          raise ValueError(f"load_jsonl: {where}: field {name!r} must be a string, "
                           f"got {type(value).__name__}")
        fields[name] = value
      question, answer_text = fields[question_field], fields[answer_field]
      fmt = answer_format
      if fmt == "auto":
        fmt = "gsm8k" if "####" in answer_text else "raw"
      if fmt == "gsm8k":
        final = gsm8k_final_answer(answer_text)
        if final is None:
          raise ValueError(f"load_jsonl: {where}: field {answer_field!r} has no "
                           f"'#### <answer>' final line (answer_format='gsm8k')")
      else:
        final = answer_text.strip()
        if not final:
          raise ValueError(f"load_jsonl: {where}: field {answer_field!r} is empty")
      examples.append(Example(prompt=prompt_template.format(question=question), answer=final,
                              completion=answer_text, task="jsonl",
                              metadata={"line": lineno, "path": path}))
  if not examples:
    raise ValueError(f"load_jsonl: {path!r} has no examples")
  return examples

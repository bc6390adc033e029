"""Tasks by name, so a config string (plus keyword options) builds a data source."""

from __future__ import annotations

import dataclasses
import types

from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.data.batching import ListSource
from jaxrl_llm.data.countdown import CountdownTask
from jaxrl_llm.data.jsonl import load_jsonl

TASKS = types.MappingProxyType({
    "arithmetic": ArithmeticTask,
    "countdown": CountdownTask,
    "jsonl": load_jsonl,
})
_JSONL_OPTIONS = ("question_field", "answer_field", "answer_format", "prompt_template",
                  "max_examples")


def make_task(name: str, **options):
  """A data source for :func:`take_batch` from a task name and its options.

  ``"arithmetic"`` / ``"countdown"``: the task dataclass with ``options`` as
  fields (e.g. ``digits=2, operators="+-", split="test"``). ``"jsonl"``:
  ``ListSource(load_jsonl(path, ...), shuffle=shuffle)`` with options
  ``path`` (required), ``shuffle`` (default True) and the keyword options of
  :func:`load_jsonl`. Unknown names or options raise ``ValueError`` listing
  the known ones.
  """
  if name not in TASKS:
    raise ValueError(f"unknown task {name!r}; known: {', '.join(sorted(TASKS))}")
  if name == "jsonl":
    options = dict(options)
    if "path" not in options:
      raise ValueError("make_task('jsonl'): missing option 'path'")
    path, shuffle = options.pop("path"), options.pop("shuffle", True)
    unknown = sorted(set(options) - set(_JSONL_OPTIONS))
    if unknown:
      raise ValueError(f"make_task('jsonl'): unknown options {unknown}; known: "
                       f"{['path', 'shuffle', *_JSONL_OPTIONS]}")
    return ListSource(load_jsonl(path, **options), shuffle=bool(shuffle))
  cls = TASKS[name]
  known = [f.name for f in dataclasses.fields(cls)]
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise ValueError(f"make_task({name!r}): unknown options {unknown}; known: {known}")
  return cls(**options)

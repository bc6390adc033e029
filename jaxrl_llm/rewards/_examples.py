"""Reading the reference out of an ``example`` by duck typing (no import of ``jaxrl_llm.data``).

An example may be a ``jaxrl_llm.data.Example`` (attributes ``answer`` and
``metadata``), a mapping (``{"answer": ..., "numbers": ..., "target": ...}``,
optionally with a nested ``"metadata"`` mapping) or, for answer rewards, the
bare reference answer (``str``/``int``). A missing field is a ``ValueError``
naming it: that is a bug in the caller's data, not in the completion.
"""

from collections.abc import Mapping
from fractions import Fraction

_MISSING = object()


def get_field(example, name: str):
  if isinstance(example, Mapping):
    if name in example:
      return example[name]
    meta = example.get("metadata")
  else:
    value = getattr(example, name, _MISSING)
    if value is not _MISSING:
      return value
    meta = getattr(example, "metadata", None)
  if isinstance(meta, Mapping) and name in meta:
    return meta[name]
  raise ValueError(f"reward: example of type {type(example).__name__} has no field {name!r} "
                   f"(looked at the example and its metadata)")


def reference_answer(example) -> str:
  if isinstance(example, (str, int, Fraction)) and not isinstance(example, bool):
    return str(example)
  answer = get_field(example, "answer")
  if isinstance(answer, bool) or not isinstance(answer, (str, int, Fraction)):
    raise ValueError(f"reward: example field 'answer' must be a str or int, "
                     f"got {type(answer).__name__}")
  return str(answer)


def countdown_problem(example) -> tuple[tuple[int, ...], int]:
  numbers, target = get_field(example, "numbers"), get_field(example, "target")
  try:
    numbers = tuple(int(n) for n in numbers)
    target = int(target)
  except (TypeError, ValueError):
    raise ValueError(f"reward: example fields 'numbers' / 'target' must be integers, got "
                     f"numbers={numbers!r}, target={target!r}") from None
  return numbers, target

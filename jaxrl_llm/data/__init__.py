"""Prompt tasks and datasets: seeded synthetic verifiable tasks with disjoint
train/test splits (arithmetic, Countdown), a GSM8K/MATH JSONL loader, and
stateless batching with a checkpointable :class:`DataPosition`.

Plain Python/NumPy on the host; this package does not import
``jaxrl_llm.models``, ``training`` or ``sampling`` (DESIGN.md layering).

Typical use::

  task = ArithmeticTask(digits=2, operators="+-", split="train")   # or make_task("arithmetic", ...)
  batch, pos = take_batch(task, DataPosition(seed=0, cursor=0), batch_size=32)
  prompts = [ex.prompt for ex in batch]        # "12+34=", ...
  eval_set = distinct_examples(dataclasses.replace(task, split="test"), 200)
"""

from jaxrl_llm.data.arithmetic import (
    ARITHMETIC_OPERATORS,
    ArithmeticTask,
    arithmetic_answer,
    arithmetic_key,
)
from jaxrl_llm.data.batching import ListSource, distinct_examples, iterate_batches, take_batch
from jaxrl_llm.data.countdown import COUNTDOWN_OPERATORS, CountdownTask, countdown_key
from jaxrl_llm.data.jsonl import ANSWER_FORMATS, gsm8k_final_answer, load_jsonl
from jaxrl_llm.data.registry import TASKS, make_task
from jaxrl_llm.data.splits import DEFAULT_SPLIT_SALT, SPLITS, split_of, split_unit
from jaxrl_llm.data.types import DataPosition, Example

Prompt = Example  # alias: a prompt record is an Example

__all__ = [
    "ANSWER_FORMATS", "ARITHMETIC_OPERATORS", "COUNTDOWN_OPERATORS", "DEFAULT_SPLIT_SALT",
    "SPLITS", "ArithmeticTask", "CountdownTask", "DataPosition", "Example", "ListSource",
    "Prompt", "TASKS", "arithmetic_answer", "arithmetic_key", "countdown_key", "distinct_examples",
    "gsm8k_final_answer", "iterate_batches", "load_jsonl", "make_task", "split_of", "split_unit", "take_batch",
]

"""Stateless batching: resume from a saved position replays the same batches."""

import numpy as np
import pytest

from jaxrl_llm.data import (ArithmeticTask, DataPosition, Example, ListSource, distinct_examples,
                            iterate_batches, take_batch)


def test_take_batch_walks_the_stream_and_resumes():
  task = ArithmeticTask(digits=2)
  pos = DataPosition(seed=3, cursor=0)
  seen = []
  for _ in range(3):
    batch, pos = take_batch(task, pos, 4)
    seen += batch
  assert pos == DataPosition(3, 12)
  assert seen == task.examples(3, 0, 12)
  # A checkpoint may restore the position as NumPy scalars: same batch.
  saved = DataPosition(np.int64(3), np.int64(8))
  batch, after = take_batch(task, saved, 4)
  assert batch == seen[8:12] and after == DataPosition(3, 12) and type(after.cursor) is int


def test_iterate_batches_matches_take_batch():
  task = ArithmeticTask(digits=2)
  it = iterate_batches(task, DataPosition(0, 5), 3)
  b1, p1 = next(it)
  b2, p2 = next(it)
  assert (p1, p2) == (DataPosition(0, 8), DataPosition(0, 11))
  assert b1 + b2 == task.examples(0, 5, 6)


def _items(n):
  return [Example(prompt=f"p{i}", answer=str(i)) for i in range(n)]


def test_list_source_epochs_are_permutations():
  src = ListSource(_items(7))
  stream = src.examples(seed=1, start=0, count=21)
  for epoch in range(3):
    assert sorted(ex.answer for ex in stream[7 * epoch:7 * epoch + 7]) == [str(i) for i in range(7)]
  orders = [[ex.answer for ex in stream[7 * e:7 * e + 7]] for e in range(3)]
  assert len({tuple(o) for o in orders}) > 1          # reshuffled across epochs
  # Batches crossing an epoch boundary agree with the stream.
  batch, pos = take_batch(src, DataPosition(1, 5), 4)
  assert batch == stream[5:9] and pos.cursor == 9
  assert src.examples(2, 0, 7) != src.examples(1, 0, 7)
  ordered = ListSource(_items(3), shuffle=False)
  assert [ex.answer for ex in ordered.examples(0, 1, 5)] == ["1", "2", "0", "1", "2"]


def test_distinct_examples():
  task = ArithmeticTask(digits=1, operators="+", split="train")  # small space: repeats happen
  exs = distinct_examples(task, 30, seed=0)
  assert len(exs) == 30 and len({ex.prompt for ex in exs}) == 30
  assert distinct_examples(task, 30, seed=0) == exs
  with pytest.raises(ValueError, match="distinct"):
    distinct_examples(ListSource(_items(3)), 5)


def test_bad_arguments():
  with pytest.raises(ValueError, match="batch_size"):
    take_batch(ArithmeticTask(), DataPosition(0, 0), 0)
  with pytest.raises(ValueError, match="seed"):
    take_batch(ArithmeticTask(), DataPosition(-1, 0), 2)
  with pytest.raises(ValueError, match="examples"):
    take_batch(object(), DataPosition(0, 0), 2)
  with pytest.raises(ValueError, match="empty"):
    ListSource([])

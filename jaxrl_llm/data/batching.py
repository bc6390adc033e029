"""Stateless batching with an explicit, checkpointable position.

A *source* is anything with ``examples(seed, start, count) -> list[Example]``
where the result depends only on its arguments: the synthetic tasks
(:class:`ArithmeticTask`, :class:`CountdownTask`, infinite streams) and
:class:`ListSource` (a finite list, reshuffled every epoch). The trainer keeps
a :class:`DataPosition` ``(seed, cursor)`` in its checkpoint;
``take_batch(source, position, n)`` returns the next ``n`` examples and the
advanced position, so resuming from a saved position replays exactly the
batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator, Optional, Sequence

import numpy as np

from jaxrl_llm.data.splits import check_seed_index
from jaxrl_llm.data.types import DataPosition, Example


@dataclasses.dataclass(frozen=True)
class ListSource:
  """A finite list of examples as an endless stream.

  With ``shuffle=True`` epoch ``e`` visits the examples in the order
  ``default_rng([seed, e]).permutation(len)``; stream index ``i`` is position
  ``i % len`` of epoch ``i // len``. With ``shuffle=False`` it cycles in file
  order.
  """

  items: Sequence[Example]
  shuffle: bool = True

  def __post_init__(self):
    if len(self.items) == 0:
      raise ValueError("ListSource: items is empty")

  def __len__(self) -> int:
    return len(self.items)

  def _order(self, seed: int, epoch: int) -> np.ndarray:
    n = len(self.items)
    if not self.shuffle:
      return np.arange(n)
    return np.random.default_rng([seed, epoch]).permutation(n)

  def examples(self, seed: int, start: int, count: int) -> list[Example]:
    seed, start = check_seed_index(seed, start)
    n, out, orders = len(self.items), [], {}
    for i in range(start, start + count):
      epoch = i // n
      if epoch not in orders:  # each epoch's permutation is computed once per call
        orders[epoch] = self._order(seed, epoch)
      out.append(self.items[int(orders[epoch][i % n])])
    return out

  def example(self, seed: int, index: int) -> Example:
    return self.examples(seed, index, 1)[0]


def take_batch(source, position: DataPosition, batch_size: int) -> tuple[list[Example], DataPosition]:
  """The next ``batch_size`` examples at ``position`` and the position after them."""
  if batch_size < 1:
    raise ValueError(f"take_batch: batch_size must be >= 1, got {batch_size}")
  if not hasattr(source, "examples"):
    raise ValueError(f"take_batch: source {type(source).__name__} has no examples(seed, start, count)")
  seed, cursor = check_seed_index(position[0], position[1])  # ints also when restored as arrays
  batch = source.examples(seed, cursor, batch_size)
  return batch, DataPosition(seed, cursor + batch_size)


def iterate_batches(source, position: DataPosition,
                    batch_size: int) -> Iterator[tuple[list[Example], DataPosition]]:
  """Endless ``(batch, position_after_batch)`` pairs starting at ``position``.

  Save the yielded position with the step that consumed the batch.
  """
  while True:
    batch, position = take_batch(source, position, batch_size)
    yield batch, position


def distinct_examples(source, num: int, seed: int = 0,
                      max_draws: Optional[int] = None) -> list[Example]:
  """``num`` examples with pairwise different prompts, for a fixed eval set.

  Draws the stream ``seed`` from index 0 and skips repeated prompts; errors
  if ``max_draws`` (default ``20 * num``) draws do not give ``num`` distinct.
  """
  if num < 1:
    raise ValueError(f"distinct_examples: num must be >= 1, got {num}")
  max_draws = 20 * num if max_draws is None else max_draws
  seen, out, index = set(), [], 0
  chunk = max(num, 16)
  while len(out) < num and index < max_draws:
    for ex in source.examples(seed, index, min(chunk, max_draws - index)):
      if ex.prompt not in seen:
        seen.add(ex.prompt)
        out.append(ex)
        if len(out) == num:
          break
    index += chunk
  if len(out) < num:
    raise ValueError(f"distinct_examples: only {len(out)} distinct prompts in {max_draws} draws, "
                     f"asked for num={num}")
  return out

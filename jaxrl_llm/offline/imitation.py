"""Few-expert imitation data: batches with an `expert` and a `mixed` part.

ReCOIL (Sikchi et al., "Dual RL", ICLR 2024) imitates from a few labelled
expert transitions plus arbitrary unlabelled data. Its setting (the SMODICE
"few-expert" protocol): one labelled expert trajectory, and an unlabelled set of
random or medium data plus K further expert trajectories that are *not*
labelled as expert (K = 200 in the paper). Every batch draws a fraction
`expert_ratio` from the expert data and the rest from the mixed data (two
samplers), so `update(state, batch)` keeps the shared signature with
`batch = ExpertMixedBatch(expert=..., mixed=...)`.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

import chex
import jax
import numpy as np

from jaxrl_llm.offline import datasets
from jaxrl_llm.offline.types import Transitions


class ExpertMixedBatch(NamedTuple):
  """Two aligned parts: labelled expert transitions and the unlabelled mixture.

  A batch ([B_E, ...] and [B_M, ...]), a stack of batches for `update_n`
  ([T, B_E, ...], [T, B_M, ...]) or the two whole datasets.
  """

  expert: Optional[Transitions]
  mixed: Optional[Transitions]


def split_episodes(data: Transitions, num_episodes: int) -> Tuple[Transitions, Transitions]:
  """(the first `num_episodes` episodes, the rest), split at `datasets.episode_ends`."""
  ends = np.flatnonzero(datasets.episode_ends(data))
  if not 0 <= num_episodes <= len(ends):
    raise ValueError(
        f"num_episodes must lie in [0, {len(ends)}] (the episodes in the data), "
        f"got {num_episodes}")
  cut = int(ends[num_episodes - 1]) + 1 if num_episodes else 0
  take = lambda sl: jax.tree.map(lambda x: np.asarray(x)[sl], data)
  return take(slice(0, cut)), take(slice(cut, None))


def few_expert_data(expert_data: Transitions, unlabelled_data: Transitions,
                    num_expert_episodes: int = 1,
                    num_unlabelled_expert_episodes: int = 0) -> ExpertMixedBatch:
  """The few-expert datasets: ExpertMixedBatch(expert, mixed), NumPy-backed.

  expert: the first `num_expert_episodes` episodes of `expert_data` (labelled).
  mixed:  `unlabelled_data` plus the next `num_unlabelled_expert_episodes`
          episodes of `expert_data`, with no label telling them apart.
  Rewards are kept but ReCOIL never reads them.
  """
  if num_expert_episodes < 1:
    raise ValueError(f"num_expert_episodes must be >= 1, got {num_expert_episodes}")
  expert, rest = split_episodes(expert_data, num_expert_episodes)
  mixed = unlabelled_data
  if num_unlabelled_expert_episodes:
    extra, _ = split_episodes(rest, num_unlabelled_expert_episodes)
    mixed = datasets.concatenate([unlabelled_data, extra])
  return ExpertMixedBatch(
      expert=datasets.validate_transitions(expert, "expert data"),
      mixed=datasets.validate_transitions(mixed, "mixed data"))


def expert_batch_size(batch_size: int, expert_ratio: float) -> int:
  """B_E = round(expert_ratio · B); both parts must be non-empty."""
  num_expert = int(round(expert_ratio * batch_size))
  if not 1 <= num_expert <= batch_size - 1:
    raise ValueError(
        f"expert_ratio {expert_ratio} with batch_size {batch_size} gives {num_expert} expert "
        f"rows; both the expert and the mixed part need at least one (0 < ratio < 1)")
  return num_expert


def sample_batch(key: chex.PRNGKey, data: ExpertMixedBatch, batch_size: int,
                 expert_ratio: float = 0.5) -> ExpertMixedBatch:
  """One batch: B_E uniform draws from `data.expert`, B − B_E from `data.mixed`."""
  num_expert = expert_batch_size(batch_size, expert_ratio)
  expert_key, mixed_key = jax.random.split(key)
  return ExpertMixedBatch(
      expert=datasets.sample_batch(expert_key, data.expert, num_expert),
      mixed=datasets.sample_batch(mixed_key, data.mixed, batch_size - num_expert))


def sample_batches(key: chex.PRNGKey, data: ExpertMixedBatch, batch_size: int,
                   num_batches: int, expert_ratio: float = 0.5) -> ExpertMixedBatch:
  """`num_batches` batches stacked on a leading axis, for `update_n` (lax.scan)."""
  num_expert = expert_batch_size(batch_size, expert_ratio)
  expert_key, mixed_key = jax.random.split(key)
  return ExpertMixedBatch(
      expert=datasets.sample_batches(expert_key, data.expert, num_expert, num_batches),
      mixed=datasets.sample_batches(mixed_key, data.mixed, batch_size - num_expert,
                                    num_batches))

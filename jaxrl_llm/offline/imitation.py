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

from typing import Any, Callable, NamedTuple, Optional, Tuple

import chex
import jax
import ml_collections
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


def expert_source(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of an experiment config that points at `config.expert`'s dataset.

  `config.expert` holds `dataset_path`, `dataset_format` and `seed` (the
  seed of a synthetic smoke-test expert set); the copy keeps every other
  field, so the experiment's own loader reads it.
  """
  source = ml_collections.ConfigDict(config.to_dict())
  source.dataset_path = config.expert.dataset_path
  source.dataset_format = config.expert.dataset_format
  source.seed = config.expert.seed
  return source


def training_data(config: ml_collections.ConfigDict, data: Transitions,
                  load_expert: Callable[[ml_collections.ConfigDict], Transitions]
                  ) -> Tuple[Any, Callable]:
  """What an offline training loop samples from, and its sampler.

  Without a `config.expert` block: `(data, datasets.sample_batches)`. With one
  (few-expert imitation, e.g. ReCOIL): the expert set is
  `load_expert(expert_source(config))`, split by `few_expert_data` into
  `num_labelled_episodes` labelled episodes and `num_unlabelled_episodes`
  episodes hidden in the mixture with `data`; the sampler draws
  `expert_ratio` of every batch from the expert part. Either sampler has the
  signature `(key, data, batch_size, num_batches)`.

  `config.expert.train_on` (optional) = "expert" or "mixed" returns only that
  part with the plain sampler: the single-dataset baselines of the few-expert
  protocol (e.g. BC on the labelled expert episodes, BC on the mixture), built
  from exactly the parts the two-part learner sees. "" or absent: both parts.
  """
  expert_cfg = config.get("expert")
  if expert_cfg is None:
    return data, datasets.sample_batches
  for field in ("dataset_path", "dataset_format", "seed", "num_labelled_episodes",
                "num_unlabelled_episodes", "expert_ratio"):
    if field not in expert_cfg:
      raise ValueError(f"config.expert.{field} is missing (few-expert imitation data)")
  train_on = expert_cfg.get("train_on", "") or ""
  if train_on not in ("", "expert", "mixed"):
    raise ValueError(
        f"config.expert.train_on must be '' (both parts), 'expert' or 'mixed', got {train_on!r}")
  mixture = few_expert_data(load_expert(expert_source(config)), data,
                            expert_cfg.num_labelled_episodes,
                            expert_cfg.num_unlabelled_episodes)
  if train_on:
    return getattr(mixture, train_on), datasets.sample_batches
  expert_batch_size(config.batch_size, expert_cfg.expert_ratio)  # validates the ratio

  def sample(key, data, batch_size, num_batches):
    return sample_batches(key, data, batch_size, num_batches, expert_cfg.expert_ratio)

  return mixture, sample

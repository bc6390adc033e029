"""Batches with a future state of the same trajectory in `Transitions.goals`.

Goal-conditioned and zero-shot agents (TD-JEPA, Bagatella et al. 2025; HILP;
OGBench's goal-conditioned baselines) train on tasks built from states the
data actually reaches. For transition t of an episode with last transition
T_e, the goal is the state reached k ≥ 1 steps later,

  k ~ Geometric(1 − γ_f)  (P(k) = (1 − γ_f) γ_f^(k−1)),   g_t = s_{min(t + k, T_e + 1)},

i.e. `next_observations[min(t + k − 1, T_e)]`: the discounted future-state
distribution of the behaviour policy, truncated at the episode's end. With
γ_f = 0 the goal is s_{t+1}. The batch stays a `Transitions` (its optional
`goals` field), so agents keep `update(state, batch)`.

Episode boundaries are `datasets.episode_ends` (terminals, timeouts, and
unmarked jumps `observations[i+1] ≠ next_observations[i]`).
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Tuple

import chex
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxrl_llm.offline import datasets
from jaxrl_llm.offline.types import Transitions


class FutureGoalData(NamedTuple):
  """A dataset and, per transition, the index of its episode's last transition."""

  transitions: Transitions
  last_index: np.ndarray  # [N] int32, last_index[i] ≥ i


def episode_last_index(data: Transitions) -> np.ndarray:
  """`last[i]` = the index of the last transition of transition i's episode."""
  ends = np.asarray(datasets.episode_ends(data), bool)
  n = ends.shape[0]
  marked = np.where(ends, np.arange(n), n)
  return np.minimum.accumulate(marked[::-1])[::-1].astype(np.int32)


def with_last_index(data: Transitions) -> FutureGoalData:
  """Precomputes the episode ends once, for repeated sampling."""
  return FutureGoalData(transitions=data, last_index=episode_last_index(data))


def _check_discount(discount: float) -> None:
  if not 0.0 <= float(discount) < 1.0:
    raise ValueError(f"future-goal discount must lie in [0, 1), got {discount}")


def future_indices(key: chex.PRNGKey, indices: jax.Array, last_index: jax.Array,
                   discount: float) -> jax.Array:
  """`j = min(i + k − 1, last[i])` with k ~ Geometric(1 − γ_f) on {1, 2, ...}.

  `next_observations[j]` is then s_{i+k}, clipped at the episode's last state.
  """
  _check_discount(discount)
  if discount == 0.0:
    offsets = jnp.ones(indices.shape, jnp.int32)
  else:
    # Inverse CDF: k = 1 + floor(log U / log γ_f), U ~ U(0, 1].
    u = 1.0 - jax.random.uniform(key, indices.shape)
    offsets = 1 + jnp.floor(jnp.log(u) / jnp.log(discount)).astype(jnp.int32)
    offsets = jnp.clip(offsets, 1, jnp.iinfo(jnp.int32).max // 2)
  return jnp.minimum(indices + offsets - 1, jnp.take(last_index, indices))


def _gather(data: FutureGoalData, idx: jax.Array, goal_idx: jax.Array) -> Transitions:
  batch = jax.tree.map(lambda x: jnp.take(jnp.asarray(x), idx, axis=0), data.transitions)
  goals = jnp.take(jnp.asarray(data.transitions.next_observations), goal_idx, axis=0)
  return batch._replace(goals=goals)


def sample_batch(key: chex.PRNGKey, data: FutureGoalData, batch_size: int,
                 discount: float) -> Transitions:
  """`batch_size` uniform transitions with `goals` = a future state of each."""
  if not isinstance(data, FutureGoalData):
    raise ValueError("future_goals.sample_batch needs a FutureGoalData "
                     "(future_goals.with_last_index(transitions))")
  index_key, goal_key = jax.random.split(key)
  n = data.transitions.observations.shape[0]
  idx = jax.random.randint(index_key, (batch_size,), 0, n)
  return _gather(data, idx, future_indices(goal_key, idx, jnp.asarray(data.last_index),
                                           discount))


def sample_batches(key: chex.PRNGKey, data: FutureGoalData, batch_size: int,
                   num_batches: int, discount: float) -> Transitions:
  """`num_batches` such batches stacked on a leading axis, for `update_n`."""
  if not isinstance(data, FutureGoalData):
    raise ValueError("future_goals.sample_batches needs a FutureGoalData "
                     "(future_goals.with_last_index(transitions))")
  index_key, goal_key = jax.random.split(key)
  n = data.transitions.observations.shape[0]
  idx = jax.random.randint(index_key, (num_batches, batch_size), 0, n)
  return _gather(data, idx, future_indices(goal_key, idx, jnp.asarray(data.last_index),
                                           discount))


def example_batch(data: Any) -> Any:
  """What to pass an agent's `init` as its example batch.

  For `FutureGoalData`, the whole dataset with `goals = next_observations`
  (s_{t+1}, a valid future state; fixes shapes and any whole-data statistics);
  anything else is returned unchanged.
  """
  if isinstance(data, FutureGoalData):
    return data.transitions._replace(goals=data.transitions.next_observations)
  return data


def training_data(config: ml_collections.ConfigDict, data: Transitions
                  ) -> Tuple[Any, Callable]:
  """What an offline loop samples from, and its sampler `(key, data, batch_size, num_batches)`.

  Without a `config.future_goals` block: `(data, datasets.sample_batches)`.
  With one (`discount` = γ_f): `(FutureGoalData, sampler)` whose batches carry
  `goals` (a future state from the same trajectory), as TD-JEPA needs.
  """
  block = config.get("future_goals")
  if block is None:
    return data, datasets.sample_batches
  if "discount" not in block:
    raise ValueError("config.future_goals.discount is missing (the geometric "
                     "future-state discount γ_f, e.g. 0.99)")
  discount = float(block.discount)
  _check_discount(discount)

  def sample(key, goal_data, batch_size, num_batches):
    return sample_batches(key, goal_data, batch_size, num_batches, discount)

  return with_last_index(data), sample

"""Future-state goals from the same trajectory (offline/future_goals.py)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxrl_llm.offline import datasets
from jaxrl_llm.offline import future_goals
from jaxrl_llm.offline.types import Transitions


def chain(episode_lengths, long_terminal=False):
  """Transitions whose observation is its time index t in a global counter, next t + 1.

  Episodes are laid end to end; the first ends by a timeout, the rest by a
  terminal (or, with long_terminal, a terminal on the first).
  """
  obs, nxt, term, tout = [], [], [], []
  t = 0
  for e, length in enumerate(episode_lengths):
    for i in range(length):
      obs.append(t)
      nxt.append(t + 1)
      last = i == length - 1
      term.append(float(last and (e > 0 or long_terminal)))
      tout.append(float(last and e == 0 and not long_terminal))
      t += 1
    t += 100  # a jump between episodes
  n = len(obs)
  f = lambda x: np.asarray(x, np.float32)
  return Transitions(observations=f(obs)[:, None], actions=np.zeros((n, 1), np.float32),
                     rewards=np.zeros(n, np.float32), next_observations=f(nxt)[:, None],
                     terminals=f(term), timeouts=f(tout))


def test_episode_last_index_hand_values():
  # Episodes [0, 1, 2], [3, 4], [5].
  np.testing.assert_array_equal(future_goals.episode_last_index(chain([3, 2, 1])),
                                [2, 2, 2, 4, 4, 5])
  # An unmarked boundary (observations jump) also ends an episode.
  data = chain([3, 2])._replace(terminals=np.zeros(5, np.float32),
                                timeouts=np.zeros(5, np.float32))
  np.testing.assert_array_equal(future_goals.episode_last_index(data), [2, 2, 2, 4, 4])


def test_future_indices_stay_in_the_episode_and_zero_discount_is_next_state():
  last = jnp.asarray(future_goals.episode_last_index(chain([3, 2, 1])))
  idx = jnp.arange(6)
  np.testing.assert_array_equal(future_goals.future_indices(jax.random.key(0), idx, last, 0.0),
                                idx)
  many = jnp.tile(idx, 500)
  j = np.asarray(future_goals.future_indices(jax.random.key(1), many, last, 0.9))
  assert np.all(j >= np.asarray(many)) and np.all(j <= np.asarray(last)[np.asarray(many)])
  with pytest.raises(ValueError, match="discount must lie in"):
    future_goals.future_indices(jax.random.key(0), idx, last, 1.0)


def test_geometric_offsets_have_the_right_mean():
  """On one long episode P(k) = (1 − γ) γ^(k − 1): E[k] = 1/(1 − γ) = 5 at γ = 0.8,
  and P(k = 1) = 0.2 (clipping at the end is negligible from the start)."""
  last = jnp.full((1,), 100_000, jnp.int32)
  idx = jnp.zeros(20_000, jnp.int32)
  k = np.asarray(future_goals.future_indices(jax.random.key(2), idx, last, 0.8)) + 1
  assert abs(k.mean() - 5.0) < 0.15  # std of the mean ≈ 4.5/√20000 = 0.03
  assert abs(np.mean(k == 1) - 0.2) < 0.015


def test_sampled_goals_are_future_states_of_the_same_episode():
  data = future_goals.with_last_index(chain([30, 20, 10]))
  batches = jax.jit(lambda k: future_goals.sample_batches(k, data, 64, 3, 0.9))(
      jax.random.key(3))
  assert batches.goals.shape == (3, 64, 1) and batches.observations.shape == (3, 64, 1)
  t, g = np.asarray(batches.observations[..., 0]), np.asarray(batches.goals[..., 0])
  last_obs = np.asarray(data.transitions.next_observations[:, 0])[data.last_index]
  # The goal's time index lies in [t + 1, the episode's final next state].
  index_of = {float(o): i for i, o in enumerate(np.asarray(data.transitions.observations[:, 0]))}
  final = np.vectorize(lambda o: last_obs[index_of[o]])(t)
  assert np.all(g >= t + 1) and np.all(g <= final)
  one = future_goals.sample_batch(jax.random.key(4), data, 8, 0.0)
  np.testing.assert_array_equal(one.goals, one.next_observations)


def test_training_data_block_and_errors():
  data = chain([5, 5])
  passthrough, sampler = future_goals.training_data(ml_collections.ConfigDict(), data)
  assert passthrough is data and sampler is datasets.sample_batches
  config = ml_collections.ConfigDict(dict(future_goals=dict(discount=0.5)))
  goal_data, sampler = future_goals.training_data(config, data)
  assert isinstance(goal_data, future_goals.FutureGoalData)
  assert sampler(jax.random.key(0), goal_data, 4, 2).goals.shape == (2, 4, 1)
  example = future_goals.example_batch(goal_data)
  np.testing.assert_array_equal(example.goals, data.next_observations)
  assert future_goals.example_batch(data) is data
  with pytest.raises(ValueError, match="config.future_goals.discount is missing"):
    future_goals.training_data(ml_collections.ConfigDict(dict(future_goals={})), data)
  with pytest.raises(ValueError, match="needs a FutureGoalData"):
    future_goals.sample_batches(jax.random.key(0), data, 4, 2, 0.5)

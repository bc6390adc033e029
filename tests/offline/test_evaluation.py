"""Tests of env-rollout evaluation (jaxrl_llm.offline.evaluation)."""

import gymnasium as gym
import jax
import numpy as np
import pytest

from jaxrl_llm.offline import evaluation


def _reference_returns(policy_fn, env_id, seeds, max_steps):
  """Independent plain loop: one env, one episode at a time."""
  out = []
  for s in seeds:
    env = gym.make(env_id, max_episode_steps=max_steps)
    obs, _ = env.reset(seed=s)
    total, done = 0.0, False
    while not done:
      obs, r, term, trunc, _ = env.step(policy_fn(obs[None])[0])
      total += r
      done = term or trunc
    out.append(total)
    env.close()
  return np.array(out)


def test_batched_rollouts_match_plain_loop_and_normalise():
  w = np.random.default_rng(0).normal(size=(11, 3)) * 0.3
  policy = lambda obs: np.tanh(obs @ w)  # deterministic, so returns depend only on the seeds
  calls = []

  def act(obs, key):
    calls.append(obs.shape)
    return policy(obs)

  res = evaluation.evaluate_policy(act, "Hopper-v5", 5, seed=3, num_envs=2, max_episode_steps=50,
                                   ref_min=-20.272305, ref_max=3234.3)
  expected = _reference_returns(policy, "Hopper-v5", [3, 4, 5, 6, 7], 50)
  np.testing.assert_allclose(res["returns"], expected, rtol=1e-6)  # obs passed as float32
  assert all(shape == (2, 11) for shape in calls)  # fixed batch shape -> one jit compile
  assert np.all(res["lengths"] <= 50) and np.all(res["lengths"] > 0)
  np.testing.assert_allclose(res["normalized"], 100 * (expected + 20.272305) / (3234.3 + 20.272305))
  assert res["normalized_mean"] == pytest.approx(res["normalized"].mean())
  # same result with another number of parallel envs
  res3 = evaluation.evaluate_policy(act, "Hopper-v5", 5, seed=3, num_envs=3, max_episode_steps=50)
  np.testing.assert_allclose(res3["returns"], res["returns"])
  assert "normalized" not in res3


def test_stochastic_policy_uses_key():
  act = lambda obs, key: np.asarray(jax.random.uniform(key, (obs.shape[0], 1), minval=-3, maxval=3))
  a = evaluation.evaluate_policy(act, "InvertedPendulum-v5", 3, seed=0, key=jax.random.PRNGKey(1))
  b = evaluation.evaluate_policy(act, "InvertedPendulum-v5", 3, seed=0, key=jax.random.PRNGKey(1))
  c = evaluation.evaluate_policy(act, "InvertedPendulum-v5", 3, seed=0, key=jax.random.PRNGKey(2))
  np.testing.assert_array_equal(a["returns"], b["returns"])
  assert not np.array_equal(a["lengths"], c["lengths"])


def test_bad_arguments():
  act = lambda obs, key: np.zeros((obs.shape[0], 3))
  with pytest.raises(ValueError, match="ref_max"):
    evaluation.evaluate_policy(act, "Hopper-v5", 2, ref_min=0.0)
  with pytest.raises(ValueError, match="num_episodes"):
    evaluation.evaluate_policy(act, "Hopper-v5", 0)
  with pytest.raises(ValueError, match="returned 1 actions"):
    evaluation.evaluate_policy(lambda o, k: np.zeros((1, 3)), "Hopper-v5", 2, num_envs=2, max_episode_steps=5)

"""Tests of the JAX SAC used to make behaviour policies."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.offline.generation import sac


def test_tanh_gaussian_log_prob_matches_change_of_variables():
  key = jax.random.PRNGKey(0)
  mean = jnp.array([[0.3, -1.2], [2.0, 0.0]])
  log_std = jnp.array([[-0.5, 0.1], [0.0, -1.0]])
  a, logp = sac.sample_tanh_gaussian(key, mean, log_std)
  # independent NumPy: recover u = atanh(a), then log N(u; mean, std) - sum log(1 - a^2)
  u = np.arctanh(np.asarray(a, np.float64))
  std = np.exp(np.asarray(log_std, np.float64))
  log_n = -0.5 * ((u - np.asarray(mean)) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
  expected = log_n.sum(-1) - np.log(1 - np.asarray(a, np.float64) ** 2).sum(-1)
  np.testing.assert_allclose(logp, expected, rtol=1e-4, atol=1e-4)
  assert np.all(np.abs(np.asarray(a)) < 1)


def test_critic_regresses_reward_when_discount_is_zero():
  # gamma = 0: the soft target reduces to r, so both Q heads must fit r(s, a).
  cfg = sac.SACConfig(hidden_dims=(32, 32), discount=0.0, critic_lr=3e-3, batch_size=16)
  key = jax.random.PRNGKey(1)
  state = sac.sac_init(key, obs_dim=3, act_dim=2, config=cfg)
  rng = np.random.default_rng(0)
  obs = rng.normal(size=(16, 3)).astype(np.float32)
  act = rng.uniform(-1, 1, (16, 2)).astype(np.float32)
  rew = (obs[:, 0] - act[:, 1]).astype(np.float32)
  batch = dict(observations=obs, actions=act, rewards=rew, next_observations=obs, masks=np.ones(16, np.float32))
  stacked = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (200,) + x.shape), batch)
  state, metrics = jax.jit(sac.sac_update_n)(state, stacked, key)
  assert int(state.step) == 200
  q = sac.TwinCritic(cfg.hidden_dims).apply(state.critic_params, obs, act)
  assert q.shape == (2, 16)
  np.testing.assert_allclose(q, np.broadcast_to(rew, (2, 16)), atol=0.1)
  # entropy above target (-2) pushes alpha down from 1
  assert float(jnp.exp(state.log_alpha)) < 1.0
  # target critic moved towards the critic but lags it (Polyak 0.005)
  leaves = jax.tree_util.tree_leaves(jax.tree_util.tree_map(lambda a, b: jnp.abs(a - b).max(),
                                                            state.critic_params, state.target_critic_params))
  assert max(float(x) for x in leaves) > 0


def test_act_deterministic_and_bounds():
  cfg = sac.SACConfig(hidden_dims=(8,))
  state = sac.sac_init(jax.random.PRNGKey(0), 4, 3, cfg)
  obs = jnp.ones((5, 4))
  a1 = sac.sac_act(state.actor_params, obs, jax.random.PRNGKey(1), hidden_dims=(8,), act_dim=3, deterministic=True)
  a2 = sac.sac_act(state.actor_params, obs, jax.random.PRNGKey(2), hidden_dims=(8,), act_dim=3, deterministic=True)
  np.testing.assert_array_equal(a1, a2)
  s1 = sac.sac_act(state.actor_params, obs, jax.random.PRNGKey(1), hidden_dims=(8,), act_dim=3)
  s2 = sac.sac_act(state.actor_params, obs, jax.random.PRNGKey(2), hidden_dims=(8,), act_dim=3)
  assert not np.array_equal(s1, s2)
  assert s1.shape == (5, 3) and np.all(np.abs(np.asarray(s1)) <= 1)

"""Tiny learning sanity checks on synthetic data (a few hundred steps each)."""

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.offline import agents
from jaxrl_llm.offline.types import Transitions


def _sample(data, rng, steps, batch):
  idx = rng.integers(0, data.observations.shape[0], (steps, batch))
  return jax.tree.map(lambda x: x[idx], data)


def test_deterministic_bc_fits_a_linear_expert():
  rng = np.random.default_rng(0)
  n, obs_dim, act_dim = 4096, 3, 2
  w = rng.normal(size=(obs_dim, act_dim)) * 0.3
  obs = rng.normal(size=(n, obs_dim)).astype(np.float32)
  data = Transitions(jnp.asarray(obs), jnp.asarray(obs @ w, jnp.float32),
                     jnp.zeros(n), jnp.asarray(obs), jnp.zeros(n), jnp.zeros(n))
  config = agents.bc.get_config()
  config.update(actor_type="deterministic", hidden_dims=(32, 32), actor_lr=1e-3)
  state = agents.bc.init(jax.random.key(0), data, config)
  state, metrics = agents.bc.update_n(state, _sample(data, rng, 500, 128))
  test_obs = rng.normal(size=(256, obs_dim)).astype(np.float32)
  expert = test_obs @ w
  mse = np.mean((np.asarray(agents.bc.act(state, test_obs, jax.random.key(0))) - expert) ** 2)
  # The expert's actions have mean square ≈ 0.04; the fit must be 20× better.
  assert mse < 0.05 * np.mean(expert**2), mse
  assert metrics["actor_loss"][-1] < 0.05 * metrics["actor_loss"][0]


def test_iql_value_approaches_the_expectile():
  """One state, a ~ U(−1, 1), reward r = a, every step terminal: Q(s, a) → a
  and V(s) → the τ-expectile of U(−1, 1). Solving
  τ ∫_m^1 (a − m) da = (1 − τ) ∫_{−1}^m (m − a) da gives
  m = (√τ − √(1 − τ)) / (√τ + √(1 − τ)), which is 0.5 at τ = 0.9."""
  rng = np.random.default_rng(1)
  n = 4096
  a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
  s = np.zeros((n, 1), np.float32)
  data = Transitions(jnp.asarray(s), jnp.asarray(a), jnp.asarray(a[:, 0]),
                     jnp.asarray(s), jnp.ones(n), jnp.zeros(n))
  config = agents.iql.get_config("antmaze")  # τ = 0.9
  config.update(hidden_dims=(32, 32), critic_lr=1e-3, value_lr=1e-3,
                target_update_rate=0.05)
  state = agents.iql.init(jax.random.key(0), data, config)
  state, metrics = agents.iql.update_n(state, _sample(data, rng, 1500, 256))
  tau = 0.9
  expected = (np.sqrt(tau) - np.sqrt(1 - tau)) / (np.sqrt(tau) + np.sqrt(1 - tau))
  assert abs(expected - 0.5) < 1e-12
  v_final = float(np.mean(metrics["v"][-50:]))
  assert abs(v_final - expected) < 0.03, v_final
  # A mean-regression V (τ = 0.5) would sit near 0, far below.
  assert v_final > 0.4

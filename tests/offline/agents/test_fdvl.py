"""f-DVL: one update against NumPy transcriptions of its losses, the smoothing
pairs, the paper's per-domain settings, and the implicit maximiser it learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline import agents
from jaxrl_llm.offline.agents import fdvl
from jaxrl_llm.offline.types import Transitions

OBS_DIM, ACT_DIM, BATCH = 3, 2, 12


def make_batch(seed, n=BATCH, reward_scale=30.0):
  rng = np.random.default_rng(seed)
  terminals = np.zeros(n, np.float32)
  terminals[::4] = 1.0
  return Transitions(
      observations=jnp.asarray(rng.normal(size=(n, OBS_DIM)), jnp.float32),
      actions=jnp.asarray(rng.uniform(-0.9, 0.9, (n, ACT_DIM)), jnp.float32),
      rewards=jnp.asarray(rng.normal(size=n) * reward_scale, jnp.float32),
      next_observations=jnp.asarray(rng.normal(size=(n, OBS_DIM)), jnp.float32),
      terminals=jnp.asarray(terminals), timeouts=jnp.zeros(n, jnp.float32))


def np_chi(x):
  return np.maximum(x + x**2 / 4, 0.0)


def np_gaussian_nll(mean, log_std, a):
  return np.sum(0.5 * ((a - mean) / np.exp(log_std)) ** 2 + log_std + 0.5 * np.log(2 * np.pi), -1)


@pytest.mark.parametrize("divergence,lam", [("chi-square", 0.7), ("total-variation", 0.8)])
def test_one_update_matches_numpy(divergence, lam):
  """V: λ f*(Q̄min − V) − (1 − λ)(Q̄min − V) on the data (no smoothing);
  actor: AWR with the *updated* V and the target critic; Q: standard Huber
  (δ = 20) on both heads, summed, onto r + γ(1 − d)V'(s')."""
  batch = make_batch(0)
  config = fdvl.get_config("locomotion")
  config.update(hidden_dims=(8, 8), divergence=divergence, dual_temperature=lam,
                sample_random_times=0, value_lr=1e-2)
  state = fdvl.init(jax.random.key(0), batch, config)
  new_state, metrics = fdvl.update(state, batch)
  nets = fdvl._networks(state.config)
  actor, critic, value = (nets[k].module for k in ("actor", "critic", "value"))
  obs, act = batch.observations, np.asarray(batch.actions)

  q_target = np.asarray(critic.apply(state.target_critic_params, obs, act)).min(0)
  x = q_target - np.asarray(value.apply(state.value_params, obs))
  f_star = np_chi(x) if divergence == "chi-square" else np.maximum(x, 0.0)
  np.testing.assert_allclose(metrics["value_loss"], np.mean(lam * f_star - (1 - lam) * x),
                             rtol=1e-5)

  adv = q_target - np.asarray(value.apply(new_state.value_params, obs))
  w = np.minimum(np.exp(3.0 * adv), 100.0)
  mean, log_std = (np.asarray(t) for t in actor.apply(state.actor_params, obs))
  np.testing.assert_allclose(metrics["actor_loss"], np.mean(w * np_gaussian_nll(mean, log_std, act)),
                             rtol=1e-5)

  y = (np.asarray(batch.rewards) + 0.99 * (1 - np.asarray(batch.terminals))
       * np.asarray(value.apply(new_state.value_params, batch.next_observations)))
  diff = np.asarray(critic.apply(state.critic_params, obs, act)) - y[None]
  assert (np.abs(diff) > 20).any() and (np.abs(diff) < 20).any()  # both Huber branches
  huber = np.where(np.abs(diff) <= 20, 0.5 * diff**2, 20 * (np.abs(diff) - 10))
  np.testing.assert_allclose(metrics["critic_loss"], huber.sum(0).mean(), rtol=1e-5)
  # The target critic moved by Polyak 0.005 towards the new critic.
  jax.tree.map(lambda t0, c1, t1: np.testing.assert_allclose(
      t1, 0.995 * np.asarray(t0) + 0.005 * np.asarray(c1), rtol=1e-5, atol=1e-7),
      state.target_critic_params, new_state.critic_params, new_state.target_critic_params)


def test_value_net_has_layer_norm_and_critic_none():
  config = fdvl.get_config()
  config.hidden_dims = (8, 8)
  state = fdvl.init(jax.random.key(0), make_batch(0), config)
  assert "LayerNorm_0" in state.value_params["params"]["MLP_0"]
  assert not any("LayerNorm" in k for k in
                 state.critic_params["params"]["VmapCritic_0"]["MLP_0"])


def test_smoothing_pairs_are_data_then_states_with_uniform_actions():
  batch = make_batch(1, n=200)
  obs, act = fdvl.value_loss_inputs(jax.random.key(3), batch.observations, batch.actions, 1)
  assert obs.shape == (400, OBS_DIM) and act.shape == (400, ACT_DIM)
  np.testing.assert_array_equal(obs[:200], batch.observations)
  np.testing.assert_array_equal(act[:200], batch.actions)
  np.testing.assert_array_equal(obs[200:], batch.observations)  # the same states again
  random = np.asarray(act[200:])
  assert random.min() >= -1.0 and random.max() <= 1.0
  # U(−1, 1): mean 0 (std of the mean of 400 draws ≈ 0.029), variance 1/3.
  assert abs(random.mean()) < 0.15 and abs(random.var() - 1 / 3) < 0.08
  obs2, act2 = fdvl.value_loss_inputs(jax.random.key(3), batch.observations, batch.actions, 2)
  assert obs2.shape == (600, OBS_DIM)
  np.testing.assert_array_equal(obs2[200:202], np.repeat(batch.observations[:1], 2, 0))
  same = fdvl.value_loss_inputs(jax.random.key(3), batch.observations, batch.actions, 0)
  np.testing.assert_array_equal(same[1], batch.actions)
  noisy = fdvl.value_loss_inputs(jax.random.key(3), batch.observations, batch.actions, 0, 0.1)
  delta = np.asarray(noisy[1]) - np.asarray(batch.actions)
  assert np.abs(delta).max() <= 0.5 + 1e-6 and np.abs(delta).max() > 0
  assert np.all(np.abs(np.asarray(noisy[1])) <= 1.0)


def test_reverse_kl_value_loss_is_the_gumbel_loss_on_the_smoothed_batch():
  """With smoothing the V loss averages over 2B pairs; with λ = 1 and the
  reverse KL it is the stabilised Gumbel loss of Q̄min − V on those pairs."""
  batch = make_batch(2)
  config = fdvl.get_config("kitchen")  # reverse-KL, λ = 8, smoothing on
  config.update(hidden_dims=(8, 8), dual_temperature=1.0, actor_dropout_rate=0.0)
  state = fdvl.init(jax.random.key(1), batch, config)
  _, metrics = fdvl.update(state, batch)
  nets = fdvl._networks(state.config)
  smooth_key = jax.random.split(jax.random.split(state.rng)[1], 3)[0]  # update's key order
  obs, act = fdvl.value_loss_inputs(smooth_key, batch.observations, batch.actions, 1)
  x = (np.asarray(nets["critic"].module.apply(state.target_critic_params, obs, act)).min(0)
       - np.asarray(nets["value"].module.apply(state.value_params, obs)))
  z = np.minimum(x, 7.0)
  m = max(z.max(), -1.0)
  expected = np.mean(np.exp(-m) * (np.exp(z) - z - 1))
  np.testing.assert_allclose(metrics["value_loss"], expected, rtol=1e-5)


def test_paper_settings_and_config_errors():
  loco, ant, kitchen = (fdvl.get_config(d) for d in ("locomotion", "antmaze", "kitchen"))
  assert (loco.divergence, loco.dual_temperature, loco.sample_random_times, loco.temperature,
          loco.max_clip) == ("chi-square", 1.0, 1, 3.0, 5.0)
  assert (ant.divergence, ant.dual_temperature, ant.temperature, ant.cosine_decay,
          ant.value_dropout_rate) == ("total-variation", 0.8, 10.0, False, 0.5)
  assert (kitchen.divergence, kitchen.dual_temperature, kitchen.temperature,
          kitchen.actor_dropout_rate) == ("reverse-kl", 8.0, 0.5, 0.1)
  assert loco.huber_delta == 20.0 and loco.value_layer_norm
  with pytest.raises(ValueError, match="unknown f-DVL domain"):
    fdvl.get_config("atari")
  batch = make_batch(0)
  for field, bad, match in [("divergence", "hellinger", "config.divergence"),
                            ("dual_temperature", 0.0, "dual_temperature"),
                            ("sample_random_times", -1, "sample_random_times"),
                            ("huber_delta", -1.0, "delta")]:
    config = fdvl.get_config()
    config[field] = bad
    with pytest.raises(ValueError, match=match):
      fdvl.init(jax.random.key(0), batch, config)


def test_value_dropout_and_extra_value_updates_run():
  batch = make_batch(3)
  config = fdvl.get_config("antmaze")  # value dropout 0.5
  config.update(hidden_dims=(8, 8), num_value_updates=2)
  state = fdvl.init(jax.random.key(0), batch, config)
  new_state, metrics = fdvl.update(state, batch)
  assert all(np.isfinite(v) for v in metrics.values())
  # Two Adam steps on V: the value optimiser has counted both.
  assert int(jax.tree.leaves(new_state.value_opt_state)[0]) == 2
  # Acting and values() are deterministic (dropout off outside the V loss).
  v1 = fdvl.values(new_state, batch.observations)
  np.testing.assert_array_equal(v1, fdvl.values(new_state, batch.observations))


def test_chi_square_value_learns_the_implicit_maximiser():
  """One state, a ~ U(−1, 1), r = a, every step terminal, so Q(s, a) → a. The
  χ² dual-V loss with λ = 0.8 is minimised where λ E[f*'(a − V)] = 1 − λ; for
  V ∈ (−1, 1) only a > V contributes, f*'(x) = 1 + x/2, so with u = 1 − V:
  ½ (u + u²/4) = 0.25, u = −2 + √6, V = 3 − √6 ≈ 0.551 (above the 0.5 that the
  0.9-expectile would give, far above the mean 0). Smoothing actions are also
  U(−1, 1) here, so they do not move the answer."""
  rng = np.random.default_rng(1)
  n = 4096
  a = rng.uniform(-1, 1, (n, 1)).astype(np.float32)
  s = np.zeros((n, 1), np.float32)
  data = Transitions(jnp.asarray(s), jnp.asarray(a), jnp.asarray(a[:, 0]), jnp.asarray(s),
                     jnp.ones(n), jnp.zeros(n))
  config = fdvl.get_config("locomotion")
  config.update(hidden_dims=(32, 32), critic_lr=1e-3, value_lr=1e-3, target_update_rate=0.05,
                dual_temperature=0.8)
  state = fdvl.init(jax.random.key(0), data, config)
  idx = rng.integers(0, n, (1500, 256))
  state, metrics = fdvl.update_n(state, jax.tree.map(lambda x: x[idx], data))
  expected = 3 - np.sqrt(6)
  v_final = float(np.mean(metrics["v"][-50:]))
  assert abs(v_final - expected) < 0.04, v_final
  assert agents.get("fdvl") is fdvl

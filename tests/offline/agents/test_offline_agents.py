"""BC / IQL / RIQL: one update against NumPy transcriptions of the losses,
q_values / values, registry and input errors. The API checks every agent
shares (update, update_n vs sequential updates, act, jit, bad batches) are in
test_agent_api.py."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline import agents
from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.types import Transitions

from _agent_batches import ACT_DIM, BATCH, HIDDEN, OBS_DIM, make_batch


def small_config(name, **overrides):
  config = agents.get(name).get_config()
  config.hidden_dims = HIDDEN
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def stepped():
  """Each agent initialised and stepped once (one jit compile per agent)."""
  batch = make_batch(0)
  out = {}
  for name, cfg in [("bc", small_config("bc")),
                    ("iql", small_config("iql", actor_lr=1e-2)),
                    ("riql", small_config("riql", num_critics=3, quantile=0.25,
                                          huber_sigma=0.5, q_target_max=2.0))]:
    agent = agents.get(name)
    state = agent.init(jax.random.key(1), batch, cfg)
    new_state, metrics = agent.update(state, batch)
    out[name] = (state, new_state, metrics)
  return batch, out


def _np(tree):
  return jax.tree.map(np.asarray, tree)


def np_gaussian_log_prob(mean, log_std, a):
  std = np.exp(log_std)
  return np.sum(-0.5 * ((a - mean) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi), -1)


def test_bc_loss_is_gaussian_nll(stepped):
  batch, out = stepped
  state, _, metrics = out["bc"]
  mean, log_std = common.make_actor(state.config).apply(state.actor_params,
                                                        batch.observations)
  expected = -np.mean(np_gaussian_log_prob(np.asarray(mean), np.asarray(log_std),
                                           np.asarray(batch.actions)))
  np.testing.assert_allclose(metrics["actor_loss"], expected, rtol=1e-5)
  # log_std starts at 0, so the loss is ½·||a − μ||² + d·½·log 2π per sample.
  assert float(metrics["actor_std"]) == pytest.approx(1.0)


def _reach_data(seed, n):
  """1-D reaching: s, g ~ U(−1, 1), a = (g − s) / 2. Without g the best action is
  E[a | s] = −s/2, so any goal-blind policy has MSE ≥ Var(g)/4 = 1/12."""
  rng = np.random.default_rng(seed)
  s, g = rng.uniform(-1, 1, (n, 1)), rng.uniform(-1, 1, (n, 1))
  zeros = jnp.zeros(n, jnp.float32)
  return Transitions(observations=jnp.asarray(s, jnp.float32),
                     actions=jnp.asarray((g - s) / 2, jnp.float32), rewards=zeros,
                     next_observations=jnp.asarray(s, jnp.float32), terminals=zeros,
                     timeouts=zeros, goals=jnp.asarray(g, jnp.float32))


@pytest.mark.parametrize("seed", [0, 1])
def test_gcbc_clones_a_goal_dependent_action_that_bc_cannot(seed):
  """goal_conditioned=True: the actor reads [s, g]; after 400 steps its held-out MSE is
  far below the 1/12 floor of any goal-blind policy, which plain BC sits at."""
  from jaxrl_llm.offline.types import goal_observations
  train, test = _reach_data(seed, 400 * 64), _reach_data(seed + 100, 512)
  batches = jax.tree.map(lambda x: x.reshape(400, 64, *x.shape[1:]), train)
  mse = {}
  for conditioned in (True, False):
    cfg = small_config("bc", actor_type="deterministic", hidden_dims=(64, 64), actor_lr=3e-3,
                       goal_conditioned=conditioned)
    state = agents.bc.init(jax.random.key(seed), jax.tree.map(lambda x: x[0], batches), cfg)
    state, _ = agents.bc.update_n(state, batches)
    obs = goal_observations(test.observations, test.goals) if conditioned else test.observations
    pred = agents.bc.act(state, obs, jax.random.key(0))
    mse[conditioned] = float(jnp.mean(jnp.square(pred - test.actions)))
  assert mse[True] < 0.01, mse   # measured 1.0e-4 to 1.4e-4 (seeds 0-4)
  assert mse[False] > 0.07, mse  # the floor is 1/12 = 0.083; measured 0.080 to 0.087
  cfg = small_config("bc", goal_conditioned=True)
  with pytest.raises(ValueError, match="batch.goals is missing"):
    agents.bc.init(jax.random.key(0), make_batch(0), cfg)


def test_iql_losses_and_update_order(stepped):
  """Value loss uses the target twin-Q min and the old V; actor and Q use the
  *updated* V; Q regresses r + γ(1 − terminal)V'(s') on both heads; the target
  moves by Polyak 0.005 towards the new critic."""
  batch, out = stepped
  state, new_state, metrics = out["iql"]
  cfg = state.config
  from jaxrl_llm.offline.agents import iql
  nets = iql._networks(cfg)
  actor, critic, value = (nets[k].module for k in ("actor", "critic", "value"))
  obs, act = batch.observations, batch.actions
  r, d = np.asarray(batch.rewards), np.asarray(batch.terminals)
  q_target = np.asarray(critic.apply(state.target_critic_params, obs, act)).min(0)
  u = q_target - np.asarray(value.apply(state.value_params, obs))
  expected_v = np.mean(np.where(u < 0, 1 - cfg.expectile, cfg.expectile) * u**2)
  np.testing.assert_allclose(metrics["value_loss"], expected_v, rtol=1e-5)

  adv = q_target - np.asarray(value.apply(new_state.value_params, obs))
  w = np.minimum(np.exp(cfg.temperature * adv), 100.0)
  mean, log_std = actor.apply(state.actor_params, obs)
  expected_pi = -np.mean(w * np_gaussian_log_prob(np.asarray(mean), np.asarray(log_std),
                                                  np.asarray(act)))
  np.testing.assert_allclose(metrics["actor_loss"], expected_pi, rtol=1e-5)

  next_v = np.asarray(value.apply(new_state.value_params, batch.next_observations))
  y = r + 0.99 * (1 - d) * next_v  # timeouts do not cut bootstrapping
  q = np.asarray(critic.apply(state.critic_params, obs, act))
  expected_q = np.mean(((q - y) ** 2).sum(0))
  np.testing.assert_allclose(metrics["critic_loss"], expected_q, rtol=1e-5)

  jax.tree.map(
      lambda t0, c1, t1: np.testing.assert_allclose(
          t1, 0.995 * np.asarray(t0) + 0.005 * np.asarray(c1), rtol=1e-5, atol=1e-7),
      state.target_critic_params, new_state.critic_params,
      new_state.target_critic_params)


def test_riql_losses_and_update_order(stepped):
  """Observations normalised; V regresses the α-quantile of the target
  ensemble; Q uses the *old* V(s'), clipped targets and Huber(δ = 1/σ²)
  averaged over members; the deterministic actor's weighted MSE uses the old V."""
  batch, out = stepped
  state, new_state, metrics = out["riql"]
  cfg = state.config
  from jaxrl_llm.offline.agents import riql
  nets = riql._networks(cfg)
  actor, critic, value = (nets[k].module for k in ("actor", "critic", "value"))
  both = np.concatenate([np.asarray(batch.observations),
                         np.asarray(batch.next_observations)])
  mu, sd = both.mean(0), both.std(0) + 1e-3
  np.testing.assert_allclose(state.obs_mean, mu, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(state.obs_std, sd, rtol=1e-5)
  obs = (np.asarray(batch.observations) - mu) / sd
  next_obs = (np.asarray(batch.next_observations) - mu) / sd
  act = np.asarray(batch.actions)
  r, d = np.asarray(batch.rewards), np.asarray(batch.terminals)

  q_all = np.asarray(critic.apply(state.target_critic_params, obs, act))
  assert q_all.shape == (3, BATCH)
  q_alpha = np.quantile(q_all, 0.25, axis=0)  # NumPy's default rule is linear
  v_old = np.asarray(value.apply(state.value_params, obs))
  u = q_alpha - v_old
  expected_v = np.mean(np.where(u < 0, 0.3, 0.7) * u**2)
  np.testing.assert_allclose(metrics["value_loss"], expected_v, rtol=1e-5)

  y = r + 0.99 * (1 - d) * np.asarray(value.apply(state.value_params, next_obs))
  y = np.clip(y, -100.0, 2.0)
  assert (y == 2.0).any()  # the clip is exercised
  q = np.asarray(critic.apply(state.critic_params, obs, act))
  delta = 1 / 0.5**2
  x = np.abs(y[None] - q)
  huber = np.where(x < delta, x**2 / (2 * delta), x - delta / 2)
  np.testing.assert_allclose(metrics["critic_loss"], huber.mean(), rtol=1e-5)

  w = np.minimum(np.exp(3.0 * (q_alpha - v_old)), 100.0)
  pi = np.asarray(actor.apply(state.actor_params, obs))
  expected_pi = np.mean(w * ((pi - act) ** 2).sum(-1))
  np.testing.assert_allclose(metrics["actor_loss"], expected_pi, rtol=1e-5)


def test_riql_act_normalises_observations(stepped):
  batch, out = stepped
  state = out["riql"][1]
  obs = np.asarray(batch.observations[:3])
  raw = common.make_actor(state.config).apply(
      state.actor_params, (obs - np.asarray(state.obs_mean)) / np.asarray(state.obs_std))
  np.testing.assert_allclose(agents.riql.act(state, obs, jax.random.key(0)),
                             np.clip(raw, -1, 1), rtol=1e-5)


def np_ensemble_critic(params, obs, act):
  """NumPy ReLU-MLP forward of the vmapped critic: [K, N]."""
  mlp = params["params"]["VmapCritic_0"]["MLP_0"]
  layers = [mlp[f"Dense_{i}"] for i in range(len(mlp))]
  x = np.concatenate([obs, act], -1)[None]  # [1, N, in]
  for i, layer in enumerate(layers):
    x = np.einsum("kni,kio->kno", x, np.asarray(layer["kernel"])) + np.asarray(layer["bias"])[:, None]
    if i + 1 < len(layers):
      x = np.maximum(x, 0.0)
  return x[..., 0]


@pytest.mark.parametrize("name", ["iql", "riql"])
def test_q_values_match_numpy_forward_and_differentiate(stepped, name):
  batch, out = stepped
  state = out[name][1]
  obs, act = np.asarray(batch.observations), np.asarray(batch.actions)
  agent = agents.get(name)
  q = np.asarray(agent.q_values(state, obs, act))
  k = 2 if name == "iql" else 3
  assert q.shape == (k, BATCH)
  net_obs = obs
  if name == "riql":  # RIQL's critic sees normalised observations
    net_obs = (obs - np.asarray(state.obs_mean)) / np.asarray(state.obs_std)
  np.testing.assert_allclose(q, np_ensemble_critic(state.critic_params, net_obs, act),
                             rtol=1e-5, atol=1e-6)
  grad = jax.grad(lambda o: jnp.mean(agent.q_values(state, o, act)))(jnp.asarray(obs))
  assert grad.shape == obs.shape and np.all(np.isfinite(grad)) and np.any(grad != 0)


@pytest.mark.parametrize("name", ["iql", "riql"])
def test_values_match_numpy_forward(stepped, name):
  batch, out = stepped
  state = out[name][1]
  obs = np.asarray(batch.observations)
  v = np.asarray(agents.get(name).values(state, obs))
  assert v.shape == (BATCH,)
  x = obs
  if name == "riql":  # RIQL's value net sees normalised observations
    x = (obs - np.asarray(state.obs_mean)) / np.asarray(state.obs_std)
  mlp = state.value_params["params"]["MLP_0"]
  assert "LayerNorm_0" not in mlp  # the default configs: plain ReLU MLP
  dense = [mlp[f"Dense_{i}"] for i in range(len(mlp))]
  for i, layer in enumerate(dense):
    x = x @ np.asarray(layer["kernel"]) + np.asarray(layer["bias"])
    if i + 1 < len(dense):
      x = np.maximum(x, 0.0)
  np.testing.assert_allclose(v, x[:, 0], rtol=1e-5, atol=1e-6)


def test_unknown_agent_lists_known_names():
  with pytest.raises(ValueError, match="unknown agent 'cql'.*bc, fdvl, iql, recoil, riql"):
    agents.get("cql")
  assert agents.get("IQL") is agents.iql


def test_bad_batch_and_config_errors():
  batch = make_batch(0)
  bad = batch._replace(rewards=batch.rewards[:-1])
  with pytest.raises(ValueError, match="batch.rewards"):
    agents.iql.init(jax.random.key(0), bad, small_config("iql"))
  with pytest.raises(ValueError, match="batch.terminals is missing"):
    agents.bc.init(jax.random.key(0), batch._replace(terminals=None), small_config("bc"))
  cfg = small_config("bc")
  cfg.unknown_option = 1
  with pytest.raises(ValueError, match="unknown_option"):
    agents.bc.init(jax.random.key(0), batch, cfg)
  with pytest.raises(ValueError, match="actor_type"):
    agents.bc.init(jax.random.key(0), batch, small_config("bc", actor_type="beta"))
  with pytest.raises(ValueError, match="unknown RIQL task"):
    agents.riql.get_config("hopper/random/nothing")
  with pytest.raises(ValueError, match="unknown IQL domain"):
    agents.iql.get_config("atari")


def test_paper_settings_in_configs():
  assert (agents.iql.get_config("antmaze").expectile,
          agents.iql.get_config("antmaze").temperature) == (0.9, 10.0)
  kitchen = agents.iql.get_config("kitchen")
  assert (kitchen.expectile, kitchen.temperature, kitchen.actor_dropout_rate) == (0.7, 0.5, 0.1)
  cfg = agents.riql.get_config("hopper/random/observations")
  assert (cfg.huber_sigma, cfg.quantile, cfg.num_critics) == (0.1, 0.25, 3)
  cfg = agents.riql.get_config("walker2d/adversarial/rewards")
  assert (cfg.huber_sigma, cfg.quantile, cfg.num_critics) == (3.0, 0.1, 5)


def test_agents_do_not_import_the_llm_stack():
  """DESIGN.md layering: offline/ never imports models, sampling, losses, ..."""
  import subprocess
  import sys

  code = ("import sys, jaxrl_llm.offline.agents, jaxrl_llm.offline.networks; "
          "print(sorted(m for m in sys.modules if m.startswith('jaxrl_llm.')))")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       check=True).stdout
  banned = ("models", "sampling", "losses", "rewards", "training", "data", "sharding")
  loaded = eval(out)
  assert not [m for m in loaded if m.split(".")[1] in banned], loaded
  assert "jaxrl_llm.offline.agents.iql" in loaded

"""ReCOIL: the Q objective on hand-computed values (both halves of the batch),
one update against a NumPy transcription, reward-freeness and batch errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline import agents
from jaxrl_llm.offline.agents import recoil
from jaxrl_llm.offline.imitation import ExpertMixedBatch
from jaxrl_llm.offline.types import Transitions

OBS_DIM, ACT_DIM = 3, 2
WEIGHTS = dict(contrastive_weight=0.5, td_weight=0.25, expert_q_target=10.0,
               expert_target_weight=0.5, q_min=-200.0, hinge_weight=1.0)

# K = 2 heads; expert part B_E = 2, mixed part B_M = 2.
Q_EXPERT = jnp.array([[1.0, 3.0], [2.0, 2.0]])
V_EXPERT = jnp.array([0.5, 1.5])
Q_MIXED = jnp.array([[-1.0, -250.0], [0.0, -210.0]])
Y_EXPERT = jnp.array([2.0, 2.0])
Y_MIXED = jnp.array([0.0, -200.0])


def test_q_objective_hand_values_both_halves():
  """Head 0: contrastive −((1 + 3)/2 − (0.5 + 1.5)/2) = −1; TD over all four rows
  (1 + 1 + 1 + 50²)/4 = 625.75; expert target ((1−10)² + (3−10)²)/2 = 65; hinge
  (0 + (−200 + 250))/2 = 25. Head 1: −1; (0 + 0 + 0 + 10²)/4 = 25; 64; (0 + 10)/2 = 5.
  Head means −1, 325.375, 64.5, 15; L = 0.5·(−1) + 0.25·325.375 + 0.5·64.5 + 15."""
  loss, terms = recoil.recoil_q_loss(Q_EXPERT, Q_MIXED, V_EXPERT, Y_EXPERT, Y_MIXED, **WEIGHTS)
  np.testing.assert_allclose(loss, 128.09375, rtol=1e-6)
  np.testing.assert_allclose([terms["q_contrastive"], terms["q_td"], terms["q_expert_target"],
                              terms["q_hinge"]], [-1.0, 325.375, 64.5, 15.0], rtol=1e-6)
  # TD on the mixed half only: head 0 (1 + 2500)/2, head 1 (0 + 100)/2 → 650.25.
  loss_m, terms_m = recoil.recoil_q_loss(Q_EXPERT, Q_MIXED, V_EXPERT, Y_EXPERT, Y_MIXED,
                                         td_on_expert=False, **WEIGHTS)
  np.testing.assert_allclose(terms_m["q_td"], 650.25, rtol=1e-6)
  np.testing.assert_allclose(loss_m, -0.5 + 0.25 * 650.25 + 32.25 + 15.0, rtol=1e-6)


def test_q_objective_gradients_by_hand():
  """dL/dQ_E[k, i] = ½[−w_c/B_E + w_td·2(Q − y)/4 + w_E·2(Q − Q*)/B_E];
  dL/dQ_M[k, j] = ½[w_td·2(Q − y)/4 − w_h·1(Q < Q_min)/B_M]; none into V or y."""
  grads = jax.grad(lambda *a: recoil.recoil_q_loss(*a, **WEIGHTS)[0],
                   argnums=(0, 1, 2, 3, 4))(Q_EXPERT, Q_MIXED, V_EXPERT, Y_EXPERT, Y_MIXED)
  g_qe, g_qm, g_v, g_ye, g_ym = (np.asarray(g) for g in grads)
  # Q_E[0, 0] = 1: ½(−0.25 − 0.125 − 4.5); Q_E[0, 1] = 3: ½(−0.25 + 0.125 − 3.5);
  # Q_E[1, ·] = 2: ½(−0.25 + 0 − 4).
  np.testing.assert_allclose(g_qe, [[-2.4375, -1.8125], [-2.125, -2.125]], rtol=1e-6)
  # Q_M[0, 0] = −1: ½(−0.125); Q_M[0, 1] = −250: ½(−6.25 − 0.5); Q_M[1, 0] = 0: 0;
  # Q_M[1, 1] = −210: ½(−1.25 − 0.5).
  np.testing.assert_allclose(g_qm, [[-0.0625, -3.375], [0.0, -0.875]], rtol=1e-6)
  for g in (g_v, g_ye, g_ym):
    np.testing.assert_array_equal(g, np.zeros_like(g))


def test_absorbing_td_target_hand_values():
  # m = 1: −2 + 0.9·10 = 7; m = 0 (terminal): −2 + 0.9·(−200) = −182.
  y = recoil.absorbing_td_target(jnp.array([1.0, 0.0]), jnp.array([10.0, 10.0]), 0.9,
                                 -2.0, -200.0)
  np.testing.assert_allclose(y, [7.0, -182.0])


def part(seed, n, terminal_every=0):
  rng = np.random.default_rng(seed)
  terminals = np.zeros(n, np.float32)
  if terminal_every:
    terminals[::terminal_every] = 1.0
  return Transitions(
      observations=jnp.asarray(rng.normal(size=(n, OBS_DIM)), jnp.float32),
      actions=jnp.asarray(rng.uniform(-0.9, 0.9, (n, ACT_DIM)), jnp.float32),
      rewards=jnp.asarray(rng.normal(size=n), jnp.float32),
      next_observations=jnp.asarray(rng.normal(size=(n, OBS_DIM)), jnp.float32),
      terminals=jnp.asarray(terminals), timeouts=jnp.zeros(n, jnp.float32))


def make_batch(seed=0):
  return ExpertMixedBatch(expert=part(seed, 4), mixed=part(seed + 100, 6, terminal_every=3))


@pytest.fixture(scope="module")
def stepped():
  batch = make_batch()
  config = recoil.get_config()
  config.update(hidden_dims=(8, 8), expert_q_target=5.0, q_min=-0.2, value_gap_weight=0.3)
  state = recoil.init(jax.random.key(0), batch, config)
  new_state, metrics = recoil.update(state, batch)
  return batch, state, new_state, metrics


def test_one_update_matches_numpy(stepped):
  """V: expectile of Q̄min − V on the mixed part + w_gap(E_M V − E_E V);
  actor: AWR on both parts with the target critic and the updated V; Q: the
  objective above with V'(s) as Q(s, π(s)) and y = γ m V'(s') + γ(1 − m)(−200)."""
  batch, state, new_state, metrics = stepped
  cfg = state.config
  nets = recoil._networks(cfg)
  actor, critic, value = (nets[k].module for k in ("actor", "critic", "value"))
  e, m = batch.expert, batch.mixed
  obs = np.concatenate([e.observations, m.observations])
  act = np.concatenate([e.actions, m.actions])
  q_bar = np.asarray(critic.apply(state.target_critic_params, obs, act)).min(0)
  v0 = np.asarray(value.apply(state.value_params, obs))
  u = q_bar[4:] - v0[4:]
  expected_v = np.mean(np.where(u < 0, 0.3, 0.7) * u**2) + 0.3 * (v0[4:].mean() - v0[:4].mean())
  np.testing.assert_allclose(metrics["value_loss"], expected_v, rtol=1e-5)

  v1 = np.asarray(value.apply(new_state.value_params, obs))
  w = np.minimum(np.exp(10.0 * (q_bar - v1)), 100.0)
  mean, log_std = (np.asarray(t) for t in actor.apply(state.actor_params, obs))
  nll = np.sum(0.5 * ((act - mean) / np.exp(log_std)) ** 2 + log_std + 0.5 * np.log(2 * np.pi), -1)
  np.testing.assert_allclose(metrics["actor_loss"], np.mean(w * nll), rtol=1e-5)

  next_v = np.asarray(value.apply(new_state.value_params,
                                  np.concatenate([e.next_observations, m.next_observations])))
  mask = 1 - np.concatenate([e.terminals, m.terminals])
  y = 0.99 * mask * next_v + 0.99 * (1 - mask) * (-200.0)
  q = np.asarray(critic.apply(state.critic_params, obs, act))  # [2, 10]
  contrastive = -(q[:, :4].mean(1) - v1[:4].mean())
  td = ((q - y[None]) ** 2).mean(1)
  expert_target = ((q[:, :4] - 5.0) ** 2).mean(1)
  hinge = np.maximum(-0.2 - q[:, 4:], 0).mean(1)
  assert hinge.max() > 0  # the hinge is exercised
  expected_q = np.mean(0.5 * contrastive + 0.25 * td + 0.5 * expert_target + hinge)
  np.testing.assert_allclose(metrics["critic_loss"], expected_q, rtol=1e-5)


def test_rewards_are_never_read(stepped):
  batch, state, new_state, _ = stepped
  other = ExpertMixedBatch(batch.expert._replace(rewards=batch.expert.rewards * 0 + 1e3),
                           batch.mixed._replace(rewards=None))
  other_state, _ = recoil.update(state, other)
  for a, b in zip(jax.tree.leaves(other_state.params), jax.tree.leaves(new_state.params)):
    np.testing.assert_array_equal(a, b)


def test_batch_without_its_expert_part_names_what_is_missing(stepped):
  batch, state, _, _ = stepped
  with pytest.raises(ValueError, match="batch.expert is missing"):
    recoil.update(state, batch._replace(expert=None))
  with pytest.raises(ValueError, match="batch.mixed is missing"):
    recoil.update(state, batch._replace(mixed=None))
  with pytest.raises(ValueError, match="`expert` and a `mixed` part.*batch.expert is missing"):
    recoil.update(state, batch.mixed)  # a plain Transitions batch
  with pytest.raises(ValueError, match="batch.expert is missing"):
    recoil.init(jax.random.key(0), batch.mixed, recoil.get_config())
  bad = batch._replace(expert=batch.expert._replace(actions=batch.expert.actions[:, :1]))
  with pytest.raises(ValueError, match="batch.expert.actions has 1 columns but batch.mixed.actions"):
    recoil.update(state, bad)
  bad = batch._replace(mixed=batch.mixed._replace(terminals=None))
  with pytest.raises(ValueError, match="batch.mixed.terminals is missing"):
    recoil.update(state, bad)


def test_config_errors_and_registry():
  config = recoil.get_config()
  config.value_loss = "mean"
  with pytest.raises(ValueError, match="config.value_loss must be one of"):
    recoil.init(jax.random.key(0), make_batch(), config)
  assert agents.get("ReCOIL") is recoil


@pytest.mark.parametrize("value_loss", ["chi-square", "reverse-kl"])
def test_f_dvl_value_losses_as_implicit_maximiser(value_loss):
  batch = make_batch(1)
  config = recoil.get_config()
  config.update(hidden_dims=(8, 8), value_loss=value_loss, dual_temperature=0.9)
  state = recoil.init(jax.random.key(0), batch, config)
  _, metrics = recoil.update(state, batch)
  nets = recoil._networks(state.config)
  obs = np.concatenate([batch.expert.observations, batch.mixed.observations])
  act = np.concatenate([batch.expert.actions, batch.mixed.actions])
  x = (np.asarray(nets["critic"].module.apply(state.target_critic_params, obs, act)).min(0)
       - np.asarray(nets["value"].module.apply(state.value_params, obs)))[4:]
  if value_loss == "chi-square":
    expected = np.mean(0.9 * np.maximum(x + x**2 / 4, 0) - 0.1 * x)
  else:
    z = np.minimum(x / 0.9, 7.0)
    mz = max(z.max(), -1.0)
    expected = np.mean(np.exp(-mz) * (np.exp(z) - z - 1))
  np.testing.assert_allclose(metrics["value_loss"], expected, rtol=1e-5)

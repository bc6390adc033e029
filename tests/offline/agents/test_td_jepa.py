"""TD-JEPA: its pure pieces on hand-computed values (sphere projection, the
orthonormality regulariser, the latent TD target, the prediction and DDPG+BC
losses, least-squares task inference), jax.grad checks, and the agent's own
behaviour (targets, symmetric variant, task inference, named errors).
The shared init/update/update_n/act checks are in test_agent_api.py."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline import agents
from jaxrl_llm.offline.agents import td_jepa
from jaxrl_llm.offline.types import Transitions

OBS_DIM, ACT_DIM, BATCH = 4, 2, 16
E = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])


def test_project_to_sphere_hand_values():
  # [3, 4] has norm 5: √2 · [0.6, 0.8].
  np.testing.assert_allclose(td_jepa.project_to_sphere(jnp.array([3.0, 4.0])),
                             [0.6 * np.sqrt(2), 0.8 * np.sqrt(2)], rtol=1e-6)
  x = jax.random.normal(jax.random.key(0), (7, 5))
  np.testing.assert_allclose(jnp.linalg.norm(td_jepa.project_to_sphere(x), axis=-1),
                             np.full(7, np.sqrt(5)), rtol=1e-5)


def test_orthonormality_loss_hand_values():
  """E = [[1,0],[0,1],[1,1]]: diagonal E_iᵀE_i = 1, 1, 2 (mean 4/3); off-diagonal
  products 0, 1, 1 (each pair twice): ½ · 2 · (0 + 1 + 1) / (3 · 2) = 1/3 → −1."""
  np.testing.assert_allclose(td_jepa.orthonormality_loss(E), -1.0, rtol=1e-6)
  # Orthogonal rows of squared norm 4: −4 and no off-diagonal term.
  np.testing.assert_allclose(td_jepa.orthonormality_loss(2.0 * jnp.eye(2)), -4.0, rtol=1e-6)
  with pytest.raises(ValueError, match="at least 2 rows"):
    td_jepa.orthonormality_loss(E[:1])


def test_orthonormality_loss_gradient_by_hand():
  """dL/dE_k = −(2/B) E_k + (2/(B(B−1))) Σ_{j≠k} (E_kᵀE_j) E_j with B = 3:
  k=0: −⅔[1,0] + ⅓[1,1]; k=1: −⅔[0,1] + ⅓[1,1]; k=2: −⅔[1,1] + ⅓([1,0] + [0,1])."""
  grad = jax.grad(td_jepa.orthonormality_loss)(E)
  third = 1.0 / 3.0
  np.testing.assert_allclose(grad, [[-third, third], [third, -third], [-third, -third]],
                             rtol=1e-6, atol=1e-7)


def test_orthonormality_loss_estimates_half_frobenius_minus_trace():
  """E[L_orth] = ½‖C‖²_F − tr C for rows with second moment C: for N(0, C) draws,
  C = I gives ½·2 − 2 = −1 (the minimum, ½‖C − I‖²_F − d/2), C = 2I gives 4 − 4 = 0,
  C = [[1, ½], [½, 1]] gives ½(1 + 1 + ¼ + ¼) − 2 = −0.75."""
  # The mean over 16 batches of 2000 rows: standard error ≤ 0.05 (C = 2I, the widest).
  noise = jax.random.normal(jax.random.key(0), (16, 2000, 2))
  correlated = jnp.linalg.cholesky(jnp.array([[1.0, 0.5], [0.5, 1.0]]))
  estimate = jax.vmap(td_jepa.orthonormality_loss)
  for rows, expected in ((noise, -1.0), (jnp.sqrt(2.0) * noise, 0.0),
                         (noise @ correlated.T, -0.75)):
    np.testing.assert_allclose(jnp.mean(estimate(rows)), expected, atol=0.2)


def test_ensemble_aggregate_hand_values():
  v = jnp.array([[1.0, 4.0], [3.0, 0.0]])  # K = 2, B = 2: mean [2, 2], |diff| [2, 4]
  np.testing.assert_allclose(td_jepa.ensemble_aggregate(v), [2.0, 2.0])
  np.testing.assert_allclose(td_jepa.ensemble_aggregate(v, 0.5), [1.0, 0.0])
  # K = 3: mean 4/3, pairwise |0−1|, |0−3|, |1−3| → mean 2; c = 1 → −2/3.
  np.testing.assert_allclose(td_jepa.ensemble_aggregate(jnp.array([[0.0], [1.0], [3.0]]), 1.0),
                             [-2.0 / 3.0], rtol=1e-6)


NEXT_FEATURES = jnp.array([[1.0, 0.0], [0.0, 2.0]])
NEXT_PREDICTIONS = jnp.array([[[2.0, 2.0], [4.0, 0.0]], [[0.0, 2.0], [2.0, 2.0]]])  # [K, B, d]
MASKS = jnp.array([1.0, 0.0])


def test_latent_td_target_hand_values():
  """y = f̄(s') + γ m mean_k T̄_k: ensemble mean [[1, 2], [3, 1]], γ = 0.5, the second
  row terminal → [[1 + 0.5, 0 + 1], [0, 2]]. With pessimism 1 the bootstrap is
  mean − |T̄_1 − T̄_2| = [[−1, 2], [1, −1]] → [[0.5, 1], [0, 2]]."""
  y = td_jepa.latent_td_target(NEXT_FEATURES, NEXT_PREDICTIONS, MASKS, 0.5)
  np.testing.assert_allclose(y, [[1.5, 1.0], [0.0, 2.0]], rtol=1e-6)
  y = td_jepa.latent_td_target(NEXT_FEATURES, NEXT_PREDICTIONS, MASKS, 0.5, pessimism=1.0)
  np.testing.assert_allclose(y, [[0.5, 1.0], [0.0, 2.0]], rtol=1e-6)


def test_latent_td_target_passes_no_gradient():
  grads = jax.grad(lambda f, p: jnp.sum(td_jepa.latent_td_target(f, p, MASKS, 0.9)),
                   argnums=(0, 1))(NEXT_FEATURES, NEXT_PREDICTIONS)
  for g in grads:
    np.testing.assert_array_equal(g, np.zeros_like(g))


def test_latent_prediction_loss_hand_values_and_gradient():
  """Head 0: ‖[0, 1]‖² = 1 and 0 → 0.5; head 1: ‖[1, 1]‖² = 2 and ‖[0, 1]‖² = 1 → 1.5;
  mean 1.0. dL/dT = 2(T − y)/(K·B) = (T − y)/2."""
  preds = jnp.array([[[1.0, 1.0], [0.0, 0.0]], [[2.0, 1.0], [0.0, 1.0]]])
  targets = jnp.array([[1.0, 0.0], [0.0, 0.0]])
  np.testing.assert_allclose(td_jepa.latent_prediction_loss(preds, targets), 1.0, rtol=1e-6)
  grad = jax.grad(td_jepa.latent_prediction_loss)(preds, targets)
  np.testing.assert_allclose(grad, (preds - targets[None]) / 2.0, rtol=1e-6)


def test_ddpg_bc_loss_hand_values_and_gradient():
  """q = [1, −3], a_π = [[0.5], [0]], a = 0: BC term (0.25 + 0)/2 = 0.125.
  bc_coeff 2: −(−1)/sg(2) + 2 · 0.125 = 0.75; bc_coeff 0: −mean q = 1.
  Gradients (bc_coeff 2): dL/dq = −1/(B · 2) = −0.25; dL/da_π = 2·2·(a_π − a)/B."""
  q = jnp.array([1.0, -3.0])
  a_pi, a = jnp.array([[0.5], [0.0]]), jnp.zeros((2, 1))
  loss, metrics = td_jepa.ddpg_bc_loss(q, a_pi, a, 2.0)
  np.testing.assert_allclose(loss, 0.75, rtol=1e-6)
  np.testing.assert_allclose(metrics["actor_bc"], 0.125, rtol=1e-6)
  np.testing.assert_allclose(td_jepa.ddpg_bc_loss(q, a_pi, a, 0.0)[0], 1.0, rtol=1e-6)
  g_q, g_a = jax.grad(lambda q, p: td_jepa.ddpg_bc_loss(q, p, a, 2.0)[0], argnums=(0, 1))(q, a_pi)
  np.testing.assert_allclose(g_q, [-0.25, -0.25], rtol=1e-6)
  np.testing.assert_allclose(g_a, [[1.0], [0.0]], rtol=1e-6)


def test_least_squares_task_hand_values():
  """Φ = [[1,0],[0,1],[1,1]], r = [1, 2, 4]: ΦᵀΦ = [[2,1],[1,2]], Φᵀr = [5, 6],
  z = ⅓[[2,−1],[−1,2]]·[5, 6] = [4/3, 7/3]."""
  z = td_jepa.least_squares_task(E, jnp.array([1.0, 2.0, 4.0]), project=False)
  np.testing.assert_allclose(z, [4.0 / 3.0, 7.0 / 3.0], rtol=1e-5)
  z = td_jepa.least_squares_task(E, jnp.array([1.0, 2.0, 4.0]))
  np.testing.assert_allclose(z, np.sqrt(2) * np.array([4.0, 7.0]) / np.sqrt(65.0), rtol=1e-5)


def test_least_squares_task_recovers_a_planted_task():
  rng = np.random.default_rng(0)
  features = jnp.asarray(rng.normal(size=(64, 5)), jnp.float32)
  planted = rng.normal(size=5)
  planted = np.sqrt(5) * planted / np.linalg.norm(planted)
  rewards = features @ jnp.asarray(planted, jnp.float32)
  np.testing.assert_allclose(td_jepa.least_squares_task(features, rewards), planted,
                             rtol=1e-4, atol=1e-4)
  # Scaled rewards: the same direction (projection to the sphere).
  np.testing.assert_allclose(td_jepa.least_squares_task(features, 3.0 * rewards), planted,
                             rtol=1e-4, atol=1e-4)


def test_sample_tasks_sphere_and_goal_share():
  goals = jax.random.normal(jax.random.key(0), (4000, 3))
  z0 = td_jepa.sample_tasks(jax.random.key(1), goals, 0.0)
  np.testing.assert_allclose(jnp.linalg.norm(z0, axis=-1), np.full(4000, np.sqrt(3)), rtol=1e-5)
  z1 = td_jepa.sample_tasks(jax.random.key(1), goals, 1.0)
  np.testing.assert_allclose(z1, td_jepa.project_to_sphere(goals), rtol=1e-6)
  half = td_jepa.sample_tasks(jax.random.key(2), goals, 0.5)
  from_goals = np.all(np.isclose(half, td_jepa.project_to_sphere(goals)), -1)
  assert 0.45 < from_goals.mean() < 0.55  # ±5σ at n = 4000
  grad = jax.grad(lambda g: jnp.sum(td_jepa.sample_tasks(jax.random.key(3), g, 1.0)))(goals)
  np.testing.assert_array_equal(grad, np.zeros_like(grad))  # no gradient into ψ(g)


def test_noisy_action_stays_within_clip_and_bounds():
  mean = jnp.array([[0.0, 0.95], [-0.5, 0.2]])
  for seed in range(5):
    a = td_jepa.noisy_action(mean, jax.random.key(seed), 1.0, 0.3)
    assert np.all(np.abs(np.asarray(a)) <= 1.0)
    assert np.all(np.abs(np.asarray(a - jnp.clip(mean, -1, 1))) <= 0.3 + 1e-6)


# ----------------------------------------------------------------------------- the agent


def small_config(**overrides):
  config = td_jepa.get_config()
  config.update(dict(encoder_hidden_dims=(8,), embed_dims=(), hidden_dims=(8,),
                     phi_dim=4, psi_dim=3))
  config.update(overrides)
  return config


def batch(seed=0, n=BATCH):
  rng = np.random.default_rng(seed)
  obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
  nxt = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
  return Transitions(
      observations=jnp.asarray(obs), actions=jnp.asarray(rng.uniform(-1, 1, (n, ACT_DIM)),
                                                         jnp.float32),
      rewards=None, next_observations=jnp.asarray(nxt),
      terminals=jnp.zeros(n), timeouts=jnp.zeros(n),
      goals=jnp.asarray(np.roll(nxt, -3, axis=0)))


@pytest.fixture(scope="module")
def trained():
  state = td_jepa.init(jax.random.key(0), batch(), small_config())
  new_state, metrics = td_jepa.update(state, batch(1))
  return state, new_state, metrics


def test_networks_and_polyak_targets(trained):
  state, new_state, metrics = trained
  assert set(state.params) == {"phi", "psi", "predictor_phi", "predictor_psi", "actor"}
  assert set(state.target_params) == {"phi", "psi", "predictor_phi", "predictor_psi"}
  rate = 0.005
  for name in state.target_params:  # θ̄' = (1 − ρ) θ̄ + ρ θ', with θ̄ = θ at init
    for old, new, target in zip(jax.tree.leaves(state.params[name]),
                                jax.tree.leaves(new_state.params[name]),
                                jax.tree.leaves(new_state.target_params[name])):
      np.testing.assert_allclose(target, (1 - rate) * np.asarray(old) + rate * np.asarray(new),
                                 rtol=1e-5, atol=1e-7)
  for key in ("td_phi", "td_psi", "orth_phi", "orth_psi", "actor_loss", "actor_q", "actor_bc"):
    assert np.isfinite(metrics[key]), key
  # Encoders end on the √d sphere.
  obs = batch().observations
  np.testing.assert_allclose(jnp.linalg.norm(td_jepa.encode(new_state, obs, "phi"), axis=-1),
                             np.full(BATCH, 2.0), rtol=1e-5)
  np.testing.assert_allclose(jnp.linalg.norm(td_jepa.encode(new_state, obs, "psi"), axis=-1),
                             np.full(BATCH, np.sqrt(3)), rtol=1e-5)


def test_infer_task_recovers_a_planted_task_from_psi(trained):
  """Rewards exactly linear in ψ(s'): r = ψ(s')ᵀz* with z* on the √d_ψ sphere."""
  _, state, _ = trained
  next_obs = jax.random.normal(jax.random.key(7), (200, OBS_DIM))
  planted = td_jepa.project_to_sphere(jnp.array([0.3, -1.0, 0.5]))
  psi = td_jepa.encode(state, next_obs, "psi")
  z = td_jepa.infer_task(state, next_obs, psi @ planted)
  np.testing.assert_allclose(z, planted, rtol=1e-3, atol=1e-3)
  with pytest.raises(ValueError, match="rewards must have shape"):
    td_jepa.infer_task(state, next_obs, jnp.zeros(3))


def test_act_needs_a_task(trained):
  _, state, _ = trained
  obs = batch().observations[:3]
  with pytest.raises(ValueError, match="TD-JEPA act needs task=z"):
    td_jepa.act(state, obs, jax.random.key(0))
  with pytest.raises(ValueError, match=r"task must have shape \[3\]"):
    td_jepa.act(state, obs, jax.random.key(0), task=jnp.ones(4))
  # One task for all rows equals the task repeated per row.
  z = td_jepa.project_to_sphere(jnp.ones(3))
  q = td_jepa.latent_q_values(state, obs, batch().actions[:3], z)
  assert q.shape == (2, 3) and np.all(np.isfinite(q))
  np.testing.assert_allclose(td_jepa.act(state, obs, jax.random.key(0), task=z),
                             td_jepa.act(state, obs, jax.random.key(0),
                                         task=jnp.tile(z, (3, 1))), rtol=1e-6)


def test_batch_without_goals_is_named():
  with pytest.raises(ValueError, match="batch.goals is missing"):
    td_jepa.init(jax.random.key(0), batch()._replace(goals=None), small_config())
  with pytest.raises(ValueError, match="batch.goals must have the shape"):
    td_jepa.init(jax.random.key(0), batch()._replace(goals=batch().goals[:, :2]), small_config())


def test_symmetric_variant_shares_one_encoder():
  config = small_config(symmetric=True)
  state = td_jepa.init(jax.random.key(0), batch(), config)
  assert set(state.params) == {"phi", "predictor_phi", "actor"}
  new_state, metrics = td_jepa.update(state, batch(1))
  assert "td_psi" not in metrics and np.isfinite(metrics["td_phi"])
  obs = batch().next_observations
  np.testing.assert_array_equal(td_jepa.encode(new_state, obs, "psi"),
                                td_jepa.encode(new_state, obs, "phi"))
  z = td_jepa.infer_task(new_state, obs, jnp.arange(BATCH, dtype=jnp.float32))
  assert z.shape == (4,)  # tasks live in φ's space
  assert td_jepa.act(new_state, obs[0], jax.random.key(0), task=z).shape == (ACT_DIM,)


def test_registered_under_td_jepa():
  assert agents.get("td_jepa") is td_jepa
  assert "td_jepa" in agents.names() and len(agents.names()) == 6


def test_init_of_wide_networks_returns(tmp_path):
  """All TD-JEPA networks are initialised in one jitted program; with a vmapped
  predictor ensemble (batched QRs of the orthogonal init) jax 0.10.2's CPU
  runtime deadlocks at these widths. Run in a subprocess so a regression fails
  by timeout instead of hanging the suite."""
  import subprocess
  import sys
  import textwrap

  script = textwrap.dedent("""
      import jax, jax.numpy as jnp
      from jaxrl_llm.offline.agents import td_jepa
      from jaxrl_llm.offline.types import Transitions
      n = 8
      x = jnp.ones((n, 2))
      batch = Transitions(observations=x, actions=x, rewards=None, next_observations=x,
                          terminals=jnp.zeros(n), timeouts=jnp.zeros(n), goals=x)
      config = td_jepa.get_config()
      config.update(dict(encoder_hidden_dims=(64, 64), embed_dims=(64,), hidden_dims=(64, 64)))
      state = td_jepa.init(jax.random.key(0), batch, config)
      jax.block_until_ready(state.params)
      print("ok")
  """)
  result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-2000:]

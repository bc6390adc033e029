"""TD-JEPA: zero-shot RL by latent temporal-difference prediction (Bagatella,
Pirotta, Touati, Lazaric, Tirinzoni, "TD-JEPA: Latent-predictive Representations
for Zero-Shot Reinforcement Learning", arXiv 2510.00739, 2025).

Implemented from the paper's equations (../shared/reference/offline_rl_anchors.md
§5); no code of the official (CC BY-NC) implementation is used.

Networks. A state encoder φ: S → R^{d_φ} and a task encoder ψ: S → R^{d_ψ},
each an MLP ending in `project_to_sphere`, x ↦ √d · x/‖x‖. Two
policy-conditioned latent predictors, each an ensemble of K = 2,

  T_φ(φ(s), a, z) ∈ R^{d_ψ}   predicts the ψ-successor features  E_π_z[Σ_t γ^t ψ(s_{t+1})]
  T_ψ(ψ(s), a, z) ∈ R^{d_φ}   predicts the φ-successor features  E_π_z[Σ_t γ^t φ(s_{t+1})]

and a latent actor π(φ(s), z). Tasks z ∈ R^{d_ψ} live on the √d_ψ sphere;
a task's reward is r(s') = ψ(s')ᵀz, so Q(s, a, z) = T_φ(φ(s), a, z)ᵀz.
The symmetric variant (`symmetric=True`) has φ ≡ ψ and one predictor T_φ: φ → φ.

One update, with Polyak targets φ̄, ψ̄, T̄ and next actions
a' = clip(π(φ̄(s'), z) + clip(ε, ±c), ±1), ε ~ N(0, σ²) (TD3-style):

  z:      z ~ Unif(√d sphere); a fraction `goal_ratio` replaced by ψ(g),
          g a future state of the same trajectory (`batch.goals`)
  targets y_φ = ψ̄(s') + γ m · agg_k T̄_φ,k(φ̄(s'), a', z)          (m = 1 − terminal)
          y_ψ = φ̄(s') + γ m · agg_k T̄_ψ,k(ψ̄(s'), a', z)
  loss:   L = mean_k E‖T_φ,k(φ(s), a, z) − y_φ‖² + mean_k E‖T_ψ,k(ψ(s), a, z) − y_ψ‖²
              + c_φ L_orth(φ(s)) + c_ψ L_orth(ψ(s))      (one gradient step on φ, ψ, T_φ, T_ψ)
  actor:  a_π = clip(π(φ(s), z) + clip(ε, ±c), ±1), Q_π = agg_k T_φ,k(φ(s), a_π, z)ᵀz (φ detached)
          L_π = −E[Q_π]                                              (bc_coeff = 0)
          L_π = −E[Q_π]/sg(E|Q_π|) + bc_coeff · E‖a_π − a‖²          (DDPG+BC, OGBench)
  target: θ̄ ← (1 − ρ) θ̄ + ρ θ  for φ, ψ, T_φ, T_ψ

where agg_k is the ensemble mean minus `pessimism` × the mean pairwise
absolute difference, and L_orth is `orthonormality_loss`.

Zero-shot use: `z = infer_task(state, next_observations, rewards)` solves the
least-squares problem min_z Σ_i (ψ(s'_i)ᵀz − r_i)² and projects z to the
√d_ψ sphere; then `act(state, observations, key, task=z)`.

Batches are `Transitions` with `goals` = future states (see
`offline/future_goals.py`); rewards are not read in training.
"""

from __future__ import annotations

import functools
from typing import Optional, Sequence

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxrl_llm.offline import networks
from jaxrl_llm.offline.agents import api
from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.agents import losses
from jaxrl_llm.offline.types import Transitions

ENCODERS = ("phi", "psi")
PREDICTORS = ("predictor_phi", "predictor_psi")


# ----------------------------------------------------------------------------- pure functions


def project_to_sphere(x: jax.Array, eps: float = 1e-6) -> jax.Array:
  """`√d · x/‖x‖` over the last axis (d = x.shape[-1]): the sphere of radius √d."""
  d = x.shape[-1]
  norm = jnp.linalg.norm(x, axis=-1, keepdims=True)
  return jnp.sqrt(jnp.asarray(d, x.dtype)) * x / jnp.maximum(norm, eps)


def orthonormality_loss(embeddings: jax.Array) -> jax.Array:
  """L_orth(E) = −mean_i E_iᵀE_i + ½ Σ_{i≠j} (E_iᵀE_j)² / (B(B − 1)), E: [B, d].

  With C = E[e eᵀ] this is an unbiased estimate of ½‖C‖²_F − tr C =
  ½‖C − I‖²_F − d/2 (the i ≠ j pairs estimate E[(eᵀe')²] = ‖C‖²_F), so it is
  minimised when the embedding's second moment is the identity: the
  regulariser of forward-backward representations (Touati & Ollivier 2021),
  used on both of TD-JEPA's encoders. On the √d sphere tr C = d is fixed and
  only the decorrelating term has a gradient.
  """
  chex.assert_rank(embeddings, 2)
  b = embeddings.shape[0]
  if b < 2:
    raise ValueError(f"orthonormality_loss needs a batch of at least 2 rows, got {b}")
  gram = embeddings @ embeddings.T
  diag = jnp.diagonal(gram)
  off_diag_sq = jnp.sum(jnp.square(gram)) - jnp.sum(jnp.square(diag))
  return -jnp.mean(diag) + 0.5 * off_diag_sq / (b * (b - 1))


def ensemble_aggregate(values: jax.Array, pessimism: float = 0.0) -> jax.Array:
  """mean_k v_k − c · mean_{k<l} |v_k − v_l| over the leading (ensemble) axis.

  c = `pessimism`; with c = 0 the plain ensemble mean.
  """
  k = values.shape[0]
  mean = jnp.mean(values, 0)
  if pessimism == 0.0 or k < 2:
    return mean
  pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
  spread = sum(jnp.abs(values[i] - values[j]) for i, j in pairs) / len(pairs)
  return mean - pessimism * spread


def latent_td_target(next_features: jax.Array, next_predictions: jax.Array,
                     masks: jax.Array, discount: float,
                     pessimism: float = 0.0) -> jax.Array:
  """y = f̄(s') + γ m · agg_k T̄_k(s', a', z), no gradient.

  Args:
    next_features: [B, d] the target encoder at s' (ψ̄(s') for T_φ, φ̄(s') for T_ψ).
    next_predictions: [K, B, d] the target predictor ensemble at (s', a', z).
    masks: [B] m = 1 − terminal.
  Returns:
    [B, d] the latent TD target.
  """
  chex.assert_rank([next_features, next_predictions, masks], [2, 3, 1])
  chex.assert_equal_shape([next_features, next_predictions[0]])
  chex.assert_equal_shape_prefix([next_features, masks], 1)
  bootstrap = ensemble_aggregate(next_predictions, pessimism)
  y = next_features + discount * masks[:, None] * bootstrap
  return jax.lax.stop_gradient(y)


def latent_prediction_loss(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """mean_k mean_i ‖T_k(s_i, a_i, z_i) − y_i‖², predictions [K, B, d], targets [B, d]."""
  chex.assert_rank([predictions, targets], [3, 2])
  chex.assert_equal_shape([predictions[0], targets])
  return jnp.mean(jnp.sum(jnp.square(predictions - targets[None]), -1))


def ddpg_bc_loss(q: jax.Array, policy_actions: jax.Array, data_actions: jax.Array,
                 bc_coeff: float):
  """L_π = −E[Q] (bc_coeff = 0), or −E[Q]/sg(E|Q|) + bc_coeff · E‖a_π − a‖² (DDPG+BC).

  The normalisation by sg(E|Q|) is TD3+BC's (Fujimoto & Gu 2021) as used by
  TD-JEPA on OGBench. Returns (loss, metrics).
  """
  chex.assert_rank([q, policy_actions], [1, 2])
  chex.assert_equal_shape([policy_actions, data_actions])
  bc = jnp.mean(jnp.sum(jnp.square(policy_actions - data_actions), -1))
  if bc_coeff > 0.0:
    scale = jax.lax.stop_gradient(jnp.mean(jnp.abs(q)))
    loss = -jnp.mean(q) / jnp.maximum(scale, 1e-6) + bc_coeff * bc
  else:
    loss = -jnp.mean(q)
  return loss, {"actor_q": jnp.mean(q), "actor_bc": bc}


def sample_tasks(key: chex.PRNGKey, goal_features: jax.Array, goal_ratio: float) -> jax.Array:
  """z_i = project(N(0, I)), replaced with probability `goal_ratio` by project(ψ(g_i)).

  goal_features: [B, d] the task encoder at the goals (no gradient flows).
  """
  chex.assert_rank(goal_features, 2)
  gauss_key, mix_key = jax.random.split(key)
  random_z = project_to_sphere(jax.random.normal(gauss_key, goal_features.shape,
                                                 goal_features.dtype))
  use_goal = jax.random.bernoulli(mix_key, goal_ratio, goal_features.shape[:1])
  goal_z = project_to_sphere(jax.lax.stop_gradient(goal_features))
  return jnp.where(use_goal[:, None], goal_z, random_z)


def least_squares_task(features: jax.Array, rewards: jax.Array,
                       project: bool = True) -> jax.Array:
  """z = argmin_z Σ_i (φ_iᵀz − r_i)² (= (ΦᵀΦ)⁻¹Φᵀr), then projected to the √d sphere.

  features: [N, d] task features ψ(s'_i); rewards: [N]. Returns [d].
  """
  chex.assert_rank([features, rewards], [2, 1])
  chex.assert_equal_shape_prefix([features, rewards], 1)
  z = jnp.linalg.lstsq(features, rewards)[0]
  return project_to_sphere(z) if project else z


def noisy_action(mean: jax.Array, key: chex.PRNGKey, std: float, clip: float) -> jax.Array:
  """clip(mean + clip(ε, −c, c), −1, 1), ε ~ N(0, σ²) (TD3's target-policy smoothing)."""
  noise = jnp.clip(std * jax.random.normal(key, mean.shape, mean.dtype), -clip, clip)
  return jnp.clip(mean + noise, -1.0, 1.0)


# ----------------------------------------------------------------------------- networks


class Encoder(nn.Module):
  """MLP → Dense(latent_dim) → √d·x/‖x‖. `input_layer_norm`: LayerNorm + tanh after the first layer."""

  hidden_dims: Sequence[int]
  latent_dim: int
  input_layer_norm: bool = False
  layer_norm: bool = False

  @nn.compact
  def __call__(self, observations: jax.Array) -> jax.Array:
    x = observations
    for i, size in enumerate(self.hidden_dims):
      x = nn.Dense(size, kernel_init=networks.default_init())(x)
      if i == 0 and self.input_layer_norm:
        x = jnp.tanh(nn.LayerNorm()(x))
      else:
        if self.layer_norm:
          x = nn.LayerNorm()(x)
        x = nn.relu(x)
    x = nn.Dense(self.latent_dim, kernel_init=networks.default_init())(x)
    return project_to_sphere(x)


class Predictor(nn.Module):
  """T(e, a, z): embeddings of (e‖z) and (e‖a), concatenated, then an MLP → output_dim."""

  embed_dims: Sequence[int]
  hidden_dims: Sequence[int]
  output_dim: int

  @nn.compact
  def __call__(self, latents: jax.Array, actions: jax.Array, tasks: jax.Array) -> jax.Array:
    task_embed = networks.MLP(self.embed_dims, activate_final=True)(
        jnp.concatenate([latents, tasks], -1))
    action_embed = networks.MLP(self.embed_dims, activate_final=True)(
        jnp.concatenate([latents, actions], -1))
    return networks.MLP((*self.hidden_dims, self.output_dim))(
        jnp.concatenate([task_embed, action_embed], -1))


class EnsemblePredictor(nn.Module):
  """K independent predictors; returns [K, ..., output_dim].

  K separate submodules rather than one `nn.vmap`-ed module: a vmapped
  orthogonal init is a batched QR, and with a dozen of them in one jitted
  program (every TD-JEPA network is initialised in one, `api.make_agent`)
  jax 0.10.2's CPU runtime deadlocks (reproduced: 12 QRs of [2, 64, 64] in one
  jit never return; 12 unbatched ones, or 30 of 512 × 512, take seconds).
  """

  embed_dims: Sequence[int]
  hidden_dims: Sequence[int]
  output_dim: int
  num_predictors: int = 2

  @nn.compact
  def __call__(self, latents, actions, tasks):
    return jnp.stack([
        Predictor(self.embed_dims, self.hidden_dims, self.output_dim, name=f"member_{k}")(
            latents, actions, tasks) for k in range(self.num_predictors)])


class LatentActor(nn.Module):
  """π(e, z) = tanh(MLP(embed(e‖z) ‖ embed(e))): the deterministic mean action."""

  embed_dims: Sequence[int]
  hidden_dims: Sequence[int]
  action_dim: int

  @nn.compact
  def __call__(self, latents: jax.Array, tasks: jax.Array) -> jax.Array:
    task_embed = networks.MLP(self.embed_dims, activate_final=True)(
        jnp.concatenate([latents, tasks], -1))
    state_embed = networks.MLP(self.embed_dims, activate_final=True)(latents)
    h = networks.MLP(self.hidden_dims, activate_final=True)(
        jnp.concatenate([task_embed, state_embed], -1))
    return jnp.tanh(nn.Dense(self.action_dim, kernel_init=networks.default_init())(h))


# ----------------------------------------------------------------------------- agent


def get_config() -> ml_collections.ConfigDict:
  """TD-JEPA hyperparameters: the paper's OGBench (proprioceptive) settings.

  OGBench launch settings (anchors §5.3): encoders 4×512 + Norm with
  d_φ = d_ψ = 50, predictors hidden 512 × 2, ensemble 2, batch 256, γ 0.99,
  Adam 1e-4 everywhere (lr_ψ swept over {1e-4, 1e-5}), orthonormality
  coefficients 1.0, Polyak 0.005, goal ratio 0.5, actor noise σ 0.2 clipped
  at 0.3, DDPG+BC with bc_coeff 0.3 (antmaze; 3.0 for manipulation). The
  paper's OGBench actor is a flow-BC actor; this one is the deterministic
  DDPG+BC actor of its DMC runs with the BC term added. Not implemented: the
  optional whitening of goal tasks by a running covariance.
  """
  config = ml_collections.ConfigDict()
  config.symmetric = False  # φ ≡ ψ, one predictor T_φ: φ → φ
  config.phi_dim = 50
  config.psi_dim = 50
  config.encoder_hidden_dims = (512, 512, 512, 512)
  config.encoder_layer_norm = False
  config.psi_input_layer_norm = False  # the DMC ψ: LayerNorm + tanh after the first layer
  config.embed_dims = (512,)  # predictor / actor input embeddings
  config.hidden_dims = (512, 512)  # predictor / actor trunk
  config.num_predictors = 2
  config.phi_lr = 1e-4
  config.psi_lr = 1e-4
  config.predictor_lr = 1e-4
  config.actor_lr = 1e-4
  config.discount = 0.99
  config.encoder_target_update_rate = 0.005
  config.predictor_target_update_rate = 0.005
  config.ortho_coeff_phi = 1.0
  config.ortho_coeff_psi = 1.0
  config.goal_ratio = 0.5  # share of tasks z = ψ(future state)
  config.target_pessimism = 0.0  # c in agg_k for the TD targets
  config.actor_pessimism = 0.0  # c in agg_k for the actor's Q
  config.actor_std = 0.2
  config.actor_noise_clip = 0.3
  config.bc_coeff = 0.3  # 0: pure latent DDPG (the DMC setting)
  config.project_inferred_task = True
  return config


def check_batch(batch: Transitions) -> None:
  """A reward-free Transitions batch with `goals` = future states, [B, obs_dim]."""
  common.check_batch(batch, reward_free=True)
  goals = batch.goals
  if goals is None:
    raise ValueError(
        "batch.goals is missing: TD-JEPA replaces part of its tasks z by encoded future "
        "states; sample batches with jaxrl_llm.offline.future_goals (or set goals yourself)")
  if jnp.shape(goals) != jnp.shape(batch.observations):
    raise ValueError(
        f"batch.goals must have the shape of batch.observations (future states), got "
        f"{jnp.shape(goals)} vs {jnp.shape(batch.observations)}")


def _task_dim(cfg) -> int:
  return cfg.phi_dim if cfg.symmetric else cfg.psi_dim


def _prepare(cfg, example_batch):
  del example_batch
  for field in ("phi_dim", "psi_dim", "num_predictors"):
    if int(cfg[field]) < 1:
      raise ValueError(f"config.{field} must be >= 1, got {cfg[field]}")
  if not 0.0 <= cfg.goal_ratio <= 1.0:
    raise ValueError(f"config.goal_ratio must lie in [0, 1], got {cfg.goal_ratio}")
  return {}


def _zeros(dim: int):
  return lambda row: jnp.zeros((row.observations.shape[0], dim), row.observations.dtype)


def _networks(cfg):
  """φ, ψ (asymmetric only), T_φ, T_ψ (asymmetric only) and the actor."""
  task_dim = _task_dim(cfg)
  enc_dims = tuple(cfg.encoder_hidden_dims)
  embed, hidden = tuple(cfg.embed_dims), tuple(cfg.hidden_dims)
  nets = {
      "phi": api.Network(
          Encoder(enc_dims, cfg.phi_dim, layer_norm=cfg.encoder_layer_norm),
          optax.adam(cfg.phi_lr), target=True),
  }
  if not cfg.symmetric:
    nets["psi"] = api.Network(
        Encoder(enc_dims, cfg.psi_dim, input_layer_norm=cfg.psi_input_layer_norm,
                layer_norm=cfg.encoder_layer_norm),
        optax.adam(cfg.psi_lr), target=True)
  nets["predictor_phi"] = api.Network(
      EnsemblePredictor(embed, hidden, task_dim, cfg.num_predictors),
      optax.adam(cfg.predictor_lr),
      init_inputs=(_zeros(cfg.phi_dim), "actions", _zeros(task_dim)), target=True)
  if not cfg.symmetric:
    nets["predictor_psi"] = api.Network(
        EnsemblePredictor(embed, hidden, cfg.phi_dim, cfg.num_predictors),
        optax.adam(cfg.predictor_lr),
        init_inputs=(_zeros(cfg.psi_dim), "actions", _zeros(task_dim)), target=True)
  nets["actor"] = api.Network(
      LatentActor(embed, hidden, cfg.action_dim), optax.adam(cfg.actor_lr),
      init_inputs=(_zeros(cfg.phi_dim), _zeros(task_dim)))
  return nets


def _task_encoder(cfg) -> str:
  return "phi" if cfg.symmetric else "psi"


def _representation_names(cfg):
  return ("phi", "predictor_phi") if cfg.symmetric else ENCODERS + PREDICTORS


def _update_step(state: api.AgentState, batch: Transitions, nets, key):
  cfg = state.config
  obs, actions, next_obs = batch.observations, batch.actions, batch.next_observations
  masks = common.td_masks(batch)
  task_key, next_key, actor_key = jax.random.split(key, 3)
  psi_name = _task_encoder(cfg)
  apply = functools.partial(api.apply_network, state, nets)

  # Tasks: the sphere, half of them encoded future states of the same trajectory.
  z = sample_tasks(task_key, apply(psi_name, batch.goals), cfg.goal_ratio)

  # Latent TD targets from the Polyak targets and a smoothed next action.
  phi_next = apply("phi", next_obs, target=True)
  next_actions = noisy_action(apply("actor", phi_next, z), next_key, cfg.actor_std,
                              cfg.actor_noise_clip)
  psi_next = apply(psi_name, next_obs, target=True)
  y_phi = latent_td_target(psi_next, apply("predictor_phi", phi_next, next_actions, z,
                                           target=True),
                           masks, cfg.discount, cfg.target_pessimism)
  if not cfg.symmetric:
    y_psi = latent_td_target(phi_next, apply("predictor_psi", psi_next, next_actions, z,
                                             target=True),
                             masks, cfg.discount, cfg.target_pessimism)

  names = _representation_names(cfg)

  def representation_loss(params):
    phi_s = nets["phi"].module.apply(params["phi"], obs)
    pred_phi = nets["predictor_phi"].module.apply(params["predictor_phi"], phi_s, actions, z)
    td_phi = latent_prediction_loss(pred_phi, y_phi)
    orth_phi = orthonormality_loss(phi_s)
    terms = {"td_phi": td_phi, "orth_phi": orth_phi}
    loss = td_phi + cfg.ortho_coeff_phi * orth_phi
    if not cfg.symmetric:
      psi_s = nets["psi"].module.apply(params["psi"], obs)
      pred_psi = nets["predictor_psi"].module.apply(params["predictor_psi"], psi_s, actions, z)
      td_psi = latent_prediction_loss(pred_psi, y_psi)
      orth_psi = orthonormality_loss(psi_s)
      loss = loss + td_psi + cfg.ortho_coeff_psi * orth_psi
      terms.update(td_psi=td_psi, orth_psi=orth_psi)
    return loss, terms

  (rep_loss, rep_terms), grads = jax.value_and_grad(representation_loss, has_aux=True)(
      {name: state.params[name] for name in names})
  for name in names:  # one backward pass, one optimiser step per network
    params, opt_state = common.apply_gradients(nets[name].optimizer, state.params[name],
                                               state.opt_states[name], grads[name])
    state = state.with_network(name, params, opt_state)

  # Actor: maximise the latent Q = T_φ(φ(s), a_π, z)ᵀz, φ and T_φ fixed.
  phi_s = jax.lax.stop_gradient(api.apply_network(state, nets, "phi", obs))
  predictor_params = jax.lax.stop_gradient(state.params["predictor_phi"])

  def actor_loss_fn(params):
    mean = nets["actor"].module.apply(params, phi_s, z)
    policy_actions = noisy_action(mean, actor_key, cfg.actor_std, cfg.actor_noise_clip)
    preds = nets["predictor_phi"].module.apply(predictor_params, phi_s, policy_actions, z)
    q = ensemble_aggregate(jnp.sum(preds * z[None], -1), cfg.actor_pessimism)
    return ddpg_bc_loss(q, policy_actions, actions, cfg.bc_coeff)

  state, actor_loss, actor_metrics = api.gradient_step(state, nets, "actor", actor_loss_fn)

  rates = {name: (cfg.encoder_target_update_rate if name in ENCODERS
                  else cfg.predictor_target_update_rate) for name in state.target_params}
  state = state.replace(target_params={
      name: losses.polyak_update(target, state.params[name], rates[name])
      for name, target in state.target_params.items()})

  metrics = {"representation_loss": rep_loss, "actor_loss": actor_loss,
             **rep_terms, **actor_metrics}
  return state, metrics


_AGENT = api.make_agent(name="TD-JEPA", get_config=get_config, networks=_networks,
                        update_step=_update_step, check_batch=check_batch,
                        prepare=_prepare)
init, update, update_n = _AGENT.init, _AGENT.update, _AGENT.update_n


def _check_features_input(state: api.AgentState, observations, name: str):
  obs_dim = state.config.obs_dim
  if jnp.ndim(observations) not in (1, 2) or jnp.shape(observations)[-1] != obs_dim:
    raise ValueError(f"{name} must have shape [obs_dim] or [N, obs_dim] with obs_dim "
                     f"{obs_dim}, got {jnp.shape(observations)}")


@functools.partial(jax.jit, static_argnames=("which",))
def encode(state: api.AgentState, observations: jax.Array, which: str = "phi") -> jax.Array:
  """φ(s) (`which="phi"`) or ψ(s) (`which="psi"`; φ in the symmetric variant), [N, d]."""
  if which not in ENCODERS:
    raise ValueError(f"encode: which must be one of {ENCODERS}, got {which!r}")
  name = _task_encoder(state.config) if which == "psi" else "phi"
  return api.apply_network(state, _networks(state.config), name, observations)


@functools.partial(jax.jit, static_argnames=("project",))
def _infer(state, next_observations, rewards, project):
  return least_squares_task(encode(state, next_observations, "psi"), rewards, project)


def infer_task(state: api.AgentState, next_observations: jax.Array,
               rewards: jax.Array) -> jax.Array:
  """Zero-shot task inference: z = project(lstsq(ψ(s'_{1..N}), r_{1..N})), [d_ψ].

  `rewards[i]` is the task's reward of reaching `next_observations[i]`.
  """
  _check_features_input(state, next_observations, "infer_task: next_observations")
  next_observations = jnp.atleast_2d(jnp.asarray(next_observations, jnp.float32))
  rewards = jnp.asarray(rewards, jnp.float32)
  if rewards.shape != next_observations.shape[:1]:
    raise ValueError(f"infer_task: rewards must have shape ({next_observations.shape[0]},) "
                     f"like next_observations' leading axis, got {rewards.shape}")
  return _infer(state, next_observations, rewards,
                bool(state.config.project_inferred_task))


@functools.partial(jax.jit, static_argnames=("deterministic",))
def _act(state, observations, key, task, deterministic):
  cfg = state.config
  nets = _networks(cfg)
  task = jnp.broadcast_to(task, (observations.shape[0], task.shape[-1]))
  mean = api.apply_network(state, nets, "actor",
                           api.apply_network(state, nets, "phi", observations), task)
  if deterministic:
    return mean
  return noisy_action(mean, key, cfg.actor_std, cfg.actor_noise_clip)


def act(state: api.AgentState, observations: jax.Array, key: jax.Array,
        deterministic: bool = True, task: Optional[jax.Array] = None) -> jax.Array:
  """π(φ(s), z) in [−1, 1] for observations [obs_dim] or [B, obs_dim] and a task z.

  `task`: [d_ψ] (one task for every row) or [B, d_ψ], e.g. from `infer_task`.
  Not deterministic: plus N(0, σ²) noise clipped at ±c (`actor_std`, `actor_noise_clip`).
  """
  if task is None:
    raise ValueError(
        "TD-JEPA act needs task=z, a latent task of shape [d_psi] or [B, d_psi]; get one "
        "with td_jepa.infer_task(state, next_observations, rewards)")
  _check_features_input(state, observations, "act: observations")
  task_dim = _task_dim(state.config)
  squeeze = jnp.ndim(observations) == 1
  observations = jnp.atleast_2d(observations)
  task = jnp.asarray(task, jnp.float32)
  if jnp.ndim(task) not in (1, 2) or task.shape[-1] != task_dim or (
      jnp.ndim(task) == 2 and task.shape[0] != observations.shape[0]):
    raise ValueError(f"act: task must have shape [{task_dim}] or [{observations.shape[0]}, "
                     f"{task_dim}], got {task.shape}")
  actions = _act(state, observations, key, task, bool(deterministic))
  return actions[0] if squeeze else actions


def latent_q_values(state: api.AgentState, observations: jax.Array, actions: jax.Array,
                    task: jax.Array) -> jax.Array:
  """Q_k(s, a, z) = T_φ,k(φ(s), a, z)ᵀz, [K, N] (online networks).

  Not named `q_values`: it needs a task, so it is not an attack critic.
  """
  nets = _networks(state.config)
  task = jnp.broadcast_to(task, (observations.shape[0], task.shape[-1]))
  preds = api.apply_network(state, nets, "predictor_phi",
                            api.apply_network(state, nets, "phi", observations), actions, task)
  return jnp.sum(preds * task[None], -1)

"""Robust IQL (Yang et al., "Towards Robust Offline Reinforcement Learning
under Diverse Data Corruption", ICLR 2024). Written from the paper's equations.

RIQL changes IQL in three places, plus observation normalisation:

  normalise: s ← (s − μ) / (σ_s + 1e-3), μ, σ_s over concat(s, s') of the
             (possibly corrupted) dataset, also applied when acting.
  V:         L_V = E[ |τ − 1(u < 0)| u² ],  u = Quantile_α({Q̄_k(s, a)}_k) − V(s)
  Q:         L_Q = E_{k, batch}[ H_δ(y − Q_k(s, a)) ],  δ = 1/σ²,
             y = clip(r + γ (1 − d) V(s'), −100, 1000)
  actor:     A = Quantile_α(Q̄(s, a)) − V(s),  w = min(exp(β A), 100)
             deterministic: L_π = E[w ||π(s) − a||²];  Gaussian: −E[w log π(a|s)]

with a K-critic ensemble (EDAC-style init). Order within one step: V(s') from
the pre-update V → V → Q → Polyak target → actor (whose advantage uses the
pre-update V). `get_config("hopper/random/dynamics")` returns the paper's
per-task (σ, α, K).
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections

from jaxrl_llm.offline import networks
from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.agents import losses
from jaxrl_llm.offline.types import Transitions

# (huber σ, quantile α, ensemble size K) per (env, corruption mode, corrupted
# field), from the official RIQL per-task configuration; K = 5 unless noted.
TASK_SETTINGS = {
    ("halfcheetah", "random", "observations"): (0.1, 0.1, 5),
    ("halfcheetah", "random", "actions"): (0.5, 0.25, 3),
    ("halfcheetah", "random", "rewards"): (3.0, 0.25, 5),
    ("halfcheetah", "random", "dynamics"): (3.0, 0.25, 5),
    ("halfcheetah", "adversarial", "observations"): (0.1, 0.1, 5),
    ("halfcheetah", "adversarial", "actions"): (1.0, 0.1, 5),
    ("halfcheetah", "adversarial", "rewards"): (1.0, 0.1, 5),
    ("halfcheetah", "adversarial", "dynamics"): (1.0, 0.1, 5),
    ("walker2d", "random", "observations"): (0.1, 0.25, 5),
    ("walker2d", "random", "actions"): (0.5, 0.1, 5),
    ("walker2d", "random", "rewards"): (3.0, 0.1, 5),
    ("walker2d", "random", "dynamics"): (1.0, 0.25, 3),
    ("walker2d", "adversarial", "observations"): (1.0, 0.25, 5),
    ("walker2d", "adversarial", "actions"): (1.0, 0.1, 5),
    ("walker2d", "adversarial", "rewards"): (3.0, 0.1, 5),
    ("walker2d", "adversarial", "dynamics"): (1.0, 0.25, 5),
    ("hopper", "random", "observations"): (0.1, 0.25, 3),
    ("hopper", "random", "actions"): (0.1, 0.25, 5),
    ("hopper", "random", "rewards"): (1.0, 0.25, 3),
    ("hopper", "random", "dynamics"): (1.0, 0.5, 5),
    ("hopper", "adversarial", "observations"): (1.0, 0.25, 5),
    ("hopper", "adversarial", "actions"): (1.0, 0.25, 5),
    ("hopper", "adversarial", "rewards"): (0.1, 0.25, 5),
    ("hopper", "adversarial", "dynamics"): (1.0, 0.5, 5),
}


def get_config(task: str = "") -> ml_collections.ConfigDict:
  """RIQL hyperparameters; `task` = "env/mode/field" applies (σ, α, K).

  e.g. "hopper/random/dynamics" → huber_sigma 1.0, quantile 0.5, 5 critics.
  Field names: observations, actions, rewards, dynamics.
  """
  config = ml_collections.ConfigDict()
  config.actor_type = "deterministic"  # RIQL's default; "gaussian" also works
  config.hidden_dims = (256, 256)
  config.actor_lr = 3e-4
  config.critic_lr = 3e-4
  config.value_lr = 3e-4
  config.discount = 0.99
  config.target_update_rate = 0.005
  config.expectile = 0.7
  config.temperature = 3.0
  config.max_weight = 100.0
  config.num_critics = 5
  config.quantile = 0.25
  config.huber_sigma = 1.0
  config.q_target_min = -100.0
  config.q_target_max = 1000.0
  config.normalize_observations = True
  config.obs_norm_eps = 1e-3
  config.critic_init = "edac"
  config.cosine_decay = True
  config.max_steps = 3_000_000  # cosine-decay horizon of the actor lr
  config.actor_dropout_rate = 0.0
  config.log_std_min = -5.0
  config.log_std_max = 2.0
  config.act_noise_std = 0.1
  if task:
    parts = tuple(task.split("/"))
    if parts not in TASK_SETTINGS:
      known = sorted("/".join(k) for k in TASK_SETTINGS)
      raise ValueError(f"unknown RIQL task {task!r}; known: {known}")
    config.huber_sigma, config.quantile, config.num_critics = TASK_SETTINGS[parts]
  return config


@flax.struct.dataclass
class RIQLState:
  actor_params: flax.core.FrozenDict
  critic_params: flax.core.FrozenDict
  target_critic_params: flax.core.FrozenDict
  value_params: flax.core.FrozenDict
  actor_opt_state: object
  critic_opt_state: object
  value_opt_state: object
  obs_mean: jax.Array  # [obs_dim]
  obs_std: jax.Array  # [obs_dim], eps already added
  step: jax.Array
  rng: jax.Array
  config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)


def observation_statistics(batch: Transitions, eps: float = 1e-3):
  """μ, σ + eps per dimension over concat(observations, next_observations)."""
  both = jnp.concatenate([batch.observations, batch.next_observations], 0)
  return jnp.mean(both, 0), jnp.std(both, 0) + eps


def _networks(cfg):
  critic = networks.EnsembleCritic(tuple(cfg.hidden_dims), cfg.num_critics,
                                   init_style=cfg.critic_init)
  value = networks.ValueNet(tuple(cfg.hidden_dims))
  return common.make_actor(cfg), critic, value


def _optimizers(cfg):
  return (common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None),
          common.adam(cfg.critic_lr, None), common.adam(cfg.value_lr, None))


def init(key: jax.Array, example_batch: Transitions,
         config: ml_collections.ConfigDict) -> RIQLState:
  """Initialises the agent.

  Pass the whole (corrupted) training set as `example_batch`: with
  `normalize_observations` its observations fix the normalisation statistics.
  """
  common.check_batch(example_batch)
  cfg = common.freeze_config(
      config, get_config(),
      obs_dim=int(example_batch.observations.shape[-1]),
      action_dim=int(example_batch.actions.shape[-1]))
  if cfg.num_critics < 1:
    raise ValueError(f"config.num_critics must be >= 1, got {cfg.num_critics}")
  losses.huber_delta_from_sigma(cfg.huber_sigma)  # validates σ
  if cfg.normalize_observations:
    obs_mean, obs_std = observation_statistics(example_batch, cfg.obs_norm_eps)
  else:
    obs_mean = jnp.zeros((cfg.obs_dim,), jnp.float32)
    obs_std = jnp.ones((cfg.obs_dim,), jnp.float32)
  rng, actor_key, critic_key, value_key = jax.random.split(key, 4)
  row = common.first_row(example_batch)
  actor, critic, value = _networks(cfg)
  actor_params = actor.init(actor_key, row.observations)
  critic_params = critic.init(critic_key, row.observations, row.actions)
  value_params = value.init(value_key, row.observations)
  actor_tx, critic_tx, value_tx = _optimizers(cfg)
  return RIQLState(actor_params=actor_params, critic_params=critic_params,
                   target_critic_params=critic_params, value_params=value_params,
                   actor_opt_state=actor_tx.init(actor_params),
                   critic_opt_state=critic_tx.init(critic_params),
                   value_opt_state=value_tx.init(value_params),
                   obs_mean=obs_mean, obs_std=obs_std,
                   step=jnp.zeros((), jnp.int32), rng=rng, config=cfg)


def _normalize(state, observations):
  return (observations - state.obs_mean) / state.obs_std


def _update(state: RIQLState, batch: Transitions):
  common.check_batch(batch)
  cfg = state.config
  actor, critic, value = _networks(cfg)
  actor_tx, critic_tx, value_tx = _optimizers(cfg)
  rng, dropout_key = jax.random.split(state.rng)
  obs = _normalize(state, batch.observations)
  next_obs = _normalize(state, batch.next_observations)
  actions = batch.actions

  # Targets from the pre-update V and the target ensemble.
  next_v = value.apply(state.value_params, next_obs)
  old_v = value.apply(state.value_params, obs)
  target_q_all = critic.apply(state.target_critic_params, obs, actions)  # [K, B]
  target_q = losses.ensemble_quantile(target_q_all, cfg.quantile)

  # V: expectile regression onto the α-quantile of the target ensemble.
  def value_loss_fn(params):
    v = value.apply(params, obs)
    return jnp.mean(losses.expectile_loss(target_q - v, cfg.expectile)), v

  (value_loss, v), grads = jax.value_and_grad(value_loss_fn, has_aux=True)(
      state.value_params)
  value_params, value_opt_state = common.apply_gradients(
      value_tx, state.value_params, state.value_opt_state, grads)

  # Q: Huber regression of every member onto the clipped TD target.
  targets = jnp.clip(
      losses.td_target(batch.rewards, common.td_masks(batch), next_v,
                       cfg.discount), cfg.q_target_min, cfg.q_target_max)
  delta = losses.huber_delta_from_sigma(cfg.huber_sigma)

  def critic_loss_fn(params):
    q = critic.apply(params, obs, actions)
    return jnp.mean(losses.huber_loss(targets[None] - q, delta)), q

  (critic_loss, q), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
      state.critic_params)
  critic_params, critic_opt_state = common.apply_gradients(
      critic_tx, state.critic_params, state.critic_opt_state, grads)
  target_critic_params = losses.polyak_update(
      state.target_critic_params, critic_params, cfg.target_update_rate)

  # Actor: weighted regression with the quantile advantage (pre-update V).
  advantages = target_q - old_v
  weights = losses.awr_weights(advantages, cfg.temperature, cfg.max_weight)

  def actor_loss_fn(params):
    return common.weighted_actor_loss(actor, cfg.actor_type, params, obs,
                                      actions, weights, dropout_key)

  (actor_loss, actor_metrics), grads = jax.value_and_grad(
      actor_loss_fn, has_aux=True)(state.actor_params)
  actor_params, actor_opt_state = common.apply_gradients(
      actor_tx, state.actor_params, state.actor_opt_state, grads)

  metrics = {
      "value_loss": value_loss, "actor_loss": actor_loss,
      "critic_loss": critic_loss, "v": jnp.mean(v), "q": jnp.mean(q),
      "q_ensemble_std": jnp.mean(jnp.std(q, 0)),
      "advantage": jnp.mean(advantages), "awr_weight": jnp.mean(weights),
      **actor_metrics,
  }
  new_state = state.replace(
      actor_params=actor_params, critic_params=critic_params,
      target_critic_params=target_critic_params, value_params=value_params,
      actor_opt_state=actor_opt_state, critic_opt_state=critic_opt_state,
      value_opt_state=value_opt_state, step=state.step + 1, rng=rng)
  return new_state, metrics


_update_jit = jax.jit(_update)
_update_n_jit = jax.jit(common.make_update_n(_update))


def update(state: RIQLState, batch: Transitions):
  """One jitted RIQL step: (state, batch) -> (state, metrics)."""
  return _update_jit(state, batch)


def update_n(state: RIQLState, batches: Transitions):
  """len(batches) RIQL steps in one lax.scan; metrics stacked on axis 0."""
  return _update_n_jit(state, batches)


def q_values(state: RIQLState, observations: jax.Array,
             actions: jax.Array) -> jax.Array:
  """Online ensemble values Q_k(norm(s), a) for raw observations, [K, N].

  Differentiable in (s, a); used to attack the critic (adversarial
  corruption) and for diagnostics such as the ensemble spread on corrupted
  vs clean transitions.
  """
  _, critic, _ = _networks(state.config)
  return critic.apply(state.critic_params, _normalize(state, observations),
                      actions)


def values(state: RIQLState, observations: jax.Array) -> jax.Array:
  """State values V(norm(s)) for raw observations, [N]."""
  _, _, value = _networks(state.config)
  return value.apply(state.value_params, _normalize(state, observations))


@functools.partial(jax.jit, static_argnames=("deterministic",))
def _act(state, observations, key, deterministic):
  cfg = state.config
  return common.select_action(common.make_actor(cfg), cfg.actor_type,
                              state.actor_params, _normalize(state, observations),
                              key, deterministic, cfg.act_noise_std)


def act(state: RIQLState, observations: jax.Array, key: jax.Array,
        deterministic: bool = True) -> jax.Array:
  """Actions in [−1, 1] for raw (unnormalised) observations."""
  return _act(state, observations, key, bool(deterministic))

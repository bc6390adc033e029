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

import jax
import jax.numpy as jnp
import ml_collections

from jaxrl_llm.offline import networks
from jaxrl_llm.offline.agents import api
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


def observation_statistics(batch: Transitions, eps: float = 1e-3):
  """μ, σ + eps per dimension over concat(observations, next_observations)."""
  both = jnp.concatenate([batch.observations, batch.next_observations], 0)
  return jnp.mean(both, 0), jnp.std(both, 0) + eps


def _networks(cfg):
  """actor, K-critic ensemble (with a Polyak target) and value net, with their optimisers."""
  actor_tx = common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None)
  return {
      "actor": api.Network(common.make_actor(cfg), actor_tx),
      "critic": api.Network(networks.EnsembleCritic(tuple(cfg.hidden_dims), cfg.num_critics,
                                                    init_style=cfg.critic_init),
                            common.adam(cfg.critic_lr, None),
                            init_inputs=("observations", "actions"), target=True),
      "value": api.Network(networks.ValueNet(tuple(cfg.hidden_dims)),
                           common.adam(cfg.value_lr, None)),
  }


def _prepare(cfg, example_batch: Transitions):
  """Validates (K, σ) and fixes the observation statistics.

  Pass the whole (corrupted) training set as `init`'s `example_batch`: with
  `normalize_observations` its observations fix the normalisation statistics.
  """
  if cfg.num_critics < 1:
    raise ValueError(f"config.num_critics must be >= 1, got {cfg.num_critics}")
  losses.huber_delta_from_sigma(cfg.huber_sigma)  # validates σ
  if cfg.normalize_observations:
    obs_mean, obs_std = observation_statistics(example_batch, cfg.obs_norm_eps)
  else:
    obs_mean = jnp.zeros((cfg.obs_dim,), jnp.float32)
    obs_std = jnp.ones((cfg.obs_dim,), jnp.float32)
  return {"obs_mean": obs_mean, "obs_std": obs_std}


def _normalize(state, observations):
  return (observations - state.extras["obs_mean"]) / state.extras["obs_std"]


def _update_step(state: api.AgentState, batch: Transitions, nets, key):
  cfg = state.config
  value, critic = nets["value"].module, nets["critic"].module
  obs = _normalize(state, batch.observations)
  next_obs = _normalize(state, batch.next_observations)
  actions = batch.actions

  # Targets from the pre-update V and the target ensemble.
  next_v = value.apply(state.params["value"], next_obs)
  old_v = value.apply(state.params["value"], obs)
  target_q_all = api.apply_network(state, nets, "critic", obs, actions, target=True)  # [K, B]
  target_q = losses.ensemble_quantile(target_q_all, cfg.quantile)

  # V: expectile regression onto the α-quantile of the target ensemble.
  def value_loss_fn(params):
    v = value.apply(params, obs)
    return jnp.mean(losses.expectile_loss(target_q - v, cfg.expectile)), v

  state, value_loss, v = api.gradient_step(state, nets, "value", value_loss_fn)

  # Q: Huber regression of every member onto the clipped TD target.
  targets = jnp.clip(
      losses.td_target(batch.rewards, common.td_masks(batch), next_v,
                       cfg.discount), cfg.q_target_min, cfg.q_target_max)
  delta = losses.huber_delta_from_sigma(cfg.huber_sigma)

  def critic_loss_fn(params):
    q = critic.apply(params, obs, actions)
    return jnp.mean(losses.huber_loss(targets[None] - q, delta)), q

  state, critic_loss, q = api.gradient_step(state, nets, "critic", critic_loss_fn)
  state = api.update_targets(state, cfg.target_update_rate)

  # Actor: weighted regression with the quantile advantage (pre-update V).
  advantages = target_q - old_v
  weights = losses.awr_weights(advantages, cfg.temperature, cfg.max_weight)

  def actor_loss_fn(params):
    return common.weighted_actor_loss(nets["actor"].module, cfg.actor_type, params, obs,
                                      actions, weights, key)

  state, actor_loss, actor_metrics = api.gradient_step(state, nets, "actor", actor_loss_fn)

  metrics = {
      "value_loss": value_loss, "actor_loss": actor_loss,
      "critic_loss": critic_loss, "v": jnp.mean(v), "q": jnp.mean(q),
      "q_ensemble_std": jnp.mean(jnp.std(q, 0)),
      "advantage": jnp.mean(advantages), "awr_weight": jnp.mean(weights),
      **actor_metrics,
  }
  return state, metrics


_AGENT = api.make_agent(name="RIQL", get_config=get_config, networks=_networks,
                        update_step=_update_step, prepare=_prepare,
                        observation_transform=_normalize)
init, update, update_n, act = _AGENT.init, _AGENT.update, _AGENT.update_n, _AGENT.act


def q_values(state: api.AgentState, observations: jax.Array,
             actions: jax.Array) -> jax.Array:
  """Online ensemble values Q_k(norm(s), a) for raw observations, [K, N].

  Differentiable in (s, a); used to attack the critic (adversarial
  corruption) and for diagnostics such as the ensemble spread on corrupted
  vs clean transitions.
  """
  return api.apply_network(state, _networks(state.config), "critic",
                           _normalize(state, observations), actions)


def values(state: api.AgentState, observations: jax.Array) -> jax.Array:
  """State values V(norm(s)) for raw observations, [N]."""
  return api.apply_network(state, _networks(state.config), "value",
                           _normalize(state, observations))

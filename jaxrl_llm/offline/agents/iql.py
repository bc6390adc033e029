"""Implicit Q-Learning (Kostrikov, Nair, Levine, ICLR 2022).

One update, in the order of the reference implementation (V → actor → Q →
target), with twin critics Q1, Q2 and Polyak targets Q̄1, Q̄2:

  V:      L_V = E[ |τ − 1(u < 0)| u² ],  u = min(Q̄1, Q̄2)(s, a) − V(s)     (Eq. 5)
  actor:  L_π = −E[ min(exp(β (min Q̄(s, a) − V'(s))), 100) · log π(a|s) ] (Eq. 7)
  Q:      L_Q = E[ Σ_i (Q_i(s, a) − r − γ (1 − d) V'(s'))² ]               (Eq. 6)
  target: Q̄ ← (1 − ρ) Q̄ + ρ Q

V' is the value net after this step's V update. β is the paper's inverse
temperature ("temperature" in its configs). The actor's learning rate follows a
cosine decay over `max_steps`. `get_config(domain)` returns the paper's
per-domain settings (locomotion, antmaze, kitchen/adroit).
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

# (expectile τ, inverse temperature β, actor dropout), IQL paper / reference configs.
DOMAIN_SETTINGS = {
    "locomotion": dict(expectile=0.7, temperature=3.0, actor_dropout_rate=0.0,
                       cosine_decay=True),
    "antmaze": dict(expectile=0.9, temperature=10.0, actor_dropout_rate=0.0,
                    cosine_decay=True),
    "kitchen": dict(expectile=0.7, temperature=0.5, actor_dropout_rate=0.1,
                    cosine_decay=True),
    "adroit": dict(expectile=0.7, temperature=0.5, actor_dropout_rate=0.1,
                   cosine_decay=True),
}


def get_config(domain: str = "locomotion") -> ml_collections.ConfigDict:
  """IQL hyperparameters; `domain` picks the paper's τ, β and dropout."""
  domain = domain or "locomotion"
  if domain not in DOMAIN_SETTINGS:
    raise ValueError(
        f"unknown IQL domain {domain!r}; known: {sorted(DOMAIN_SETTINGS)}")
  config = ml_collections.ConfigDict()
  config.actor_type = "gaussian"
  config.hidden_dims = (256, 256)
  config.actor_lr = 3e-4
  config.critic_lr = 3e-4
  config.value_lr = 3e-4
  config.discount = 0.99
  config.target_update_rate = 0.005
  config.max_weight = 100.0
  config.max_steps = 1_000_000  # cosine-decay horizon of the actor lr
  config.log_std_min = -5.0
  config.log_std_max = 2.0
  config.act_noise_std = 0.1
  config.value_layer_norm = False
  config.update(DOMAIN_SETTINGS[domain])
  return config


def _networks(cfg):
  """actor, twin critic (with a Polyak target) and value net, with their optimisers."""
  actor_tx = common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None)
  return {
      "actor": api.Network(common.make_actor(cfg), actor_tx),
      "critic": api.Network(networks.EnsembleCritic(tuple(cfg.hidden_dims), num_critics=2),
                            common.adam(cfg.critic_lr, None),
                            init_inputs=("observations", "actions"), target=True),
      "value": api.Network(networks.ValueNet(tuple(cfg.hidden_dims),
                                             layer_norm=cfg.value_layer_norm),
                           common.adam(cfg.value_lr, None)),
  }


def _update_step(state: api.AgentState, batch: Transitions, nets, key):
  cfg = state.config
  value = nets["value"].module
  obs, actions = batch.observations, batch.actions

  # V: expectile regression onto the target twin-Q minimum.
  target_q = jnp.min(api.apply_network(state, nets, "critic", obs, actions, target=True), 0)

  def value_loss_fn(params):
    v = value.apply(params, obs)
    return jnp.mean(losses.expectile_loss(target_q - v, cfg.expectile)), v

  state, value_loss, v = api.gradient_step(state, nets, "value", value_loss_fn)

  # Actor: AWR with the freshly updated V and the target critic.
  advantages = target_q - value.apply(state.params["value"], obs)
  weights = losses.awr_weights(advantages, cfg.temperature, cfg.max_weight)

  def actor_loss_fn(params):
    return common.weighted_actor_loss(nets["actor"].module, cfg.actor_type, params, obs,
                                      actions, weights, key)

  state, actor_loss, actor_metrics = api.gradient_step(state, nets, "actor", actor_loss_fn)

  # Q: regression onto r + γ m V'(s'), summed over the two heads.
  next_v = value.apply(state.params["value"], batch.next_observations)
  targets = losses.td_target(batch.rewards, common.td_masks(batch), next_v,
                             cfg.discount)

  def critic_loss_fn(params):
    q = nets["critic"].module.apply(params, obs, actions)
    return jnp.mean(jnp.sum(jnp.square(q - targets[None]), 0)), q

  state, critic_loss, q = api.gradient_step(state, nets, "critic", critic_loss_fn)
  state = api.update_targets(state, cfg.target_update_rate)

  metrics = {
      "value_loss": value_loss, "actor_loss": actor_loss,
      "critic_loss": critic_loss, "v": jnp.mean(v), "q": jnp.mean(q),
      "advantage": jnp.mean(advantages), "awr_weight": jnp.mean(weights),
      **actor_metrics,
  }
  return state, metrics


_AGENT = api.make_agent(name="IQL", get_config=get_config, networks=_networks,
                        update_step=_update_step)
init, update, update_n, act = _AGENT.init, _AGENT.update, _AGENT.update_n, _AGENT.act


def q_values(state: api.AgentState, observations: jax.Array,
             actions: jax.Array) -> jax.Array:
  """Online twin-critic values Q_k(s, a), [2, N]. Differentiable in (s, a).

  Used to attack the critic (adversarial corruption) and for diagnostics.
  """
  return api.apply_network(state, _networks(state.config), "critic", observations, actions)


def values(state: api.AgentState, observations: jax.Array) -> jax.Array:
  """State values V(s), [N]: the expectile of Q(s, ·) under the data's actions."""
  return api.apply_network(state, _networks(state.config), "value", observations)

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

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections

from jaxrl_llm.offline import networks
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


@flax.struct.dataclass
class IQLState:
  actor_params: flax.core.FrozenDict
  critic_params: flax.core.FrozenDict
  target_critic_params: flax.core.FrozenDict
  value_params: flax.core.FrozenDict
  actor_opt_state: object
  critic_opt_state: object
  value_opt_state: object
  step: jax.Array
  rng: jax.Array
  config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)


def _networks(cfg):
  critic = networks.EnsembleCritic(tuple(cfg.hidden_dims), num_critics=2)
  value = networks.ValueNet(tuple(cfg.hidden_dims), layer_norm=cfg.value_layer_norm)
  return common.make_actor(cfg), critic, value


def _optimizers(cfg):
  return (common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None),
          common.adam(cfg.critic_lr, None), common.adam(cfg.value_lr, None))


def init(key: jax.Array, example_batch: Transitions,
         config: ml_collections.ConfigDict) -> IQLState:
  """Initialises actor, twin critic (target = copy) and value net."""
  common.check_batch(example_batch)
  cfg = common.freeze_config(
      config, get_config(),
      obs_dim=int(example_batch.observations.shape[-1]),
      action_dim=int(example_batch.actions.shape[-1]))
  rng, actor_key, critic_key, value_key = jax.random.split(key, 4)
  row = common.first_row(example_batch)
  actor, critic, value = _networks(cfg)
  actor_params = actor.init(actor_key, row.observations)
  critic_params = critic.init(critic_key, row.observations, row.actions)
  value_params = value.init(value_key, row.observations)
  actor_tx, critic_tx, value_tx = _optimizers(cfg)
  return IQLState(actor_params=actor_params, critic_params=critic_params,
                  target_critic_params=critic_params, value_params=value_params,
                  actor_opt_state=actor_tx.init(actor_params),
                  critic_opt_state=critic_tx.init(critic_params),
                  value_opt_state=value_tx.init(value_params),
                  step=jnp.zeros((), jnp.int32), rng=rng, config=cfg)


def _update(state: IQLState, batch: Transitions):
  common.check_batch(batch)
  cfg = state.config
  actor, critic, value = _networks(cfg)
  actor_tx, critic_tx, value_tx = _optimizers(cfg)
  rng, dropout_key = jax.random.split(state.rng)
  obs, actions = batch.observations, batch.actions

  # V: expectile regression onto the target twin-Q minimum.
  target_q = jnp.min(critic.apply(state.target_critic_params, obs, actions), 0)

  def value_loss_fn(params):
    v = value.apply(params, obs)
    return jnp.mean(losses.expectile_loss(target_q - v, cfg.expectile)), v

  (value_loss, v), grads = jax.value_and_grad(value_loss_fn, has_aux=True)(
      state.value_params)
  value_params, value_opt_state = common.apply_gradients(
      value_tx, state.value_params, state.value_opt_state, grads)

  # Actor: AWR with the freshly updated V and the target critic.
  advantages = target_q - value.apply(value_params, obs)
  weights = losses.awr_weights(advantages, cfg.temperature, cfg.max_weight)

  def actor_loss_fn(params):
    return common.weighted_actor_loss(actor, cfg.actor_type, params, obs,
                                      actions, weights, dropout_key)

  (actor_loss, actor_metrics), grads = jax.value_and_grad(
      actor_loss_fn, has_aux=True)(state.actor_params)
  actor_params, actor_opt_state = common.apply_gradients(
      actor_tx, state.actor_params, state.actor_opt_state, grads)

  # Q: regression onto r + γ m V'(s'), summed over the two heads.
  next_v = value.apply(value_params, batch.next_observations)
  targets = losses.td_target(batch.rewards, common.td_masks(batch), next_v,
                             cfg.discount)

  def critic_loss_fn(params):
    q = critic.apply(params, obs, actions)
    return jnp.mean(jnp.sum(jnp.square(q - targets[None]), 0)), q

  (critic_loss, q), grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(
      state.critic_params)
  critic_params, critic_opt_state = common.apply_gradients(
      critic_tx, state.critic_params, state.critic_opt_state, grads)

  target_critic_params = losses.polyak_update(
      state.target_critic_params, critic_params, cfg.target_update_rate)

  metrics = {
      "value_loss": value_loss, "actor_loss": actor_loss,
      "critic_loss": critic_loss, "v": jnp.mean(v), "q": jnp.mean(q),
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


def update(state: IQLState, batch: Transitions):
  """One jitted IQL step (V → actor → Q → target): (state, batch) -> (state, metrics)."""
  return _update_jit(state, batch)


def update_n(state: IQLState, batches: Transitions):
  """len(batches) IQL steps in one lax.scan; metrics stacked on axis 0."""
  return _update_n_jit(state, batches)


def q_values(state: IQLState, observations: jax.Array,
             actions: jax.Array) -> jax.Array:
  """Online twin-critic values Q_k(s, a), [2, N]. Differentiable in (s, a).

  Used to attack the critic (adversarial corruption) and for diagnostics.
  """
  _, critic, _ = _networks(state.config)
  return critic.apply(state.critic_params, observations, actions)


def values(state: IQLState, observations: jax.Array) -> jax.Array:
  """State values V(s), [N]: the expectile of Q(s, ·) under the data's actions."""
  _, _, value = _networks(state.config)
  return value.apply(state.value_params, observations)


@functools.partial(jax.jit, static_argnames=("deterministic",))
def _act(state, observations, key, deterministic):
  cfg = state.config
  return common.select_action(common.make_actor(cfg), cfg.actor_type,
                              state.actor_params, observations, key,
                              deterministic, cfg.act_noise_std)


def act(state: IQLState, observations: jax.Array, key: jax.Array,
        deterministic: bool = True) -> jax.Array:
  """Actions in [−1, 1]; deterministic = the mean (IQL's temperature-0 eval)."""
  return _act(state, observations, key, bool(deterministic))

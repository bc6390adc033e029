"""Behaviour cloning (Gaussian or deterministic actor).

Gaussian:      max_θ E_{(s,a)~D}[log π_θ(a|s)]
Deterministic: min_θ E_{(s,a)~D}[||π_θ(s) − a||²]

The baseline of the IQL (Kostrikov et al., ICLR 2022) and RIQL (Yang et al.,
ICLR 2024) papers; the Gaussian head is IQL's actor, so BC here is IQL's
policy-extraction step with all weights equal to 1.
"""

from __future__ import annotations

import functools

import flax
import jax
import jax.numpy as jnp
import ml_collections

from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.types import Transitions


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.actor_type = "gaussian"  # or "deterministic"
  config.hidden_dims = (256, 256)
  config.actor_lr = 3e-4
  config.cosine_decay = False
  config.max_steps = 1_000_000  # cosine-decay horizon when cosine_decay is set
  config.actor_dropout_rate = 0.0
  config.log_std_min = -5.0
  config.log_std_max = 2.0
  config.act_noise_std = 0.1  # exploration noise of the deterministic actor
  return config


@flax.struct.dataclass
class BCState:
  actor_params: flax.core.FrozenDict
  actor_opt_state: object
  step: jax.Array
  rng: jax.Array
  config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)


def _optimizer(cfg):
  return common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None)


def init(key: jax.Array, example_batch: Transitions,
         config: ml_collections.ConfigDict) -> BCState:
  """Initialises the actor on `example_batch` (any number of rows ≥ 1)."""
  common.check_batch(example_batch)
  cfg = common.freeze_config(
      config, get_config(),
      obs_dim=int(example_batch.observations.shape[-1]),
      action_dim=int(example_batch.actions.shape[-1]))
  rng, actor_key = jax.random.split(key)
  obs = common.first_row(example_batch).observations
  actor_params = common.make_actor(cfg).init(actor_key, obs)
  return BCState(actor_params=actor_params,
                 actor_opt_state=_optimizer(cfg).init(actor_params),
                 step=jnp.zeros((), jnp.int32), rng=rng, config=cfg)


def _update(state: BCState, batch: Transitions):
  common.check_batch(batch)
  cfg = state.config
  rng, dropout_key = jax.random.split(state.rng)
  actor = common.make_actor(cfg)
  weights = jnp.ones(batch.rewards.shape, batch.rewards.dtype)

  def loss_fn(params):
    return common.weighted_actor_loss(actor, cfg.actor_type, params,
                                      batch.observations, batch.actions,
                                      weights, dropout_key)

  (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      state.actor_params)
  params, opt_state = common.apply_gradients(
      _optimizer(cfg), state.actor_params, state.actor_opt_state, grads)
  metrics = {"actor_loss": loss, **metrics}
  return state.replace(actor_params=params, actor_opt_state=opt_state,
                       step=state.step + 1, rng=rng), metrics


_update_jit = jax.jit(_update)
_update_n_jit = jax.jit(common.make_update_n(_update))


def update(state: BCState, batch: Transitions):
  """One jitted BC gradient step: (state, batch) -> (state, metrics)."""
  return _update_jit(state, batch)


def update_n(state: BCState, batches: Transitions):
  """len(batches) steps in one lax.scan; metrics stacked on axis 0."""
  return _update_n_jit(state, batches)


@functools.partial(jax.jit, static_argnames=("deterministic",))
def _act(state, observations, key, deterministic):
  cfg = state.config
  return common.select_action(common.make_actor(cfg), cfg.actor_type,
                              state.actor_params, observations, key,
                              deterministic, cfg.act_noise_std)


def act(state: BCState, observations: jax.Array, key: jax.Array,
        deterministic: bool = True) -> jax.Array:
  """Actions in [−1, 1] for observations [obs_dim] or [B, obs_dim]."""
  return _act(state, observations, key, bool(deterministic))

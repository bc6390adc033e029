"""Helpers shared by the agent files: batch checks, optimisers, actor heads.

The agent-building API (state type, `make_agent`) is in `agents/api.py`.

Agents keep their static hyperparameters in the state as a hashable
`ml_collections.FrozenConfigDict` (a non-pytree field), so `update(state,
batch)` needs no extra argument and still jits: networks and optimisers are
rebuilt from the config inside the traced function, which costs nothing at
run time.
"""

from __future__ import annotations

from typing import Any, Callable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxrl_llm.offline import networks
from jaxrl_llm.offline.agents import losses
from jaxrl_llm.offline.types import Transitions

ACTOR_TYPES = ("gaussian", "deterministic")


def check_batch(batch: Transitions, name: str = "batch",
                reward_free: bool = False) -> None:
  """Raises ValueError naming the field when a batch is malformed.

  `name` prefixes the field in the message (e.g. "batch.expert" for a part of
  a ReCOIL batch); `reward_free` batches may carry `rewards=None`. Shapes are
  static under jit, so this runs once per trace at no run-time cost.
  """
  if not isinstance(batch, Transitions):
    raise ValueError(
        f"{name} must be a jaxrl_llm.offline.types.Transitions, got {type(batch)}")
  for field in ("observations", "actions", "next_observations"):
    value = getattr(batch, field)
    if value is None or jnp.ndim(value) != 2:
      raise ValueError(
          f"{name}.{field} must have shape [batch, dim], got "
          f"{None if value is None else jnp.shape(value)}")
  size = jnp.shape(batch.observations)[0]
  for field in ("rewards", "terminals", "timeouts", "masks"):
    value = getattr(batch, field)
    if value is None:
      if field == "masks" or (field == "rewards" and reward_free):
        continue
      raise ValueError(f"{name}.{field} is missing")
    if jnp.shape(value) != (size,):
      raise ValueError(
          f"{name}.{field} must have shape ({size},) like {name}.observations' "
          f"leading axis, got {jnp.shape(value)}")
  for field in ("actions", "next_observations"):
    if jnp.shape(getattr(batch, field))[0] != size:
      raise ValueError(
          f"{name}.{field} has {jnp.shape(getattr(batch, field))[0]} rows but "
          f"{name}.observations has {size}")
  if jnp.shape(batch.next_observations) != jnp.shape(batch.observations):
    raise ValueError(
        f"{name}.next_observations must have the shape of {name}.observations, "
        f"got {jnp.shape(batch.next_observations)} vs "
        f"{jnp.shape(batch.observations)}")


def td_masks(batch: Transitions) -> jax.Array:
  """`m = 1 − terminal`; timeouts do not stop bootstrapping."""
  if batch.masks is not None:
    return batch.masks
  return 1.0 - batch.terminals


def freeze_config(config: ml_collections.ConfigDict, allowed: Any,
                  **extra) -> ml_collections.FrozenConfigDict:
  """Copies `config`, checks its keys against `allowed`, adds `extra` fields."""
  cfg = ml_collections.ConfigDict(
      config.to_dict() if hasattr(config, "to_dict") else dict(config))
  unknown = sorted(set(cfg.keys()) - set(allowed.keys()))
  if unknown:
    raise ValueError(
        f"unknown config option(s) {unknown}; known: {sorted(allowed.keys())}")
  for key, value in extra.items():
    cfg[key] = value
  if "actor_type" in cfg and cfg.actor_type not in ACTOR_TYPES:
    raise ValueError(
        f"config.actor_type must be one of {ACTOR_TYPES}, got {cfg.actor_type!r}")
  return ml_collections.FrozenConfigDict(cfg)


def adam(learning_rate: float, cosine_decay_steps: int | None) -> optax.GradientTransformation:
  """Adam, optionally with IQL's cosine decay of the learning rate to 0."""
  if cosine_decay_steps:
    learning_rate = optax.cosine_decay_schedule(learning_rate, cosine_decay_steps)
  return optax.adam(learning_rate)


def make_actor(cfg) -> nn.Module:
  if cfg.actor_type == "gaussian":
    return networks.GaussianActor(tuple(cfg.hidden_dims), cfg.action_dim,
                                  log_std_min=cfg.log_std_min,
                                  log_std_max=cfg.log_std_max,
                                  dropout_rate=cfg.actor_dropout_rate)
  return networks.DeterministicActor(tuple(cfg.hidden_dims), cfg.action_dim,
                                     dropout_rate=cfg.actor_dropout_rate)


def weighted_actor_loss(actor: nn.Module, actor_type: str, params,
                        observations: jax.Array, actions: jax.Array,
                        weights: jax.Array, dropout_key: jax.Array):
  """Weighted behaviour cloning, the policy-extraction step of BC/IQL/RIQL.

  Gaussian:      L = −E[w · log π(a|s)]          (AWR, IQL Eq. 7)
  Deterministic: L =  E[w · ||π(s) − a||²]        (RIQL's default actor)
  With w ≡ 1 both are plain behaviour cloning. Returns (loss, metrics).
  """
  chex.assert_rank(weights, 1)
  out = actor.apply(params, observations, training=True,
                    rngs={"dropout": dropout_key})
  if actor_type == "gaussian":
    mean, log_std = out
    per_sample = -losses.gaussian_log_prob(mean, log_std, actions)
    metrics = {"actor_std": jnp.mean(jnp.exp(log_std))}
  else:
    mean = out
    per_sample = jnp.sum(jnp.square(mean - actions), axis=-1)
    metrics = {}
  metrics["actor_mse"] = jnp.mean(jnp.square(mean - actions))
  return jnp.mean(weights * per_sample), metrics


def select_action(actor: nn.Module, actor_type: str, params,
                  observations: jax.Array, key: jax.Array, deterministic: bool,
                  noise_std: float) -> jax.Array:
  """Mean action (deterministic) or a sample, clipped to [−1, 1].

  A Gaussian actor samples from π(·|s); a deterministic actor adds N(0,
  noise_std²) exploration noise when `deterministic` is False.
  """
  squeeze = jnp.ndim(observations) == 1
  if squeeze:
    observations = observations[None]
  out = actor.apply(params, observations)
  mean = out[0] if actor_type == "gaussian" else out
  if deterministic:
    actions = mean
  else:
    std = jnp.exp(out[1]) if actor_type == "gaussian" else noise_std
    actions = mean + std * jax.random.normal(key, mean.shape, mean.dtype)
  actions = jnp.clip(actions, -1.0, 1.0)
  return actions[0] if squeeze else actions


def apply_gradients(tx: optax.GradientTransformation, params, opt_state, grads):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make_update_n(update_step: Callable) -> Callable:
  """`update_n(state, batches)`: lax.scan of `update_step` over axis 0.

  Returns the final state and the per-step metrics stacked on axis 0.
  """

  def update_n(state, batches: Transitions):
    return jax.lax.scan(update_step, state, batches)

  return update_n


def first_row(batch: Transitions) -> Transitions:
  """A one-transition slice of `batch`, enough to initialise parameters."""
  return jax.tree.map(lambda x: x[:1], batch)

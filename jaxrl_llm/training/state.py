"""The explicit training state pytree and the PPO value head."""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jaxrl_llm.models import lora


class TrainState(NamedTuple):
  """Everything an update changes.

  step:         int32 scalar, optimiser steps taken.
  params:       the policy LM's parameters (``jaxrl_llm.models`` pytree), or a
                ``models.lora.LoraParams`` (frozen base + trainable adapters).
  value_params: the value head (``{"w": [D], "b": []}``) for PPO, else ``{}``.
  opt_state:    optax state of ``(lora.trainable(params), value_params)``: with LoRA
                only the adapters (and the value head) have optimiser state.
  """

  step: jax.Array
  params: Any
  value_params: Any
  opt_state: Any


def init_value_head(hidden_size: int, dtype=jnp.float32) -> dict:
  """A zero-initialised linear value head ``V(h) = h . w + b`` (zero: V starts at 0)."""
  return {"w": jnp.zeros((hidden_size,), dtype), "b": jnp.zeros((), dtype)}


def value_head_apply(value_params: dict, hidden: jax.Array) -> jax.Array:
  """``[..., D] -> [...]`` float32 values."""
  return (jnp.einsum("...d,d->...", hidden.astype(jnp.float32), value_params["w"].astype(jnp.float32))
          + value_params["b"].astype(jnp.float32))


def init_train_state(params, optimizer: optax.GradientTransformation,
                     value_params=None) -> TrainState:
  """Step 0 state over ``(params, value_params)`` (``value_params``: ``{}`` without a critic).

  The state holds ``params`` itself, not a copy. An update jitted with the state
  donated (``donate_argnums=0``, as experiments/rl.py does) frees those buffers, so
  any other reference to them (e.g. a frozen reference model for the KL) must be a
  copy: ``ref = jax.tree.map(jnp.copy, params)``. With ``params`` a
  ``lora.LoraParams`` the optimiser state covers only its adapters.
  """
  value_params = {} if value_params is None else value_params
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, value_params=value_params,
                    opt_state=optimizer.init((lora.trainable(params), value_params)))


def trained_params(state: TrainState):
  """What the optimiser updates: ``(lora.trainable(params), value_params)``."""
  return lora.trainable(state.params), state.value_params


def apply_gradients(state: TrainState, optimizer: optax.GradientTransformation,
                    grads) -> tuple:
  """One optimiser step with ``grads`` over :func:`trained_params`: ``(new state, |grads|)``.

  With LoRA params only the adapters move (the frozen base is put back unchanged).
  """
  trained = trained_params(state)
  updates, opt_state = optimizer.update(grads, state.opt_state, trained)
  new_trainable, value_params = optax.apply_updates(trained, updates)
  params = lora.replace_trainable(state.params, new_trainable)
  return TrainState(state.step + 1, params, value_params, opt_state), optax.tree.norm(grads)

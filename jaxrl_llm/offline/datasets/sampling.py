"""Uniform batch samplers: pure functions of a JAX key, `jit`-able on device-resident data."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxrl_llm.offline.types import Transitions


def _num_transitions(data: Transitions) -> int:
  return data.observations.shape[0]


def sample_batch(key: chex.PRNGKey, data: Transitions, batch_size: int) -> Transitions:
  """Uniformly samples `batch_size` transitions with replacement; a pure function of `key`.

  `jit`-compatible with `batch_size` static; put `data` on device once
  (`jax.device_put`) to avoid re-transfers.
  """
  idx = jax.random.randint(key, (batch_size,), 0, _num_transitions(data))
  return jax.tree_util.tree_map(lambda x: jnp.take(jnp.asarray(x), idx, axis=0), data)


def sample_batches(key: chex.PRNGKey, data: Transitions, batch_size: int, num_batches: int
                   ) -> Transitions:
  """`num_batches` independent batches stacked on a leading axis, for `update_n` (`lax.scan`).

  Every field gets shape `[num_batches, batch_size, ...]`.
  """
  idx = jax.random.randint(key, (num_batches, batch_size), 0, _num_transitions(data))
  return jax.tree_util.tree_map(lambda x: jnp.take(jnp.asarray(x), idx, axis=0), data)

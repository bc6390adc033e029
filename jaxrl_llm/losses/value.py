"""Clipped value-function loss for PPO critics."""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import aggregate, masked_mean
from jaxrl_llm.losses.types import LossOutput


def clipped_value_loss(values: jax.Array, old_values: jax.Array, returns: jax.Array,
                       mask: jax.Array, *, clip: Optional[float] = 0.5,
                       agg_mode: str = "token-mean",
                       horizon: Optional[float] = None) -> LossOutput:
  """PPO value loss with value clipping, per token::

      v_clip = old_v + clip(v - old_v, -c, c)
      L      = 0.5 * max((v - R)^2, (v_clip - R)^2)

  Schulman et al. 2017 (PPO, as in OpenAI baselines). Same as verl 0.9.1
  ``compute_value_loss`` and OpenRLHF ``ValueLoss`` (``clip=None`` disables it).
  Metric ``vf_clipfrac``: fraction of tokens where the clipped term is larger.
  """
  _checks.check_rank(values, 2, "values")
  _checks.check_shape(old_values, values.shape, "old_values")
  _checks.check_shape(returns, values.shape, "returns")
  _checks.check_shape(mask, values.shape, "mask")
  m = jnp.asarray(mask).astype(values.dtype)
  unclipped = jnp.square(values - returns)
  if clip is None:
    per_token, clipped = unclipped, unclipped
  else:
    if clip <= 0:
      raise ValueError(f"clip must be positive or None, got {clip}")
    v_clip = old_values + jnp.clip(values - old_values, -clip, clip)
    clipped = jnp.square(v_clip - returns)
    per_token = jnp.maximum(unclipped, clipped)
  total, count = aggregate(0.5 * per_token, m, agg_mode, horizon=horizon)
  metrics = {"vf_clipfrac": jax.lax.stop_gradient(
      masked_mean((clipped > unclipped).astype(m.dtype), m))}
  return LossOutput(total, count, metrics)

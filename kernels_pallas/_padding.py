"""Small shape helpers shared by the Pallas backends."""

import jax
import jax.numpy as jnp


def round_up(x: int, multiple: int) -> int:
  return -(-x // multiple) * multiple


def cdiv(a: int, b: int) -> int:
  return -(-a // b)


def pad_rows(x, rows: int, value=0):
  """Pads axis 0 of ``x`` to ``rows`` (None passes through)."""
  if x is None or x.shape[0] == rows:
    return x
  pad = [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1)
  return jnp.pad(x, pad, constant_values=value)


def pad_cols(x: jax.Array, cols: int) -> jax.Array:
  if x.shape[1] == cols:
    return x
  return jnp.pad(x, [(0, 0), (0, cols - x.shape[1])])

"""Input validation shared by the objectives: chex shape checks that raise ValueError.

chex raises ``AssertionError``; the library contract is a ``ValueError`` that names
the offending tensor or option, so every check goes through these wrappers. All
checks are on static shapes, so they run at trace time and cost nothing under jit.
"""

from typing import Sequence

import chex
import jax.numpy as jnp


def check_rank(x, rank: int, name: str) -> None:
  try:
    chex.assert_rank(x, rank)
  except AssertionError as e:
    raise ValueError(
        f"{name} must have rank {rank}, got shape {jnp.shape(x)}: {e}") from None


def check_shape(x, shape: Sequence[int | None], name: str) -> None:
  try:
    chex.assert_shape(x, tuple(shape))
  except AssertionError as e:
    raise ValueError(
        f"{name} must have shape {tuple(shape)}, got {jnp.shape(x)}: {e}"
    ) from None


def check_floating(x, name: str) -> None:
  if not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
    raise ValueError(f"{name} must be a floating array, got dtype {jnp.asarray(x).dtype}")


def check_choice(value: str, choices: Sequence[str], name: str) -> None:
  if value not in choices:
    raise ValueError(f"unknown {name} {value!r}; expected one of {sorted(choices)}")


def per_sequence_to_tokens(x, shape: tuple[int, int], name: str):
  """Broadcasts a per-sequence ``[B]`` array to ``[B, T]``; ``[B, T]`` passes through."""
  x = jnp.asarray(x)
  if x.ndim == 1:
    check_shape(x, shape[:1], name)
    return jnp.broadcast_to(x[:, None], shape)
  if x.ndim == 2:
    check_shape(x, shape, name)
    return x
  raise ValueError(f"{name} must be [B] or [B, T] with [B, T] = {shape}, got {x.shape}")

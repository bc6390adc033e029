"""Shared data types of the offline-RL stack (DESIGN.md "Shared types")."""

from __future__ import annotations

from typing import NamedTuple, Optional

import jax


class Transitions(NamedTuple):
  """A batch (or a whole dataset) of transitions, leading axis = transition index.

  `terminals` marks true environment termination (no bootstrapping past it);
  `timeouts` marks truncation by a time limit (bootstrapping continues). The
  TD mask used by agents is `masks = 1 - terminals`.
  """

  observations: jax.Array  # [N, obs_dim]
  actions: jax.Array  # [N, act_dim]
  rewards: jax.Array  # [N]
  next_observations: jax.Array  # [N, obs_dim]
  terminals: jax.Array  # [N] float32 in {0, 1}
  timeouts: jax.Array  # [N] float32 in {0, 1}
  masks: Optional[jax.Array] = None  # [N] = 1 - terminals
  next_actions: Optional[jax.Array] = None  # [N, act_dim]
  goals: Optional[jax.Array] = None  # [N, goal_dim]


def goal_observations(observations: jax.Array, goals: jax.Array) -> jax.Array:
  """A goal-conditioned policy's input: ``[..., obs_dim + goal_dim]`` = [s, g]."""
  return jax.numpy.concatenate([observations, goals], axis=-1)

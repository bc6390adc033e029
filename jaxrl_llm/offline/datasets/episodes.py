"""Episode boundaries and returns, concatenation, and IQL's reward/action preprocessing."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from jaxrl_llm.offline.datasets.validation import f32, validate_transitions
from jaxrl_llm.offline.types import Transitions


def episode_ends(data: Transitions) -> np.ndarray:
  """`ends[i] = 1` if transition i is the last of its episode (IQL's `dones_float`).

  An episode ends at a terminal, a timeout, where `observations[i+1] != next_observations[i]`
  (a boundary not marked in the data), and at the last transition.
  """
  obs = np.asarray(data.observations)
  nxt = np.asarray(data.next_observations)
  n = obs.shape[0]
  ends = (np.asarray(data.terminals) > 0) | (np.asarray(data.timeouts) > 0)
  if n > 1:
    jump = np.any(np.abs(obs[1:] - nxt[:-1]).reshape(n - 1, -1) > 1e-6, axis=1)
    ends[:-1] |= jump
  ends[-1] = True
  return ends


def episode_returns(data: Transitions) -> np.ndarray:
  """Undiscounted return of every episode (segments split by `episode_ends`)."""
  ends = episode_ends(data)
  episode_id = np.concatenate([[0], np.cumsum(ends)[:-1]])
  return np.bincount(episode_id, weights=np.asarray(data.rewards, np.float64))


def scale_locomotion_rewards(data: Transitions, scale: float = 1000.0) -> Transitions:
  """IQL locomotion reward scaling: `r <- r * scale / (max_ep_return - min_ep_return)`.

  Kostrikov et al., "Offline RL with Implicit Q-Learning", ICLR 2022 (`train_offline.py`).
  """
  returns = episode_returns(data)
  spread = float(returns.max() - returns.min())
  if spread <= 0:
    raise ValueError("scale_locomotion_rewards: all episode returns are equal; cannot scale `rewards`.")
  return data._replace(rewards=f32(np.asarray(data.rewards) * (scale / spread)))


def shift_antmaze_rewards(data: Transitions, shift: float = -1.0) -> Transitions:
  """IQL AntMaze reward shaping: `r <- r - 1` (sparse 0/1 reward becomes -1/0)."""
  return data._replace(rewards=f32(np.asarray(data.rewards) + shift))


def scale_rewards(data: Transitions, mode: str) -> Transitions:
  """Reward preprocessing by name: 'locomotion', 'antmaze' or 'none'."""
  if mode == "locomotion":
    return scale_locomotion_rewards(data)
  if mode == "antmaze":
    return shift_antmaze_rewards(data)
  if mode == "none":
    return data
  raise ValueError(f"Unknown reward scaling `mode` {mode!r}; known: 'locomotion', 'antmaze', 'none'.")


def clip_actions(data: Transitions, limit: float = 1.0 - 1e-5) -> Transitions:
  """Clips dataset actions to `[-limit, limit]` (IQL, so `log pi(a|s)` stays finite)."""
  return data._replace(actions=np.clip(np.asarray(data.actions), -limit, limit))


def concatenate(datasets: Sequence[Transitions]) -> Transitions:
  """Concatenates datasets along the transition axis (e.g. medium + expert)."""
  if not datasets:
    raise ValueError("concatenate: `datasets` is empty.")
  fields = {}
  for name in Transitions._fields:
    values = [getattr(d, name) for d in datasets]
    if all(v is None for v in values):
      fields[name] = None
    elif any(v is None for v in values):
      raise ValueError(f"concatenate: field `{name}` is present in some datasets but not all.")
    else:
      fields[name] = np.concatenate([np.asarray(v) for v in values], axis=0)
  return validate_transitions(Transitions(**fields), "concatenated dataset")

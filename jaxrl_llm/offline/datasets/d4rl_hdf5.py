"""D4RL-format HDF5 files (datasets at the file root) <-> `Transitions`.

D4RL's `qlearning_dataset` semantics: without `next_observations`, the successor
row is the next observation and rows whose successor is another episode's are dropped.
"""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from jaxrl_llm.offline.datasets.validation import f32, require_keys, validate_transitions
from jaxrl_llm.offline.types import Transitions


def transitions_from_d4rl_arrays(data: Mapping[str, np.ndarray], source: str = "D4RL arrays"
                                 ) -> Transitions:
  """Builds `Transitions` from D4RL-layout arrays (D4RL's `qlearning_dataset` semantics).

  Required keys: `observations, actions, rewards, terminals`; `timeouts` (all zero if
  absent) and `next_observations` are optional.

  * With `next_observations`: every row is a transition, kept as is.
  * Without it, `next_observations[i] = observations[i+1]`, and a row whose successor row
    belongs to another episode has no valid next observation: rows with `timeouts[i] = 1`
    (and the very last row unless it is terminal) are dropped, as D4RL does. A terminal row
    is kept with `next_observations[i] = observations[i]`: its successor is never
    bootstrapped (`masks = 0`), so the value only has to be finite.
  """
  require_keys(data, ("observations", "actions", "rewards", "terminals"), source)
  obs = f32(data["observations"])
  n = obs.shape[0]
  for key in ("actions", "rewards", "terminals", "timeouts", "next_observations"):
    if key in data and np.shape(data[key])[0] != n:
      raise ValueError(
          f"{source}: field `{key}` has length {np.shape(data[key])[0]} but `observations` has length {n}.")
  actions = f32(data["actions"])
  rewards = f32(data["rewards"]).reshape(n)
  terminals = f32(np.asarray(data["terminals"]).reshape(n))
  timeouts = f32(np.asarray(data["timeouts"]).reshape(n)) if "timeouts" in data else np.zeros(n, np.float32)
  if "next_observations" in data:
    next_obs = f32(data["next_observations"])
    keep = np.ones(n, bool)
  else:
    next_obs = np.concatenate([obs[1:], obs[-1:]], axis=0)
    is_terminal = terminals > 0
    next_obs[is_terminal] = obs[is_terminal]
    keep = ~((timeouts > 0) & ~is_terminal)
    if not is_terminal[-1]:
      keep[-1] = False  # the last row's successor is not stored
    # The row before a dropped row is now the last transition of its episode: a truncation.
    timeouts = np.zeros(n, np.float32)
    before_dropped = np.flatnonzero(~keep) - 1
    before_dropped = before_dropped[before_dropped >= 0]
    timeouts[before_dropped] = np.where(is_terminal[before_dropped], 0.0, 1.0)
  trans = Transitions(observations=obs[keep], actions=actions[keep], rewards=rewards[keep],
                      next_observations=next_obs[keep], terminals=terminals[keep],
                      timeouts=timeouts[keep])
  return validate_transitions(trans, source)


def load_d4rl_hdf5(path: str) -> Transitions:
  """Loads a D4RL-format HDF5 file (datasets at the file root) into `Transitions`."""
  import h5py

  if not os.path.exists(path):
    raise FileNotFoundError(f"D4RL HDF5 file not found: {path}")
  with h5py.File(path, "r") as f:
    arrays = {k: f[k][()] for k in f.keys() if isinstance(f[k], h5py.Dataset)}
  return transitions_from_d4rl_arrays(arrays, source=f"D4RL file {path}")


def save_d4rl_hdf5(path: str, data: Transitions) -> None:
  """Writes `Transitions` in D4RL layout (root datasets, incl. `next_observations`)."""
  import h5py

  data = validate_transitions(data)
  with h5py.File(path, "w") as f:
    for name in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
      f.create_dataset(name, data=np.asarray(getattr(data, name)))

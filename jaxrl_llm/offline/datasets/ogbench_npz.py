"""OGBench's compact npz layout -> `Transitions` (read locally, no download)."""

from __future__ import annotations

import os
from typing import Mapping

import numpy as np

from jaxrl_llm.offline.datasets.validation import f32, require_keys, validate_transitions
from jaxrl_llm.offline.types import Transitions


def transitions_from_ogbench_arrays(data: Mapping[str, np.ndarray], source: str = "OGBench arrays"
                                    ) -> Transitions:
  """Builds `Transitions` from OGBench's compact layout.

  OGBench stores each trajectory as rows `s_0 .. s_T` with `terminals = 1` on the last row
  `s_T`, whose action has no successor (ogbench `utils.load_dataset`). Transitions are the
  rows with `terminals = 0`, and `next_observations[i] = observations[i+1]`. OGBench's
  trajectory ends are time limits, so they become `timeouts` here (on the last *kept* row of
  each trajectory); `terminals` are 0 unless the file carries `masks` (singletask
  relabelling: `terminals = 1 - masks`). `rewards` default to 0 (reward-free data);
  `goals` are read from an optional `goals` key.
  """
  require_keys(data, ("observations", "actions", "terminals"), source)
  obs = f32(data["observations"])
  n = obs.shape[0]
  for key in ("actions", "terminals", "rewards", "masks", "goals"):
    if key in data and np.shape(data[key])[0] != n:
      raise ValueError(
          f"{source}: field `{key}` has length {np.shape(data[key])[0]} but `observations` has length {n}.")
  traj_end = f32(data["terminals"]).reshape(n) > 0
  if n == 0 or not traj_end[-1]:
    raise ValueError(f"{source}: field `terminals` must mark the last row of every trajectory "
                     "(the final row must have terminals=1).")
  keep = ~traj_end
  next_keep = np.concatenate([[False], keep[:-1]])
  last_of_traj = np.concatenate([traj_end[1:], [True]])[keep]
  rewards = f32(data["rewards"]).reshape(n)[keep] if "rewards" in data else np.zeros(keep.sum(), np.float32)
  if "masks" in data:
    terminals = 1.0 - f32(data["masks"]).reshape(n)[keep]
  else:
    terminals = np.zeros(keep.sum(), np.float32)
  timeouts = np.where(terminals > 0, 0.0, last_of_traj).astype(np.float32)
  trans = Transitions(observations=obs[keep], actions=f32(data["actions"])[keep], rewards=rewards,
                      next_observations=obs[next_keep], terminals=f32(terminals), timeouts=timeouts,
                      goals=f32(data["goals"])[keep] if "goals" in data else None)
  return validate_transitions(trans, source)


def load_ogbench_npz(path: str) -> Transitions:
  """Loads an OGBench-format npz file into `Transitions` (no download)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"OGBench npz file not found: {path}")
  with np.load(path) as f:
    arrays = {k: f[k] for k in f.files}
  return transitions_from_ogbench_arrays(arrays, source=f"OGBench file {path}")

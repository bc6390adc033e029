"""Offline datasets as `Transitions`: Minari, D4RL-format HDF5 and OGBench npz loaders.

Conventions (DESIGN.md, IQL's `dataset_utils.py`, D4RL's `qlearning_dataset`):

* `terminals[i] = 1` only when the environment *terminated* after transition i (no
  bootstrapping: `masks = 1 - terminals`).
* `timeouts[i] = 1` when the episode was *truncated* after transition i (time limit or the
  end of a stored trajectory); the value of `next_observations[i]` is still bootstrapped.
* `next_observations[i]` is always the observation that followed `observations[i]` in the
  same episode, never the first observation of the next episode.

Loaders return NumPy-backed `Transitions` (float32); `sample_batch`/`sample_batches` are
pure functions of a JAX key and run under `jit` on device-resident datasets.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.offline.types import Transitions

__all__ = [
    "validate_transitions",
    "transitions_from_d4rl_arrays",
    "load_d4rl_hdf5",
    "save_d4rl_hdf5",
    "transitions_from_ogbench_arrays",
    "load_ogbench_npz",
    "transitions_from_episodes",
    "load_minari",
    "save_minari_dataset",
    "minari_dataset_dir",
    "episode_ends",
    "episode_returns",
    "scale_locomotion_rewards",
    "shift_antmaze_rewards",
    "scale_rewards",
    "clip_actions",
    "concatenate",
    "sample_batch",
    "sample_batches",
    "normalized_score",
    "D4RL_REF_SCORES",
]

# D4RL `infos.py` reference returns (random, expert) used for `100 * (R - min) / (max - min)`.
# They were measured on the *v2* (mujoco-py) environments; gymnasium v5 physics differ slightly,
# so locally generated datasets also store their own measured random/expert returns.
D4RL_REF_SCORES: Dict[str, tuple] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "antmaze": (0.0, 1.0),
}


# ----------------------------------------------------------------------------- validation


def _require(data: Mapping[str, Any], keys: Sequence[str], source: str) -> None:
  missing = [k for k in keys if k not in data]
  if missing:
    raise ValueError(
        f"{source}: missing required key(s) {missing}; found keys {sorted(data.keys())}.")


def validate_transitions(data: Transitions, source: str = "dataset") -> Transitions:
  """Checks field shapes, lengths and finiteness; fills `masks = 1 - terminals` if absent.

  Raises a ValueError that names the offending field for: a field whose leading length
  differs from `observations`, observations/next_observations of different shapes, NaN or
  inf values, terminals/timeouts outside {0, 1}, or rewards that are not one value per
  transition.
  """
  if not isinstance(data, Transitions):
    raise ValueError(f"{source}: expected a Transitions, got {type(data).__name__}.")
  n = None
  for name, value in zip(Transitions._fields, data):
    if value is None:
      continue
    shape = np.shape(value)
    if len(shape) == 0:
      raise ValueError(f"{source}: field `{name}` is a scalar; expected a leading transition axis.")
    if n is None:
      n = shape[0]
    elif shape[0] != n:
      raise ValueError(
          f"{source}: field `{name}` has length {shape[0]} but `observations` has length {n}.")
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
      bad = int(np.argmax(~np.isfinite(arr).reshape(shape[0], -1).all(axis=1)))
      raise ValueError(f"{source}: field `{name}` contains NaN/inf (first at transition {bad}).")
  for name in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
    if getattr(data, name) is None:
      raise ValueError(f"{source}: required field `{name}` is None.")
  if np.shape(data.observations) != np.shape(data.next_observations):
    raise ValueError(
        f"{source}: field `next_observations` has shape {np.shape(data.next_observations)} but "
        f"`observations` has shape {np.shape(data.observations)}.")
  for name in ("rewards", "terminals", "timeouts", "masks"):
    value = getattr(data, name)
    if value is not None and np.ndim(value) != 1:
      raise ValueError(f"{source}: field `{name}` must be 1-D [N]; got shape {np.shape(value)}.")
  for name in ("terminals", "timeouts", "masks"):
    value = getattr(data, name)
    if value is not None and not np.all(np.isin(np.asarray(value), (0, 1))):
      raise ValueError(f"{source}: field `{name}` must contain only 0/1 values.")
  if data.masks is None:
    data = data._replace(masks=(1.0 - np.asarray(data.terminals, np.float32)).astype(np.float32))
  return data


def _f32(x) -> np.ndarray:
  return np.asarray(x, dtype=np.float32)


# ----------------------------------------------------------------------------- D4RL HDF5


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
  _require(data, ("observations", "actions", "rewards", "terminals"), source)
  obs = _f32(data["observations"])
  n = obs.shape[0]
  for key in ("actions", "rewards", "terminals", "timeouts", "next_observations"):
    if key in data and np.shape(data[key])[0] != n:
      raise ValueError(
          f"{source}: field `{key}` has length {np.shape(data[key])[0]} but `observations` has length {n}.")
  actions = _f32(data["actions"])
  rewards = _f32(data["rewards"]).reshape(n)
  terminals = _f32(np.asarray(data["terminals"]).reshape(n))
  timeouts = _f32(np.asarray(data["timeouts"]).reshape(n)) if "timeouts" in data else np.zeros(n, np.float32)
  if "next_observations" in data:
    next_obs = _f32(data["next_observations"])
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


# ----------------------------------------------------------------------------- OGBench npz


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
  _require(data, ("observations", "actions", "terminals"), source)
  obs = _f32(data["observations"])
  n = obs.shape[0]
  for key in ("actions", "terminals", "rewards", "masks", "goals"):
    if key in data and np.shape(data[key])[0] != n:
      raise ValueError(
          f"{source}: field `{key}` has length {np.shape(data[key])[0]} but `observations` has length {n}.")
  traj_end = _f32(data["terminals"]).reshape(n) > 0
  if n == 0 or not traj_end[-1]:
    raise ValueError(f"{source}: field `terminals` must mark the last row of every trajectory "
                     "(the final row must have terminals=1).")
  keep = ~traj_end
  next_keep = np.concatenate([[False], keep[:-1]])
  last_of_traj = np.concatenate([traj_end[1:], [True]])[keep]
  rewards = _f32(data["rewards"]).reshape(n)[keep] if "rewards" in data else np.zeros(keep.sum(), np.float32)
  if "masks" in data:
    terminals = 1.0 - _f32(data["masks"]).reshape(n)[keep]
  else:
    terminals = np.zeros(keep.sum(), np.float32)
  timeouts = np.where(terminals > 0, 0.0, last_of_traj).astype(np.float32)
  trans = Transitions(observations=obs[keep], actions=_f32(data["actions"])[keep], rewards=rewards,
                      next_observations=obs[next_keep], terminals=_f32(terminals), timeouts=timeouts,
                      goals=_f32(data["goals"])[keep] if "goals" in data else None)
  return validate_transitions(trans, source)


def load_ogbench_npz(path: str) -> Transitions:
  """Loads an OGBench-format npz file into `Transitions` (no download)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"OGBench npz file not found: {path}")
  with np.load(path) as f:
    arrays = {k: f[k] for k in f.files}
  return transitions_from_ogbench_arrays(arrays, source=f"OGBench file {path}")


# ----------------------------------------------------------------------------- Minari


def transitions_from_episodes(episodes: Iterable[Mapping[str, Any]], source: str = "episodes"
                              ) -> Transitions:
  """Flattens Minari-style episodes into `Transitions`.

  Each episode has `observations` [T+1, ...] (or a dict with `observation` and optional
  `desired_goal`), `actions` [T, ...], `rewards`, `terminations`, `truncations` [T]. An
  episode that ends neither terminated nor truncated (e.g. the open end of a replay buffer)
  gets `timeouts = 1` on its last step so that episode boundaries stay visible.
  """
  parts: Dict[str, List[np.ndarray]] = {k: [] for k in Transitions._fields}
  has_goals = False
  for e, ep in enumerate(episodes):
    _require(ep, ("observations", "actions", "rewards", "terminations", "truncations"), f"{source} episode {e}")
    obs = ep["observations"]
    goals = None
    if isinstance(obs, Mapping):
      _require(obs, ("observation",), f"{source} episode {e} observations")
      goals = obs.get("desired_goal")
      obs = obs["observation"]
    obs = _f32(obs)
    t = len(ep["rewards"])
    for key in ("actions", "terminations", "truncations"):
      if len(ep[key]) != t:
        raise ValueError(f"{source} episode {e}: field `{key}` has length {len(ep[key])} "
                         f"but `rewards` has length {t}.")
    if obs.shape[0] != t + 1:
      raise ValueError(f"{source} episode {e}: field `observations` has length {obs.shape[0]}; "
                       f"expected len(rewards) + 1 = {t + 1}.")
    if t == 0:
      continue
    term = _f32(ep["terminations"])
    trunc = _f32(ep["truncations"])
    if term[-1] == 0 and trunc[-1] == 0:
      trunc = trunc.copy()
      trunc[-1] = 1.0
    parts["observations"].append(obs[:-1])
    parts["next_observations"].append(obs[1:])
    parts["actions"].append(_f32(ep["actions"]))
    parts["rewards"].append(_f32(ep["rewards"]))
    parts["terminals"].append(term)
    parts["timeouts"].append(np.where(term > 0, 0.0, trunc).astype(np.float32))
    if goals is not None:
      has_goals = True
      parts["goals"].append(_f32(goals)[:-1])
  if not parts["observations"]:
    raise ValueError(f"{source}: no transitions (all episodes empty).")
  cat = {k: np.concatenate(v, axis=0) for k, v in parts.items() if v}
  trans = Transitions(observations=cat["observations"], actions=cat["actions"], rewards=cat["rewards"],
                      next_observations=cat["next_observations"], terminals=cat["terminals"],
                      timeouts=cat["timeouts"], goals=cat.get("goals") if has_goals else None)
  return validate_transitions(trans, source)


def minari_dataset_dir(dataset_id: str, datasets_path: Optional[str] = None) -> str:
  """`<root>/<dataset_id>`, with root = `datasets_path`, `$MINARI_DATASETS_PATH` or ~/.minari/datasets."""
  root = datasets_path or os.environ.get("MINARI_DATASETS_PATH") or os.path.join(
      os.path.expanduser("~"), ".minari", "datasets")
  return os.path.join(root, dataset_id)


def load_minari(dataset_id: str, datasets_path: Optional[str] = None) -> Transitions:
  """Loads a *local* Minari dataset into `Transitions`; never downloads.

  The dataset is read from `minari_dataset_dir(dataset_id, datasets_path)/data`.
  """
  from minari import MinariDataset

  data_dir = os.path.join(minari_dataset_dir(dataset_id, datasets_path), "data")
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(
        f"Minari dataset {dataset_id!r} not found locally at {data_dir} (set MINARI_DATASETS_PATH "
        "or pass datasets_path; datasets are generated locally, never downloaded).")
  ds = MinariDataset(data_dir)
  episodes = ({"observations": ep.observations, "actions": ep.actions, "rewards": ep.rewards,
               "terminations": ep.terminations, "truncations": ep.truncations}
              for ep in ds.iterate_episodes())
  return transitions_from_episodes(episodes, source=f"Minari dataset {dataset_id}")


def save_minari_dataset(dataset_id: str, episodes: Sequence[Mapping[str, Any]], env_id: str,
                        datasets_path: Optional[str] = None, *, algorithm_name: str = "unknown",
                        ref_min_score: Optional[float] = None, ref_max_score: Optional[float] = None,
                        description: Optional[str] = None, env_kwargs: Optional[dict] = None):
  """Writes episodes (see `transitions_from_episodes`) as a local Minari dataset (HDF5).

  `ref_min_score`/`ref_max_score` are stored so `minari.get_normalized_score` works; pass
  both (Minari would otherwise roll out a random policy to estimate the minimum).
  Returns the `MinariDataset`. Minari takes its root only from
  `$MINARI_DATASETS_PATH`, so a `datasets_path` sets that variable for the duration
  of the call: do not save from several threads of one process at once.
  """
  import gymnasium as gym
  import minari
  from minari.data_collector import EpisodeBuffer

  buffers = [EpisodeBuffer(id=i, observations=_f32(ep["observations"]), actions=_f32(ep["actions"]),
                           rewards=_f32(ep["rewards"]), terminations=np.asarray(ep["terminations"], bool),
                           truncations=np.asarray(ep["truncations"], bool), infos={})
             for i, ep in enumerate(episodes)]
  env = gym.make(env_id, **(env_kwargs or {}))
  old = os.environ.get("MINARI_DATASETS_PATH")
  # minari resolves its root from the environment variable; set it only for this call.
  if datasets_path is not None:
    os.environ["MINARI_DATASETS_PATH"] = datasets_path
  try:
    return minari.create_dataset_from_buffers(
        dataset_id=dataset_id, buffer=buffers, env=env, algorithm_name=algorithm_name,
        author="jaxrl_llm", author_email="jaxrl_llm@localhost", code_permalink="local",
        ref_min_score=ref_min_score, ref_max_score=ref_max_score, eval_env=env_id,
        description=description or f"{dataset_id}: generated locally by jaxrl_llm ({algorithm_name}).",
        data_format="hdf5")
  finally:
    env.close()
    if datasets_path is not None:
      if old is None:
        os.environ.pop("MINARI_DATASETS_PATH", None)
      else:
        os.environ["MINARI_DATASETS_PATH"] = old


# ----------------------------------------------------------------------------- episodes & rewards


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
  return data._replace(rewards=_f32(np.asarray(data.rewards) * (scale / spread)))


def shift_antmaze_rewards(data: Transitions, shift: float = -1.0) -> Transitions:
  """IQL AntMaze reward shaping: `r <- r - 1` (sparse 0/1 reward becomes -1/0)."""
  return data._replace(rewards=_f32(np.asarray(data.rewards) + shift))


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


# ----------------------------------------------------------------------------- sampling


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


def normalized_score(returns, ref_min: float, ref_max: float):
  """D4RL normalised score: `100 * (R - R_min) / (R_max - R_min)`."""
  if ref_max == ref_min:
    raise ValueError("normalized_score: `ref_max` equals `ref_min`.")
  return 100.0 * (np.asarray(returns, np.float64) - ref_min) / (ref_max - ref_min)

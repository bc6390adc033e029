"""Local Minari datasets (HDF5) and Minari-style episodes <-> `Transitions`; never downloads."""

from __future__ import annotations

import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from jaxrl_llm.offline.datasets.validation import f32, require_keys, validate_transitions
from jaxrl_llm.offline.types import Transitions


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
    require_keys(ep, ("observations", "actions", "rewards", "terminations", "truncations"), f"{source} episode {e}")
    obs = ep["observations"]
    goals = None
    if isinstance(obs, Mapping):
      require_keys(obs, ("observation",), f"{source} episode {e} observations")
      goals = obs.get("desired_goal")
      obs = obs["observation"]
    obs = f32(obs)
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
    term = f32(ep["terminations"])
    trunc = f32(ep["truncations"])
    if term[-1] == 0 and trunc[-1] == 0:
      trunc = trunc.copy()
      trunc[-1] = 1.0
    parts["observations"].append(obs[:-1])
    parts["next_observations"].append(obs[1:])
    parts["actions"].append(f32(ep["actions"]))
    parts["rewards"].append(f32(ep["rewards"]))
    parts["terminals"].append(term)
    parts["timeouts"].append(np.where(term > 0, 0.0, trunc).astype(np.float32))
    if goals is not None:
      has_goals = True
      parts["goals"].append(f32(goals)[:-1])
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

  buffers = [EpisodeBuffer(id=i, observations=f32(ep["observations"]), actions=f32(ep["actions"]),
                           rewards=f32(ep["rewards"]), terminations=np.asarray(ep["terminations"], bool),
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

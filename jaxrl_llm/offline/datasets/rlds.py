"""RLDS-format TensorFlow Datasets on disk <-> `Transitions` (ArrayRecord; no TensorFlow).

RLDS (Ramos et al., "RLDS: an Ecosystem to Generate, Share and Use Datasets in
Reinforcement Learning", arXiv 2111.02767) stores one record per episode: a nested dataset
`steps` plus episode metadata. Step t of an episode of T transitions is

  t < T:  observation = s_t, action = a_t, reward = r_t, discount = 1 - terminal_t,
          is_first = (t == 0), is_last = False, is_terminal = False
  t = T:  observation = s_T (the last `next_observations`), is_last = True,
          is_terminal = terminals[T-1]; action / reward / discount are invalid in RLDS
          and written as zeros.

so an episode that ends with `is_last` and not `is_terminal` was truncated. Each episode
record also carries `episode_id` (its index in the source) and `is_truncated`
(`timeouts` of its last transition), so the read-back `timeouts` equal the source's even
where the source marked an episode end only by an observation jump. `Transitions.goals`
and `next_actions`, when present, become the step fields `goal` / `next_action` (zeros on
the last step). `masks` are not stored: they are `1 - terminals` on read.

Episode boundaries are `episodes.episode_ends` (terminals, timeouts, observation jumps,
the last transition). Dataset-level metadata (any JSON-serialisable mapping: source,
env id, seeds, versions) goes to TFDS's `metadata.json` and comes back from
`builder.info.metadata`.

The dataset is written with TFDS's ArrayRecord file format through a generator builder
(`tfds.core.GeneratorBasedBuilder`) and read with `tfds.builder_from_directory(...)
.as_data_source()`; neither path imports TensorFlow (the `tf.data` reader,
`builder.as_dataset()`, would need TensorFlow and is not tested here).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Mapping, NamedTuple, Optional

import numpy as np

from jaxrl_llm.offline.datasets.episodes import episode_ends
from jaxrl_llm.offline.datasets.validation import f32, validate_transitions
from jaxrl_llm.offline.types import Transitions

# Step fields every RLDS dataset read here must have (RLDS: is_first/is_last are mandatory;
# the rest are what a `Transitions` needs).
RLDS_STEP_FIELDS = ("observation", "action", "reward", "discount", "is_first", "is_last",
                    "is_terminal")
# Optional `Transitions` fields <-> optional step fields.
_OPTIONAL_STEP_FIELDS = {"goals": "goal", "next_actions": "next_action"}


class RLDSData(NamedTuple):
  """What `read_rlds` returns: the transitions plus both levels of metadata."""

  transitions: Transitions
  metadata: Dict[str, Any]  # dataset-level, as written
  episode_metadata: Dict[str, np.ndarray]  # one entry per episode, e.g. episode_id


def transitions_to_rlds_episodes(data: Transitions) -> List[Dict[str, Any]]:
  """Splits `Transitions` into RLDS episodes (see the module docstring for the layout).

  Returns one dict per episode: `steps` (a dict of stacked [T+1, ...] arrays, the RLDS step
  fields), `episode_id` (int) and `is_truncated` (bool).
  """
  data = validate_transitions(data, "transitions_to_rlds_episodes")
  ends = np.flatnonzero(episode_ends(data))
  starts = np.concatenate([[0], ends[:-1] + 1])
  obs, nxt = np.asarray(data.observations), np.asarray(data.next_observations)
  actions, rewards = np.asarray(data.actions), f32(data.rewards)
  terminals, timeouts = np.asarray(data.terminals) > 0, np.asarray(data.timeouts) > 0
  optional = {name: np.asarray(getattr(data, name)) for name in _OPTIONAL_STEP_FIELDS
              if getattr(data, name) is not None}
  episodes = []
  for e, (s, t) in enumerate(zip(starts, ends + 1)):
    n = t - s
    steps = {
        "observation": np.concatenate([obs[s:t], nxt[t - 1:t]], axis=0),
        "action": np.concatenate([actions[s:t], np.zeros_like(actions[:1])], axis=0),
        "reward": np.concatenate([rewards[s:t], [0.0]]).astype(np.float32),
        "discount": np.concatenate([1.0 - terminals[s:t], [0.0]]).astype(np.float32),
        "is_first": np.arange(n + 1) == 0,
        "is_last": np.arange(n + 1) == n,
        "is_terminal": np.concatenate([np.zeros(n, bool), [terminals[t - 1]]]),
    }
    for name, value in optional.items():
      steps[_OPTIONAL_STEP_FIELDS[name]] = np.concatenate(
          [value[s:t], np.zeros_like(value[:1])], axis=0)
    episodes.append({"steps": steps, "episode_id": e, "is_truncated": bool(timeouts[t - 1])})
  return episodes


def transitions_from_rlds_episodes(episodes, source: str = "RLDS episodes") -> Transitions:
  """Flattens RLDS episodes (stacked step arrays, as `transitions_to_rlds_episodes` makes) back.

  Transition t of an episode is (s_t, a_t, r_t, s_{t+1}) for every step but the last;
  `terminals` = `is_terminal` of the last step on the last transition; `timeouts` =
  the episode's `is_truncated` when present, else `is_last and not is_terminal`.
  """
  parts: Dict[str, List[np.ndarray]] = {}
  for e, ep in enumerate(episodes):
    steps = ep["steps"]
    missing = [k for k in RLDS_STEP_FIELDS if k not in steps]
    if missing:
      raise ValueError(f"{source} episode {e}: `steps` is missing RLDS field(s) {missing}.")
    is_last = np.asarray(steps["is_last"], bool)
    n = len(is_last) - 1
    if n < 1 or not is_last[-1] or is_last[:-1].any() or not np.asarray(steps["is_first"])[0]:
      raise ValueError(f"{source} episode {e}: `steps` must start with is_first and end with "
                       f"its only is_last step, with at least 2 steps; got {n + 1} steps.")
    terminal = bool(np.asarray(steps["is_terminal"])[-1])
    truncated = bool(ep["is_truncated"]) if "is_truncated" in ep else not terminal
    obs = np.asarray(steps["observation"])
    fields = {
        "observations": obs[:-1], "next_observations": obs[1:],
        "actions": np.asarray(steps["action"])[:-1], "rewards": f32(steps["reward"])[:-1],
        "terminals": np.eye(n, dtype=np.float32)[-1] * terminal,
        "timeouts": np.eye(n, dtype=np.float32)[-1] * truncated,
    }
    for name, step_name in _OPTIONAL_STEP_FIELDS.items():
      if step_name in steps:
        fields[name] = np.asarray(steps[step_name])[:-1]
    for name, value in fields.items():
      parts.setdefault(name, []).append(value)
  if not parts:
    raise ValueError(f"{source}: no episodes.")
  cat = {k: np.concatenate(v, axis=0) for k, v in parts.items()}
  return validate_transitions(Transitions(**cat), source)


def _features(episode: Mapping[str, Any]):
  import tensorflow_datasets as tfds

  def tensor(x):
    x = np.asarray(x)
    if x.ndim == 1:
      return tfds.features.Scalar(dtype=x.dtype)
    return tfds.features.Tensor(shape=x.shape[1:], dtype=x.dtype)

  steps = {k: (np.bool_ if k.startswith("is_") else tensor(v)) for k, v in episode["steps"].items()}
  return tfds.features.FeaturesDict({
      "steps": tfds.features.Dataset(steps),
      "episode_id": tfds.features.Scalar(dtype=np.int64),
      "is_truncated": np.bool_,
  })


def save_rlds(data: Transitions, data_dir: str, name: str = "jaxrl_rlds", *,
              version: str = "1.0.0", split: str = "train",
              metadata: Optional[Mapping[str, Any]] = None,
              description: Optional[str] = None) -> str:
  """Writes `data` as an RLDS-format TFDS dataset at `data_dir/name/version` (ArrayRecord).

  metadata: JSON-serialisable dataset metadata (read back by `read_rlds`).
  Returns the dataset directory (what `load_rlds` / `tfds.builder_from_directory` take).
  Raises a FileExistsError if that directory already holds a dataset.
  """
  import tensorflow_datasets as tfds

  episodes = transitions_to_rlds_episodes(data)
  meta = dict(metadata or {})
  json.dumps(meta)  # fail here, naming nothing but the metadata, if it is not JSON
  features = _features(episodes[0])
  out_dir = os.path.join(data_dir, name, version)
  if os.path.exists(os.path.join(out_dir, "dataset_info.json")):
    raise FileExistsError(f"save_rlds: a dataset already exists at {out_dir}.")

  def examples():
    for ep in episodes:
      steps = ep["steps"]
      n = len(steps["is_first"])
      yield str(ep["episode_id"]), {
          "steps": [{k: v[i] for k, v in steps.items()} for i in range(n)],
          "episode_id": ep["episode_id"], "is_truncated": ep["is_truncated"]}

  class _Builder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version(version)

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, features=features, disable_shuffling=True,
          description=description or "Offline RL episodes in RLDS layout, written by jaxrl_llm.",
          metadata=tfds.core.MetadataDict(meta))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {split: examples()}

    def _generate_examples(self):  # unused: `_split_generators` yields the examples
      raise NotImplementedError

  _Builder.name = name
  builder = _Builder(data_dir=data_dir, file_format="array_record")
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return out_dir


def _check_rlds_dir(path: str) -> None:
  """Raises a ValueError naming what makes `path` not an RLDS TFDS dataset directory."""
  if not os.path.isdir(path):
    raise FileNotFoundError(f"RLDS dataset directory not found: {path}")
  missing = [f for f in ("dataset_info.json", "features.json")
             if not os.path.exists(os.path.join(path, f))]
  if missing:
    raise ValueError(f"{path} is not a TFDS dataset directory: missing {missing} (give the "
                     "`<data_dir>/<name>/<version>` directory that save_rlds returns).")
  with open(os.path.join(path, "features.json")) as f:
    spec = json.load(f)
  top = spec.get("featuresDict", {}).get("features", {})
  if "steps" not in top:
    raise ValueError(f"{path} is not an RLDS dataset: its features have no `steps` "
                     f"(found {sorted(top)}).")
  steps = top["steps"].get("sequence", {}).get("feature", {}).get("featuresDict", {}).get(
      "features", {})
  missing = [k for k in RLDS_STEP_FIELDS if k not in steps]
  if missing:
    raise ValueError(f"{path} is not an RLDS dataset with transitions: `steps` is missing "
                     f"{missing} (found {sorted(steps)}).")


def read_rlds(path: str, split: str = "train") -> RLDSData:
  """Reads an RLDS TFDS dataset directory into `Transitions` plus its metadata.

  Uses `tfds.builder_from_directory(path).as_data_source()` (ArrayRecord, no TensorFlow).
  A directory that is not a TFDS dataset, or whose `steps` lack an RLDS field, raises a
  ValueError that names what is missing.
  """
  import tensorflow_datasets as tfds

  _check_rlds_dir(path)
  builder = tfds.builder_from_directory(path)
  if split not in builder.info.splits:
    raise ValueError(f"{path}: no split {split!r}; splits: {sorted(builder.info.splits)}.")
  source = builder.as_data_source(split=split)
  episodes, episode_meta = [], {}
  for i in range(len(source)):
    record = source[i]
    step_list = [record["steps"][j] for j in range(len(record["steps"]))]
    steps = {k: np.stack([s[k] for s in step_list]) for k in step_list[0]} if step_list else {}
    ep = {k: v for k, v in record.items() if k != "steps"}
    for k, v in ep.items():
      episode_meta.setdefault(k, []).append(v)
    episodes.append(dict(ep, steps=steps))
  transitions = transitions_from_rlds_episodes(episodes, source=f"RLDS dataset {path}")
  return RLDSData(transitions=transitions, metadata=dict(builder.info.metadata or {}),
                  episode_metadata={k: np.asarray(v) for k, v in episode_meta.items()})


def load_rlds(path: str, split: str = "train") -> Transitions:
  """`read_rlds(path, split).transitions`."""
  return read_rlds(path, split).transitions

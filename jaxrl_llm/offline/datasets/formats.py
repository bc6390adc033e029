"""Dataset loading by format name (a registry: the only dispatch on the format)."""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from jaxrl_llm.offline.datasets.d4rl_hdf5 import load_d4rl_hdf5
from jaxrl_llm.offline.datasets.minari import load_minari
from jaxrl_llm.offline.datasets.ogbench_npz import load_ogbench_npz
from jaxrl_llm.offline.datasets.synthetic import synthetic_dataset
from jaxrl_llm.offline.types import Transitions

# format -> loader(path, minari_datasets_path, synthetic, seed). One line per format.
LOADERS: Dict[str, Callable[..., Transitions]] = {
    "minari": lambda path, minari_datasets_path, synthetic, seed: load_minari(
        path, minari_datasets_path or None),
    "d4rl_hdf5": lambda path, minari_datasets_path, synthetic, seed: load_d4rl_hdf5(path),
    "ogbench_npz": lambda path, minari_datasets_path, synthetic, seed: load_ogbench_npz(path),
    "synthetic": lambda path, minari_datasets_path, synthetic, seed: synthetic_dataset(
        synthetic, seed=seed),
    "rlds": lambda path, minari_datasets_path, synthetic, seed: _load_rlds(path),
}


def _load_rlds(path: str) -> Transitions:
  # Imported on use: tensorflow-datasets is heavy and only the RLDS path needs it.
  from jaxrl_llm.offline.datasets.rlds import load_rlds
  return load_rlds(path)
FORMATS = ("auto",) + tuple(LOADERS)


def resolve_format(dataset_format: str, dataset_path: str) -> str:
  """`dataset_format`, or for "auto" the format the path names.

  `.hdf5`/`.h5` -> d4rl_hdf5, `.npz` -> ogbench_npz, anything else is a Minari
  dataset id. Raises a ValueError listing the known formats for an unknown one.
  """
  if dataset_format not in FORMATS:
    raise ValueError(f"unknown config.dataset_format {dataset_format!r}; known: "
                     f"{', '.join(FORMATS)}")
  if dataset_format != "auto":
    return dataset_format
  if not dataset_path:
    raise ValueError(
        "config.dataset_path is empty: give a Minari dataset id, a D4RL .hdf5 or an "
        "OGBench .npz path, or set config.dataset_format='synthetic' for a smoke test")
  if dataset_path.endswith((".hdf5", ".h5")):
    return "d4rl_hdf5"
  if dataset_path.endswith(".npz"):
    return "ogbench_npz"
  return "minari"


def load(dataset_format: str, dataset_path: str = "", *, minari_datasets_path: Optional[str] = None,
         synthetic: Any = None, seed: int = 0) -> Transitions:
  """The dataset as NumPy-backed, validated `Transitions` (no download).

  dataset_format: one of `FORMATS` ("auto" picks by `dataset_path`, see `resolve_format`).
  dataset_path:   a Minari dataset id, a D4RL .hdf5 or an OGBench .npz path, or an RLDS
                  TFDS version directory (format "rlds", written by `rlds.save_rlds`).
  minari_datasets_path: the local Minari root (default `$MINARI_DATASETS_PATH`).
  synthetic, seed: the spec and seed of the "synthetic" smoke-test set.
  """
  fmt = resolve_format(dataset_format, dataset_path)
  if fmt == "synthetic" and synthetic is None:
    raise ValueError("dataset_format 'synthetic' needs its spec (config.synthetic: "
                     "num_transitions, obs_dim, act_dim, episode_length)")
  return LOADERS[fmt](dataset_path, minari_datasets_path, synthetic, seed)

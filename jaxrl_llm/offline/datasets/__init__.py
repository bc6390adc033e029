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

One module per format, plus the format-independent pieces:

  validation.py   validate_transitions (every loader ends in it)
  minari.py       local Minari datasets and Minari-style episodes
  d4rl_hdf5.py    D4RL-layout HDF5 files and arrays
  ogbench_npz.py  OGBench's compact npz layout
  synthetic.py    a random linear system, for smoke tests of training loops
  formats.py      `load(dataset_format, dataset_path, ...)`: the format registry
  episodes.py     episode boundaries/returns, concatenation, reward scaling, action clipping
  sampling.py     uniform samplers for `update` / `update_n`
  scores.py       D4RL-normalised scores
"""

from jaxrl_llm.offline.datasets.d4rl_hdf5 import (load_d4rl_hdf5, save_d4rl_hdf5,
                                                  transitions_from_d4rl_arrays)
from jaxrl_llm.offline.datasets.episodes import (clip_actions, concatenate, episode_ends,
                                                 episode_returns, scale_locomotion_rewards,
                                                 scale_rewards, shift_antmaze_rewards)
from jaxrl_llm.offline.datasets.formats import FORMATS, load, resolve_format
from jaxrl_llm.offline.datasets.minari import (load_minari, minari_dataset_dir,
                                               save_minari_dataset, transitions_from_episodes)
from jaxrl_llm.offline.datasets.ogbench_npz import (load_ogbench_npz,
                                                    transitions_from_ogbench_arrays)
from jaxrl_llm.offline.datasets.sampling import sample_batch, sample_batches
from jaxrl_llm.offline.datasets.scores import D4RL_REF_SCORES, normalized_score
from jaxrl_llm.offline.datasets.synthetic import synthetic_dataset
from jaxrl_llm.offline.datasets.validation import validate_transitions

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
    "synthetic_dataset",
    "FORMATS",
    "load",
    "resolve_format",
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

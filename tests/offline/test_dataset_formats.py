"""jaxrl_llm.offline.datasets.formats (load by format name) and .synthetic, on tiny local files."""

import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxrl_llm.offline import datasets
from jaxrl_llm.offline.types import Transitions


@pytest.mark.parametrize("path, expected", [
    ("hopper-medium-v2.hdf5", "d4rl_hdf5"), ("data/x.h5", "d4rl_hdf5"),
    ("pointmaze-medium-navigate-v0.npz", "ogbench_npz"), ("jaxrl/hopper/medium-v0", "minari")])
def test_auto_format_follows_the_path(path, expected):
  assert datasets.resolve_format("auto", path) == expected
  assert datasets.resolve_format("minari", path) == "minari"  # an explicit format wins


def test_unknown_format_and_empty_path_are_named_errors():
  with pytest.raises(ValueError, match=r"dataset_format 'parquet'; known: auto, minari, "
                     r"d4rl_hdf5, ogbench_npz, synthetic"):
    datasets.load("parquet", "x.parquet")
  with pytest.raises(ValueError, match="dataset_path is empty"):
    datasets.load("auto", "")
  with pytest.raises(ValueError, match="needs its spec"):
    datasets.load("synthetic")


def test_auto_loads_d4rl_and_ogbench_files(tmp_path):
  obs = np.arange(8, dtype=np.float32).reshape(4, 2)
  data = Transitions(observations=obs, actions=np.ones((4, 1), np.float32),
                     rewards=np.array([1, 2, 3, 4], np.float32), next_observations=obs + 1,
                     terminals=np.array([0, 1, 0, 0], np.float32),
                     timeouts=np.array([0, 0, 0, 1], np.float32))
  datasets.save_d4rl_hdf5(str(tmp_path / "d.hdf5"), data)
  loaded = datasets.load("auto", str(tmp_path / "d.hdf5"))
  for name in ("observations", "actions", "rewards", "next_observations", "terminals",
               "timeouts"):
    np.testing.assert_array_equal(getattr(loaded, name), getattr(data, name), err_msg=name)
  # OGBench layout: one trajectory s0..s2, terminals=1 on its last row (which has no action).
  np.savez(tmp_path / "o.npz", observations=np.array([[0.0], [1.0], [2.0]], np.float32),
           actions=np.zeros((3, 1), np.float32), terminals=np.array([0, 0, 1], np.float32))
  og = datasets.load("auto", str(tmp_path / "o.npz"))
  np.testing.assert_array_equal(og.observations[:, 0], [0, 1])
  np.testing.assert_array_equal(og.next_observations[:, 0], [1, 2])


def _spec(**overrides):
  spec = ConfigDict(dict(num_transitions=120, obs_dim=3, act_dim=2, episode_length=40))
  spec.update(overrides)
  return spec


def test_synthetic_dataset_is_episodes_of_a_seeded_linear_system():
  data = datasets.load("synthetic", synthetic=_spec(), seed=4)
  assert data.observations.shape == (120, 3) and data.actions.shape == (120, 2)
  # 120 // 40 = 3 episodes, each truncated (never terminated) after 40 steps.
  np.testing.assert_array_equal(np.flatnonzero(data.timeouts), [39, 79, 119])
  assert not data.terminals.any()
  inside = np.setdiff1d(np.arange(119), [39, 79])
  np.testing.assert_array_equal(data.observations[inside + 1], data.next_observations[inside])
  # Reward of a step: -||s'||^2 of the state it leads to; actions within [-1, 1].
  np.testing.assert_allclose(data.rewards, -np.sum(data.next_observations**2, axis=1), rtol=1e-5)
  assert np.abs(data.actions).max() <= 1.0
  again = datasets.synthetic_dataset(_spec(), seed=4)
  np.testing.assert_array_equal(again.observations, data.observations)
  other = datasets.synthetic_dataset(_spec(), seed=5)
  assert not np.array_equal(other.observations, data.observations)


def test_synthetic_spec_errors_name_the_field():
  with pytest.raises(ValueError, match="`episode_length` must be >= 1"):
    datasets.synthetic_dataset(_spec(episode_length=0), seed=0)

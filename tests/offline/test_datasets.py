"""Tests of jaxrl_llm.offline.datasets on tiny hand-built files (D4RL HDF5, OGBench npz, Minari)."""

import os

import jax
import numpy as np
import pytest

from jaxrl_llm.offline import datasets
from jaxrl_llm.offline.types import Transitions


def _col(values):
  """Observations whose single feature is the row's state id (easy to read in asserts)."""
  return np.asarray(values, np.float32)[:, None]


def test_d4rl_with_next_observations(tmp_path):
  arrays = dict(observations=_col([0, 1, 2, 10, 11]), next_observations=_col([1, 2, 3, 11, 12]),
                actions=np.zeros((5, 2), np.float32), rewards=np.arange(5, dtype=np.float32),
                terminals=np.array([0, 0, 1, 0, 0], bool), timeouts=np.array([0, 0, 0, 0, 1], bool))
  import h5py
  path = str(tmp_path / "d4rl.hdf5")
  with h5py.File(path, "w") as f:
    for k, v in arrays.items():
      f.create_dataset(k, data=v)
  t = datasets.load_d4rl_hdf5(path)
  np.testing.assert_array_equal(t.next_observations[:, 0], [1, 2, 3, 11, 12])
  np.testing.assert_array_equal(t.masks, [1, 1, 0, 1, 1])  # timeouts do not cut bootstrapping
  np.testing.assert_array_equal(t.timeouts, [0, 0, 0, 0, 1])
  assert t.observations.dtype == np.float32


def test_d4rl_without_next_observations_drops_cross_episode_rows():
  # episode A: s0 s1 s2 (timeout on s2's row); B: s3 s4 (terminal on s4's row); C: s5 s6 (open end).
  arrays = dict(observations=_col([0, 1, 2, 3, 4, 5, 6]), actions=np.zeros((7, 1)),
                rewards=np.arange(7.0), terminals=np.array([0, 0, 0, 0, 1, 0, 0]),
                timeouts=np.array([0, 0, 1, 0, 0, 0, 0]))
  t = datasets.transitions_from_d4rl_arrays(arrays)
  # rows 2 (timeout: its successor s3 is another episode) and 6 (no successor stored) dropped
  np.testing.assert_array_equal(t.observations[:, 0], [0, 1, 3, 4, 5])
  np.testing.assert_array_equal(t.next_observations[:, 0], [1, 2, 4, 4, 6])
  np.testing.assert_array_equal(t.rewards, [0, 1, 3, 4, 5])
  np.testing.assert_array_equal(t.terminals, [0, 0, 0, 1, 0])
  np.testing.assert_array_equal(t.timeouts, [0, 1, 0, 0, 1])
  np.testing.assert_array_equal(t.masks, [1, 1, 1, 0, 1])
  np.testing.assert_array_equal(datasets.episode_ends(t), [0, 1, 0, 1, 1])


def test_ogbench_npz(tmp_path):
  # traj 1: s0..s3 (terminals=1 on s3: no action from it); traj 2: s4..s6
  arrays = dict(observations=_col([0, 1, 2, 3, 4, 5, 6]), actions=np.arange(7.0)[:, None] * np.ones((1, 2)),
                terminals=np.array([0, 0, 0, 1, 0, 0, 1], np.float32), qpos=np.zeros((7, 3)))
  path = str(tmp_path / "ogb.npz")
  np.savez(path, **arrays)
  t = datasets.load_ogbench_npz(path)
  np.testing.assert_array_equal(t.observations[:, 0], [0, 1, 2, 4, 5])
  np.testing.assert_array_equal(t.next_observations[:, 0], [1, 2, 3, 5, 6])
  np.testing.assert_array_equal(t.actions[:, 0], [0, 1, 2, 4, 5])
  np.testing.assert_array_equal(t.timeouts, [0, 0, 1, 0, 1])
  np.testing.assert_array_equal(t.terminals, [0, 0, 0, 0, 0])
  np.testing.assert_array_equal(t.rewards, 0.0)
  # singletask-style masks/rewards: masks=0 where the task was solved
  arrays.update(rewards=np.array([-1, -1, 0, 0, -1, -1, -1.0]), masks=np.array([1, 1, 0, 1, 1, 1, 1.0]))
  t2 = datasets.transitions_from_ogbench_arrays(arrays)
  np.testing.assert_array_equal(t2.terminals, [0, 0, 1, 0, 0])
  np.testing.assert_array_equal(t2.timeouts, [0, 0, 0, 0, 1])
  np.testing.assert_array_equal(t2.rewards, [-1, -1, 0, -1, -1])


def _hopper_episode(rng, steps, terminated):
  return dict(observations=rng.normal(size=(steps + 1, 11)).astype(np.float32),
              actions=rng.uniform(-1, 1, size=(steps, 3)).astype(np.float32),
              rewards=rng.normal(size=steps).astype(np.float32),
              terminations=np.eye(steps)[-1].astype(bool) if terminated else np.zeros(steps, bool),
              truncations=np.zeros(steps, bool) if terminated else np.eye(steps)[-1].astype(bool))


def test_minari_roundtrip_is_local(tmp_path, monkeypatch):
  monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
  import socket

  def no_network(*args, **kwargs):
    raise AssertionError("network access attempted")

  monkeypatch.setattr(socket.socket, "connect", no_network)  # saving/loading must stay local
  monkeypatch.setattr(socket, "create_connection", no_network)
  rng = np.random.default_rng(0)
  eps = [_hopper_episode(rng, 5, True), _hopper_episode(rng, 4, False)]
  eps.append(dict(eps[1], truncations=np.zeros(4, bool)))  # open-ended episode (buffer cut)
  root = str(tmp_path / "minari")
  datasets.save_minari_dataset("test/hopper-tiny-v0", eps, "Hopper-v5", root,
                               ref_min_score=-20.0, ref_max_score=3000.0)
  assert "MINARI_DATASETS_PATH" not in os.environ  # restored
  t = datasets.load_minari("test/hopper-tiny-v0", datasets_path=root)
  assert t.observations.shape == (13, 11)
  np.testing.assert_allclose(t.observations[:5], eps[0]["observations"][:-1])
  np.testing.assert_allclose(t.next_observations[:5], eps[0]["observations"][1:])
  np.testing.assert_array_equal(t.terminals, [0, 0, 0, 0, 1] + [0] * 8)
  np.testing.assert_array_equal(t.timeouts, [0] * 5 + [0, 0, 0, 1] + [0, 0, 0, 1])
  np.testing.assert_allclose(datasets.episode_returns(t), [e["rewards"].sum() for e in eps], rtol=1e-5)
  import minari
  ds = minari.MinariDataset(os.path.join(root, "test/hopper-tiny-v0", "data"))
  assert minari.get_normalized_score(ds, np.array(3000.0)) == pytest.approx(1.0)
  with pytest.raises(FileNotFoundError, match="not found locally"):
    datasets.load_minari("test/missing-v0", datasets_path=root)


def _chain(n_per_ep=(3, 2)):
  """Two episodes, obs = state id, next = id + 1, rewards 1 per step."""
  obs, nxt, term, tout = [], [], [], []
  start = 0
  for i, n in enumerate(n_per_ep):
    obs += list(range(start, start + n))
    nxt += list(range(start + 1, start + n + 1))
    term += [0] * (n - 1) + [1 if i == 0 else 0]
    tout += [0] * (n - 1) + [0 if i == 0 else 1]
    start += 100
  m = len(obs)
  return Transitions(observations=_col(obs), actions=np.zeros((m, 1), np.float32),
                     rewards=np.ones(m, np.float32), next_observations=_col(nxt),
                     terminals=np.float32(term), timeouts=np.float32(tout))


def test_reward_scaling():
  t = _chain((3, 2))  # returns 3 and 2 -> spread 1 -> scale 1000
  np.testing.assert_allclose(datasets.episode_returns(t), [3.0, 2.0])
  np.testing.assert_allclose(datasets.scale_rewards(t, "locomotion").rewards, 1000.0)
  t4 = _chain((5, 1))  # returns 5, 1 -> r * 1000 / 4
  np.testing.assert_allclose(datasets.scale_locomotion_rewards(t4).rewards, 250.0)
  np.testing.assert_allclose(datasets.scale_rewards(t, "antmaze").rewards, 0.0)
  with pytest.raises(ValueError, match="mode"):
    datasets.scale_rewards(t, "bogus")


def test_episode_ends_detects_unmarked_boundary():
  t = _chain((3, 2))._replace(terminals=np.zeros(5, np.float32), timeouts=np.zeros(5, np.float32))
  np.testing.assert_array_equal(datasets.episode_ends(t), [0, 0, 1, 0, 1])


def test_sampler_is_pure_and_consistent():
  n = 50
  obs = np.arange(n, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
  t = datasets.validate_transitions(Transitions(
      observations=obs, actions=obs[:, :2] * 2, rewards=obs[:, 0] * 3, next_observations=obs + 1,
      terminals=np.zeros(n, np.float32), timeouts=np.zeros(n, np.float32)))
  t = jax.device_put(t)
  k1, k2 = jax.random.split(jax.random.PRNGKey(0))
  b1 = jax.jit(datasets.sample_batch, static_argnums=2)(k1, t, 16)
  b1b = datasets.sample_batch(k1, t, 16)
  b2 = datasets.sample_batch(k2, t, 16)
  np.testing.assert_array_equal(b1.observations, b1b.observations)
  assert not np.array_equal(b1.observations, b2.observations)
  # rows stay aligned across fields
  np.testing.assert_array_equal(b1.next_observations, b1.observations + 1)
  np.testing.assert_array_equal(b1.rewards, b1.observations[:, 0] * 3)
  np.testing.assert_array_equal(b1.masks, 1.0)
  stacked = datasets.sample_batches(k1, t, 8, 4)
  assert stacked.observations.shape == (4, 8, 3) and stacked.rewards.shape == (4, 8)
  assert stacked.goals is None
  np.testing.assert_array_equal(stacked.next_observations, stacked.observations + 1)
  # 4 batches are not copies of each other
  assert len({tuple(np.asarray(stacked.rewards[i])) for i in range(4)}) == 4
  # uniform coverage: 20k draws cover all 50 rows, each near 400 times
  counts = np.bincount(np.asarray(datasets.sample_batch(k2, t, 20000).observations[:, 0], int), minlength=n)
  assert counts.min() > 300 and counts.max() < 500


def test_validation_errors_name_the_field(tmp_path):
  good = _chain((3, 2))
  with pytest.raises(ValueError, match="`rewards` has length 4"):
    datasets.validate_transitions(good._replace(rewards=np.ones(4, np.float32)))
  with pytest.raises(ValueError, match="`actions` contains NaN"):
    datasets.validate_transitions(good._replace(actions=np.float32([[0], [np.nan], [0], [0], [0]])))
  with pytest.raises(ValueError, match="`terminals` must contain only 0/1"):
    datasets.validate_transitions(good._replace(terminals=np.float32([0, 0, 2, 0, 0])))
  with pytest.raises(ValueError, match=r"missing required key\(s\) \['rewards'\]"):
    datasets.transitions_from_d4rl_arrays(dict(observations=np.zeros((3, 1)), actions=np.zeros((3, 1)),
                                               terminals=np.zeros(3)))
  with pytest.raises(ValueError, match="`actions` has length 2"):
    datasets.transitions_from_d4rl_arrays(dict(observations=np.zeros((3, 1)), actions=np.zeros((2, 1)),
                                               rewards=np.zeros(3), terminals=np.zeros(3)))
  np.savez(str(tmp_path / "bad.npz"), observations=np.zeros((3, 1)), terminals=np.float32([0, 0, 1]))
  with pytest.raises(ValueError, match="'actions'"):
    datasets.load_ogbench_npz(str(tmp_path / "bad.npz"))
  with pytest.raises(ValueError, match="`rewards` contains NaN"):
    datasets.transitions_from_ogbench_arrays(dict(observations=np.zeros((3, 1)), actions=np.zeros((3, 1)),
                                                  terminals=np.float32([0, 0, 1]),
                                                  rewards=np.float32([0, np.nan, 0])))


def test_save_d4rl_roundtrip_and_concatenate(tmp_path):
  t = datasets.validate_transitions(_chain((3, 2)))
  path = str(tmp_path / "rt.hdf5")
  datasets.save_d4rl_hdf5(path, t)
  t2 = datasets.load_d4rl_hdf5(path)
  for name in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts", "masks"):
    np.testing.assert_array_equal(getattr(t2, name), getattr(t, name))
  both = datasets.concatenate([t, t2])
  assert both.observations.shape == (10, 1)
  np.testing.assert_allclose(datasets.normalized_score([3234.3, -20.272305], *datasets.D4RL_REF_SCORES["hopper"]),
                             [100.0, 0.0])


def test_ogbench_loader_agrees_with_ogbench_package(tmp_path):
  ogbench_utils = pytest.importorskip("ogbench.utils")
  rng = np.random.default_rng(1)
  lengths = [4, 6, 3]  # rows per trajectory incl. the final observation row
  n = sum(lengths)
  terminals = np.concatenate([np.eye(k)[-1] for k in lengths]).astype(np.float32)
  arrays = dict(observations=rng.normal(size=(n, 5)).astype(np.float32),
                actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32), terminals=terminals,
                qpos=rng.normal(size=(n, 3)), qvel=rng.normal(size=(n, 3)))
  path = str(tmp_path / "ref.npz")
  np.savez(path, **arrays)
  ref = ogbench_utils.load_dataset(path)  # reference implementation (regular layout)
  t = datasets.load_ogbench_npz(path)
  np.testing.assert_array_equal(t.observations, ref["observations"])
  np.testing.assert_array_equal(t.next_observations, ref["next_observations"])
  np.testing.assert_array_equal(t.actions, ref["actions"])
  # OGBench's `terminals` mark trajectory ends (time limits): our `timeouts`
  np.testing.assert_array_equal(t.timeouts, ref["terminals"])
  np.testing.assert_array_equal(t.masks, 1.0)

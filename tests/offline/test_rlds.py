"""jaxrl_llm.offline.datasets.rlds: Transitions -> RLDS/TFDS (ArrayRecord) -> Transitions."""

import json
import os
import shutil
import socket
import sys

import numpy as np
import pytest

# The `offline` extra (installed by `make install`) provides tensorflow-datasets + array-record.
tfds = pytest.importorskip("tensorflow_datasets", reason="the `offline` extra is not installed")

from jaxrl_llm.offline import datasets  # noqa: E402
from jaxrl_llm.offline.datasets import rlds  # noqa: E402
from jaxrl_llm.offline.types import Transitions  # noqa: E402

FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts",
          "masks")


def _episode(rng, steps, terminated):
  return dict(observations=rng.normal(size=(steps + 1, 11)).astype(np.float32),
              actions=rng.uniform(-1, 1, size=(steps, 3)).astype(np.float32),
              rewards=rng.normal(size=steps).astype(np.float32),
              terminations=np.eye(steps)[-1].astype(bool) if terminated else np.zeros(steps, bool),
              truncations=np.zeros(steps, bool) if terminated else np.eye(steps)[-1].astype(bool))


@pytest.fixture
def no_network(monkeypatch):
  def refuse(*args, **kwargs):
    raise AssertionError("network access attempted")

  monkeypatch.setattr(socket.socket, "connect", refuse)
  monkeypatch.setattr(socket, "create_connection", refuse)


def test_minari_to_rlds_to_transitions_is_the_source(tmp_path, monkeypatch, no_network):
  monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
  rng = np.random.default_rng(0)
  # terminated after 5 steps, truncated after 4, and an open-ended 3-step episode.
  eps = [_episode(rng, 5, True), _episode(rng, 4, False)]
  eps.append(dict(_episode(rng, 3, False), truncations=np.zeros(3, bool)))
  root = str(tmp_path / "minari")
  datasets.save_minari_dataset("test/hopper-rlds-v0", eps, "Hopper-v5", root,
                               ref_min_score=-20.0, ref_max_score=3000.0)
  source = datasets.load_minari("test/hopper-rlds-v0", datasets_path=root)
  meta = {"source": "minari:test/hopper-rlds-v0", "env_id": "Hopper-v5", "seed": 0,
          "ref_scores": [-20.0, 3000.0]}
  path = rlds.save_rlds(source, str(tmp_path / "tfds"), "hopper_rlds", metadata=meta)
  assert path == str(tmp_path / "tfds" / "hopper_rlds" / "1.0.0")
  assert any(f.startswith("hopper_rlds-train.array_record") for f in os.listdir(path))

  back = rlds.read_rlds(path)
  for name in FIELDS:
    np.testing.assert_array_equal(getattr(back.transitions, name), getattr(source, name),
                                  err_msg=name)
  assert back.transitions.goals is None and back.transitions.next_actions is None
  # Episode boundaries, by hand: 5 + 4 + 3 transitions.
  np.testing.assert_array_equal(back.transitions.terminals, [0, 0, 0, 0, 1] + [0] * 7)
  np.testing.assert_array_equal(back.transitions.timeouts, [0] * 5 + [0, 0, 0, 1] + [0, 0, 1])
  np.testing.assert_array_equal(back.episode_metadata["episode_id"], [0, 1, 2])
  np.testing.assert_array_equal(back.episode_metadata["is_truncated"], [False, True, True])
  assert back.metadata == meta
  assert "tensorflow" not in sys.modules  # written and read without TensorFlow

  # The raw RLDS layout, read with tfds directly: one record per episode, T + 1 steps.
  source_ds = tfds.builder_from_directory(path).as_data_source(split="train")
  assert len(source_ds) == 3
  ep0 = source_ds[0]
  steps = [ep0["steps"][i] for i in range(len(ep0["steps"]))]
  assert len(steps) == 6
  assert [bool(s["is_first"]) for s in steps] == [True] + [False] * 5
  assert [bool(s["is_last"]) for s in steps] == [False] * 5 + [True]
  assert [bool(s["is_terminal"]) for s in steps] == [False] * 5 + [True]
  assert [float(s["discount"]) for s in steps] == [1, 1, 1, 1, 0, 0]
  np.testing.assert_array_equal(steps[5]["observation"], eps[0]["observations"][5])
  np.testing.assert_array_equal(steps[2]["action"], eps[0]["actions"][2])
  np.testing.assert_array_equal([s["reward"] for s in steps[:5]], eps[0]["rewards"])
  ep1_steps = source_ds[1]["steps"]
  last = ep1_steps[len(ep1_steps) - 1]
  assert bool(last["is_last"]) and not bool(last["is_terminal"])  # truncated
  assert source_ds[1]["is_truncated"]

  with pytest.raises(FileExistsError, match="already exists"):
    rlds.save_rlds(source, str(tmp_path / "tfds"), "hopper_rlds")


def _hand_transitions():
  """Episode A: states 0 -> 1 -> 2, terminal. Episode B: 10 -> 11, boundary marked only by the
  observation jump (no flag). Episode C: 20 -> 21 -> 22, timeout."""
  obs = np.float32([[0], [1], [10], [20], [21]])
  nxt = np.float32([[1], [2], [11], [21], [22]])
  return Transitions(observations=obs, actions=np.float32([[0.5], [-0.5], [1], [2], [3]]),
                     rewards=np.float32([1, 2, 3, 4, 5]), next_observations=nxt,
                     terminals=np.float32([0, 1, 0, 0, 0]), timeouts=np.float32([0, 0, 0, 0, 1]),
                     goals=np.float32([[9, 9], [9, 9], [8, 8], [7, 7], [7, 7]]),
                     next_actions=np.float32([[-0.5], [0], [0], [3], [0]]))


def test_rlds_episodes_by_hand():
  eps = rlds.transitions_to_rlds_episodes(_hand_transitions())
  assert [len(e["steps"]["is_first"]) for e in eps] == [3, 2, 3]
  a, b, c = (e["steps"] for e in eps)
  np.testing.assert_array_equal(a["observation"][:, 0], [0, 1, 2])
  np.testing.assert_array_equal(a["action"][:, 0], [0.5, -0.5, 0])  # last step: zeros
  np.testing.assert_array_equal(a["reward"], [1, 2, 0])
  np.testing.assert_array_equal(a["discount"], [1, 0, 0])
  np.testing.assert_array_equal(a["is_terminal"], [False, False, True])
  np.testing.assert_array_equal(b["observation"][:, 0], [10, 11])
  np.testing.assert_array_equal(b["is_terminal"], [False, False])
  np.testing.assert_array_equal(c["is_last"], [False, False, True])
  np.testing.assert_array_equal(c["goal"], [[7, 7], [7, 7], [0, 0]])
  assert [e["is_truncated"] for e in eps] == [False, False, True]
  assert [e["episode_id"] for e in eps] == [0, 1, 2]


def test_optional_fields_and_unmarked_boundaries_round_trip(tmp_path, no_network):
  data = _hand_transitions()
  back = datasets.validate_transitions(data)
  path = rlds.save_rlds(data, str(tmp_path), "hand")
  loaded = rlds.load_rlds(path)
  via_registry = datasets.load("rlds", path)  # the offline loop's format registry
  np.testing.assert_array_equal(via_registry.observations, loaded.observations)
  for name in FIELDS + ("goals", "next_actions"):
    np.testing.assert_array_equal(getattr(loaded, name), getattr(back, name), err_msg=name)
  # Episode B's end stays unflagged (timeouts 0), as in the source.
  np.testing.assert_array_equal(loaded.timeouts, [0, 0, 0, 0, 1])


def test_a_directory_that_is_not_rlds_is_a_named_error(tmp_path):
  with pytest.raises(FileNotFoundError, match="not found"):
    rlds.read_rlds(str(tmp_path / "missing"))
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match=r"missing \['dataset_info.json', 'features.json'\]"):
    rlds.read_rlds(str(tmp_path / "empty"))
  path = rlds.save_rlds(_hand_transitions(), str(tmp_path), "hand")

  def edited(name, edit):
    copy = str(tmp_path / name)
    shutil.copytree(path, copy)
    with open(os.path.join(copy, "features.json")) as f:
      spec = json.load(f)
    edit(spec["featuresDict"]["features"])
    with open(os.path.join(copy, "features.json"), "w") as f:
      json.dump(spec, f)
    return copy

  no_steps = edited("no_steps", lambda top: top.pop("steps"))
  with pytest.raises(ValueError, match=r"no `steps` \(found \['episode_id', 'is_truncated'\]\)"):
    rlds.read_rlds(no_steps)
  no_reward = edited("no_reward", lambda top: top["steps"]["sequence"]["feature"]["featuresDict"][
      "features"].pop("reward"))
  with pytest.raises(ValueError, match=r"`steps` is missing \['reward'\]"):
    rlds.read_rlds(no_reward)
  with pytest.raises(ValueError, match="no split 'test'"):
    rlds.read_rlds(path, split="test")
  with pytest.raises(ValueError, match="missing RLDS field"):
    rlds.transitions_from_rlds_episodes([{"steps": {"observation": np.zeros((2, 1))}}])

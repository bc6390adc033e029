"""End-to-end tiny dataset generation (seconds) and its helpers."""

import json
import os

import numpy as np
import pytest

from jaxrl_llm.offline import datasets
from jaxrl_llm.offline.generation import make_datasets as md
from jaxrl_llm.offline.generation.sac import SACConfig


def test_select_checkpoints_d4rl_rule():
  ck = [dict(step=i, eval_return=r) for i, r in enumerate([10.0, 50.0, 200.0, 120.0, 300.0])]
  medium, expert = md.select_checkpoints(ck)
  assert expert["step"] == 4  # best return 300
  assert medium["step"] == 2  # first return >= 300 / 3 = 100
  ck = [dict(step=i, eval_return=r) for i, r in enumerate([-50.0, 10.0, 40.0, 100.0, 100.0])]
  medium, expert = md.select_checkpoints(ck)
  assert expert["step"] == 4  # latest of the tied best
  assert medium["step"] == 1  # threshold -50 + 150 / 3 = 0


def test_buffer_to_episodes():
  obs = np.arange(6, dtype=np.float32)[:, None]
  buf = dict(observations=obs, next_observations=obs + 0.5, actions=np.zeros((6, 1), np.float32),
             rewards=np.arange(6, dtype=np.float32), terminals=np.float32([0, 1, 0, 0, 0, 0]),
             timeouts=np.float32([0, 0, 0, 1, 0, 0]))
  eps = md.buffer_to_episodes(buf)
  assert [len(e["rewards"]) for e in eps] == [2, 2, 2]
  np.testing.assert_array_equal(eps[0]["observations"][:, 0], [0, 1, 1.5])
  np.testing.assert_array_equal(eps[1]["observations"][:, 0], [2, 3, 3.5])
  assert [e["complete"] for e in eps] == [True, True, False]
  np.testing.assert_array_equal(eps[0]["terminations"], [False, True])
  np.testing.assert_array_equal(eps[1]["truncations"], [False, True])


def test_collect_episodes_exact_steps_and_continuity():
  eps = md.collect_episodes(lambda o, rng: rng.uniform(-1, 1, 3).astype(np.float32), "Hopper-v5", 120, seed=0,
                            env_kwargs=dict(max_episode_steps=30))
  assert sum(len(e["rewards"]) for e in eps) == 120
  for e in eps:
    assert e["observations"].shape == (len(e["rewards"]) + 1, 11)
    assert e["terminations"][-1] or e["truncations"][-1]
  assert all(e["complete"] for e in eps[:-1])
  # replaying episode 0's actions from the same reset seed reproduces its observations
  import gymnasium as gym
  env = gym.make("Hopper-v5", max_episode_steps=30)
  o, _ = env.reset(seed=0)
  np.testing.assert_allclose(o, eps[0]["observations"][0], rtol=1e-6)
  for t, a in enumerate(eps[0]["actions"]):
    o, *_ = env.step(a)
    np.testing.assert_allclose(o, eps[0]["observations"][t + 1], rtol=1e-5, atol=1e-6)


def test_tiny_end_to_end(tmp_path):
  out = str(tmp_path / "minari")
  summary = md.make_datasets(
      "Hopper-v5", out, sac_steps=300, dataset_steps=150, seed=0,
      sac_config=SACConfig(hidden_dims=(16, 16), batch_size=32), warmup_steps=100, update_every=50,
      eval_every=100, eval_episodes=1, ref_episodes=2, env_kwargs=dict(max_episode_steps=50), log=lambda s: None)
  sizes = {}
  for kind in md.DATASET_KINDS:
    t = datasets.load_minari(f"jaxrl/hopper/{kind}-v0", datasets_path=out)
    sizes[kind] = t.observations.shape[0]
    assert t.observations.shape[1] == 11 and t.actions.shape[1] == 3
    assert np.all(np.abs(t.actions) <= 1.0)
    assert summary["datasets"][kind]["transitions"] == sizes[kind]
  assert sizes["random"] == sizes["medium"] == sizes["expert"] == 150
  assert sizes["medium-expert"] == 300
  # medium-replay = the SAC buffer up to the medium snapshot
  assert sizes["medium-replay"] == summary["medium_checkpoint"]["step"]
  with open(os.path.join(out, "jaxrl", "hopper", "reference_scores.json")) as f:
    saved = json.load(f)
  assert saved["d4rl_reference"] == {"random": -20.272305, "expert": 3234.3}
  assert set(saved["local_reference"]) >= {"random", "expert"}
  assert [c["step"] for c in saved["sac_curve"]] == [100, 200, 300]
  assert os.path.exists(os.path.join(out, "jaxrl", "hopper", "sac_actor_expert.msgpack"))
  import minari
  ds = minari.MinariDataset(os.path.join(out, "jaxrl/hopper/medium-v0", "data"))
  ref = saved["local_reference"]
  assert minari.get_normalized_score(ds, np.array(ref["expert"])) == pytest.approx(1.0)


def test_cli_random_only(tmp_path):
  summary = md.main(["--out", str(tmp_path), "--kinds", "random", "--dataset-steps", "60", "--env", "Hopper-v5"])
  t = datasets.load_minari("jaxrl/hopper/random-v0", datasets_path=str(tmp_path))
  assert t.observations.shape[0] == 60
  assert "expert" not in summary["local_reference"]
  with pytest.raises(ValueError, match="kind"):
    md.make_datasets("Hopper-v5", str(tmp_path), kinds=["replay"])

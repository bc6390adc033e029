"""Smoke test of experiments/offline.py on a tiny synthetic dataset (no env eval)."""

import importlib.util
import json
import os

import jax
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name, path):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


offline = _load("experiments_offline", "experiments/offline.py")


def _smoke_config(recipe, workdir, **overrides):
  config = _load(f"cfg_{recipe}", f"configs/offline/{recipe}.py").get_config()
  config.dataset_format = "synthetic"
  config.dataset_path = ""
  config.synthetic.num_transitions = 600
  config.env_name = ""
  config.eval_episodes = 0
  config.agent.hidden_dims = (16, 16)
  config.batch_size = 32
  config.max_steps = 20
  config.steps_per_call = 10
  config.log_interval = 10
  config.checkpoint_interval = 10
  config.progress_bar = False
  config.workdir = str(workdir)
  config.update(overrides)
  return config


def test_iql_recipe_trains_logs_checkpoints_and_plots(tmp_path):
  config = _smoke_config("iql_hopper", tmp_path)
  state, summary = offline.run(config)
  assert int(state.step) == 20
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [l["step"] for l in lines] == [10, 20]
  for key in ("train/critic_loss", "train/value_loss", "train/actor_loss"):
    assert np.isfinite(lines[-1][key])
  assert json.load(open(tmp_path / "scores.json"))["steps"] == 20
  assert summary["num_transitions"] == 600
  assert os.path.getsize(tmp_path / "curves.png") > 1000
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "20"]
  # The config's cosine-decay horizon follows the run length.
  assert state.config.max_steps == 20

  from jaxrl_llm.offline import agents

  data = offline.synthetic_dataset(config.synthetic, seed=config.seed)
  cfg = agents.iql.get_config()
  cfg.update(config.agent.to_dict())
  template = agents.iql.init(jax.random.key(7), data, cfg)  # other key: values must come from disk
  restored = offline.restore_state(str(tmp_path), template)
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_riql_recipe_with_reward_corruption(tmp_path):
  config = _smoke_config("riql_hopper", tmp_path, checkpoint_interval=0)
  config.agent.num_critics = 3
  config.corruption.fields = ("rewards",)
  state, summary = offline.run(config)
  assert int(state.step) == 20
  # 30 % of 600 transitions are corrupted (Bernoulli per transition).
  assert 0.2 < summary["corrupted"]["rewards"] < 0.4
  assert not os.path.exists(tmp_path / "checkpoints")


def test_bad_experiment_config_errors(tmp_path):
  config = _smoke_config("bc_hopper", tmp_path, max_steps=25)
  with pytest.raises(ValueError, match="steps_per_call"):
    offline.run(config)
  config = _smoke_config("bc_hopper", tmp_path, dataset_format="parquet")
  with pytest.raises(ValueError, match="dataset_format"):
    offline.run(config)

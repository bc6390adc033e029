"""jaxrl_llm.offline.train: the workdir rule shared with the SFT/RL loops (refuse / resume /
overwrite), config errors that name the field, and the loop's layering (no LLM stack)."""

import json
import os
import subprocess
import sys

import pytest

from jaxrl_llm.offline import train as offline_train
from jaxrl_llm.runs.checkpoint import committed_steps

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(workdir, **overrides):
  import importlib.util

  spec = importlib.util.spec_from_file_location(
      "offline_base_config", os.path.join(ROOT, "configs/offline/base.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.update(agent_name="bc", dataset_format="synthetic", env_name="", eval_episodes=0,
                batch_size=16, max_steps=10, steps_per_call=5, log_interval=5,
                checkpoint_interval=5, progress_bar=False, tensorboard=False,
                workdir=str(workdir))
  config.synthetic.num_transitions = 200
  config.agent.hidden_dims = (8, 8)
  config.update(overrides)
  return config


def _steps(path):
  return [json.loads(line)["step"] for line in open(path)]


def test_overwrite_deletes_the_previous_run_and_starts_fresh(tmp_path):
  offline_train.train(_config(tmp_path))
  assert committed_steps(str(tmp_path / "checkpoints")) == [5, 10]
  (tmp_path / "checkpoints" / "5").rename(tmp_path / "checkpoints" / "999")  # a marker
  state, summary = offline_train.train(_config(tmp_path, max_steps=5, overwrite=True))
  assert summary["resumed_from"] is None and int(state.step) == 5
  assert committed_steps(str(tmp_path / "checkpoints")) == [5]  # the old 10 and 999 are gone
  assert _steps(tmp_path / "metrics.jsonl") == [5]


def test_resume_needs_a_committed_checkpoint(tmp_path):
  with pytest.raises(ValueError, match="resume=True but .* holds no committed checkpoint"):
    offline_train.train(_config(tmp_path, resume=True))
  (tmp_path / "metrics.jsonl").write_text('{"step": 5, "train/actor_loss": 1.0}\n')
  with pytest.raises(ValueError, match="metrics.jsonl but no committed checkpoint.*"
                     "--config.overwrite=True"):
    offline_train.train(_config(tmp_path))


def test_config_errors_name_the_field(tmp_path):
  with pytest.raises(ValueError, match="unknown agent 'cql'; known agents: .*bc.*iql.*riql"):
    offline_train.train(_config(tmp_path, agent_name="cql"))
  with pytest.raises(ValueError, match=r"config.log_interval \(7\) must be a multiple of "
                     r"config.steps_per_call \(5\)"):
    offline_train.train(_config(tmp_path, log_interval=7))
  with pytest.raises(ValueError, match="dataset_path is empty"):
    offline_train.train(_config(tmp_path, dataset_format="auto", dataset_path=""))
  assert not os.listdir(tmp_path)  # refused before anything was written


def test_offline_loop_does_not_import_the_llm_stack():
  code = ("import sys\n"
          "import jaxrl_llm.offline.train\n"
          "bad = sorted(m for m in sys.modules if m.startswith(('jaxrl_llm.models', "
          "'jaxrl_llm.losses', 'jaxrl_llm.sampling', 'jaxrl_llm.training', 'jaxrl_llm.rewards', "
          "'jaxrl_llm.data', 'transformers', 'torch')))\n"
          "assert not bad, bad\n"
          "assert 'jaxrl_llm.runs.checkpoint' in sys.modules\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]


def test_td_jepa_recipe_trains_through_the_loop_with_zero_shot_evaluation(tmp_path):
  """configs/offline/td_jepa_pointmaze.py, shrunk, through train(): the OGBench data is made
  from its recipe, batches carry future-state goals, and evaluation is the zero-shot one
  (act needs a task z)."""
  import importlib.util

  spec = importlib.util.spec_from_file_location(
      "td_jepa_pointmaze_config", os.path.join(ROOT, "configs/offline/td_jepa_pointmaze.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  config.update(workdir=str(tmp_path / "run"), dataset_path=str(tmp_path / "pm.npz"),
                batch_size=16, max_steps=4, steps_per_call=2, log_interval=2, eval_interval=4,
                checkpoint_interval=4, progress_bar=False, tensorboard=False)
  config.ogbench.update(dict(num_episodes=2, episode_length=100, val_episodes=1))
  config.agent.update(dict(encoder_hidden_dims=(8,), embed_dims=(), hidden_dims=(8,),
                           phi_dim=4, psi_dim=4))
  config.zero_shot.update(dict(episodes_per_task=1, num_inference_samples=100,
                               max_episode_steps=10))
  _, summary = offline_train.train(config)
  assert os.path.isfile(tmp_path / "pm.npz")
  assert summary["steps"] == 4 and summary["num_transitions"] == 198
  (final,) = [r for r in summary["evaluations"] if r["step"] == 4]
  assert set(final) == {"step", "eval/success_mean"} | {f"eval/task{t}_success" for t in range(1, 6)}
  assert all(0.0 <= final[f"eval/task{t}_success"] <= 1.0 for t in range(1, 6))

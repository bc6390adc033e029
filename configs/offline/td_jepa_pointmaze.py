"""TD-JEPA zero-shot RL on locally generated OGBench pointmaze-medium-navigate data.

  python experiments/offline.py --config=configs/offline/td_jepa_pointmaze.py

The data (`ogbench` block) is made by jaxrl_llm.offline.ogbench_data with the
ogbench package's pointmaze and a BFS-waypoint controller (OGBench's navigate
protocol: 1000 trajectories × 1001 steps, about 2 min on this CPU), written in
OGBench's npz layout with qpos/qvel. Training is reward-free: batches carry a
future state of the same trajectory (`future_goals`, geometric with γ_f), half
of the tasks z are its encoding. Evaluation is zero-shot (`zero_shot`): for each
of the 5 single-task goals, z = infer_task(ψ, relabelled rewards) and the
success rate of act(..., task=z).
"""

import importlib.util
import os

import ml_collections

from jaxrl_llm.offline import agents


def _base():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "base.py")
  spec = importlib.util.spec_from_file_location("jaxrl_llm_offline_config_base", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(maze: str = "medium"):
  maze = maze or "medium"
  name = f"pointmaze-{maze}-navigate-v0"
  config = _base().get_config()
  config.agent_name = "td_jepa"
  config.agent = agents.td_jepa.get_config()  # the paper's OGBench settings
  config.agent.bc_coeff = 0.3  # the paper's navigation (antmaze) value
  config.env_name = ""  # no return-based evaluation: success rates come from `zero_shot`
  config.dataset_format = "ogbench_npz"
  config.dataset_path = f"/tmp/jaxrl_llm_ogbench/{name}.npz"
  config.ogbench = ml_collections.ConfigDict(dict(
      dataset_name=name, num_episodes=1000, episode_length=1001, val_episodes=10, seed=0,
      generator=dict(noise=0.5)))
  config.future_goals = ml_collections.ConfigDict(dict(discount=0.99))
  config.zero_shot = ml_collections.ConfigDict(dict(
      dataset_name=name, episodes_per_task=10, num_inference_samples=10_000,
      reward_shift=1.0, seed=0, max_episode_steps=0))  # 0: the env's 1000 steps
  config.reward_scaling = "none"  # reward-free training
  config.batch_size = 256
  config.max_steps = 1_000_000
  config.eval_interval = 100_000
  config.workdir = f"/tmp/jaxrl_llm_offline/td_jepa_{name}"
  return config

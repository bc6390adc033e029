"""TD-JEPA zero-shot RL on locally generated OGBench cube-single-play data.

  python experiments/offline.py --config=configs/offline/td_jepa_cube.py

The data is made with the ogbench package's own `CubePlanOracle` (play data:
a new random target whenever a plan is done). OGBench's cube-single-play has
1000 trajectories × 1001 steps (≈ 23 min on one core of this CPU); the default
here is 200 trajectories (≈ 5 min). The paper's manipulation settings:
bc_coeff 3.0, orthonormality coefficients swept in {1, 10}.
"""

import importlib.util
import os

import ml_collections


def _pointmaze():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "td_jepa_pointmaze.py")
  spec = importlib.util.spec_from_file_location("jaxrl_llm_offline_config_td_jepa_pm", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(num_episodes: str = "200"):
  config = _pointmaze().get_config()
  name = "cube-single-play-v0"
  config.agent.bc_coeff = 3.0  # the paper's manipulation value
  config.dataset_path = f"/tmp/jaxrl_llm_ogbench/{name}.npz"
  config.ogbench = ml_collections.ConfigDict(dict(
      dataset_name=name, num_episodes=int(num_episodes or 200), episode_length=1001,
      val_episodes=2, seed=0, generator=dict(noise=0.1, noise_smoothing=0.5)))
  config.zero_shot.dataset_name = name
  config.workdir = f"/tmp/jaxrl_llm_offline/td_jepa_{name}"
  return config

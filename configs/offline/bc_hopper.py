"""Gaussian BC on a locally generated Hopper-v5 medium-replay dataset.

  python experiments/offline.py --config=configs/offline/bc_hopper.py
"""

import importlib.util
import os

from jaxrl_llm.offline import agents


def _base():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "base.py")
  spec = importlib.util.spec_from_file_location("jaxrl_llm_offline_config_base", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config():
  config = _base().get_config()
  config.agent_name = "bc"
  config.agent = agents.bc.get_config()
  config.env_name = "Hopper-v5"
  config.dataset_format = "minari"
  config.dataset_path = "jaxrl/hopper/medium-replay-v0"
  config.reward_scaling = "none"  # BC ignores rewards
  config.workdir = "/tmp/jaxrl_llm_offline/bc_hopper"
  return config

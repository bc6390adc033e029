"""IQL on a locally generated Hopper-v5 medium-replay dataset (IQL paper settings).

  python experiments/offline.py --config=configs/offline/iql_hopper.py
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
  config.agent_name = "iql"
  config.agent = agents.iql.get_config("locomotion")  # τ 0.7, β 3, cosine actor lr
  config.env_name = "Hopper-v5"
  config.dataset_format = "minari"
  config.dataset_path = "jaxrl/hopper/medium-replay-v0"
  config.reward_scaling = "locomotion"  # r · 1000 / (max − min episode return)
  config.workdir = "/tmp/jaxrl_llm_offline/iql_hopper"
  return config

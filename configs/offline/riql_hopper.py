"""RIQL on Hopper-v5 medium-replay with 30 % random corruption (RIQL protocol).

  python experiments/offline.py --config=configs/offline/riql_hopper.py
  python experiments/offline.py --config=configs/offline/riql_hopper.py:rewards

The optional argument picks the corrupted field (observations, actions,
rewards, dynamics; default dynamics) and with it the paper's per-task
(Huber σ, quantile α, ensemble size K) for hopper / random corruption.
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


def get_config(field: str = "dynamics"):
  field = field or "dynamics"
  config = _base().get_config()
  config.agent_name = "riql"
  config.agent = agents.riql.get_config(f"hopper/random/{field}")
  config.env_name = "Hopper-v5"
  config.dataset_format = "minari"
  config.dataset_path = "jaxrl/hopper/medium-replay-v0"
  config.corruption.mode = "random"
  config.corruption.fields = (field,)
  config.corruption.rate = 0.3
  config.corruption.scale = 1.0
  config.reward_scaling = "none"  # RIQL normalises observations, not rewards
  config.max_steps = 1_000_000  # the paper trains 3M steps; 1M here as for IQL
  config.workdir = f"/tmp/jaxrl_llm_offline/riql_hopper_{field}"
  return config

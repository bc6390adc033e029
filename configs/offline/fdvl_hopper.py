"""f-DVL on a locally generated Hopper-v5 medium-replay dataset (Dual RL paper settings).

  python experiments/offline.py --config=configs/offline/fdvl_hopper.py
  python experiments/offline.py --config=configs/offline/fdvl_hopper.py:total-variation

The optional argument picks the f-divergence (chi-square, the default and the
paper's locomotion choice; total-variation; reverse-kl). The rest is the
reference runs' locomotion setting: λ = 1, max_clip 5, smoothing over one
uniform action per state, AWR β = 3, Huber(20) Q loss, LayerNorm value net,
batch 1024 (hari-sikchi/DVL README and flags; ../shared/reference §4.1).
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


def get_config(divergence: str = "chi-square"):
  divergence = divergence or "chi-square"
  config = _base().get_config()
  config.agent_name = "fdvl"
  config.agent = agents.fdvl.get_config("locomotion")
  config.agent.divergence = divergence
  config.env_name = "Hopper-v5"
  config.dataset_format = "minari"
  config.dataset_path = "jaxrl/hopper/medium-replay-v0"
  config.reward_scaling = "locomotion"  # r · 1000 / (max − min episode return), as IQL
  config.batch_size = 1024  # the reference code's --batch_size default
  config.workdir = f"/tmp/jaxrl_llm_offline/fdvl_hopper_{divergence}"
  return config

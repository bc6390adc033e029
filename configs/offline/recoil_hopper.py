"""ReCOIL few-expert imitation on locally generated Hopper-v5 data (no rewards used).

  python experiments/offline.py --config=configs/offline/recoil_hopper.py
  python experiments/offline.py --config=configs/offline/recoil_hopper.py:medium

The SMODICE / Dual RL "few-expert" protocol: one labelled expert trajectory
(`expert.num_labelled_episodes`), and an unlabelled mixture of the `random`
(or, with the argument, `medium`) dataset plus `expert.num_unlabelled_episodes`
further expert trajectories that carry no expert label (200 in the paper; the
expert dataset must hold that many more episodes). Half of every batch comes
from the expert part (`expert.expert_ratio`), half from the mixture.
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


def get_config(unlabelled: str = "random"):
  unlabelled = unlabelled or "random"
  config = _base().get_config()
  config.agent_name = "recoil"
  config.agent = agents.recoil.get_config()
  config.env_name = "Hopper-v5"
  config.dataset_format = "minari"
  config.dataset_path = f"jaxrl/hopper/{unlabelled}-v0"  # the unlabelled suboptimal data
  config.expert = ml_collections.ConfigDict(dict(
      dataset_path="jaxrl/hopper/expert-v0", dataset_format="minari",
      seed=config.seed + 1,  # only used by a synthetic smoke-test expert set
      num_labelled_episodes=1, num_unlabelled_episodes=200, expert_ratio=0.5))
  config.reward_scaling = "none"  # ReCOIL never reads rewards
  config.batch_size = 256
  config.workdir = f"/tmp/jaxrl_llm_offline/recoil_hopper_{unlabelled}"
  return config

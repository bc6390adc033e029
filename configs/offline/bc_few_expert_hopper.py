"""Gaussian BC baselines of the ReCOIL few-expert protocol on Hopper-v5 (no rewards used).

  python experiments/offline.py --config=configs/offline/bc_few_expert_hopper.py:expert
  python experiments/offline.py --config=configs/offline/bc_few_expert_hopper.py:mixed

The data are exactly ReCOIL's two parts (configs/offline/recoil_hopper.py, built by
`offline.imitation.training_data`): `expert` trains BC on the one labelled expert
trajectory only, `mixed` on the unlabelled mixture (the random dataset plus
`expert.num_unlabelled_episodes` expert trajectories). `config.expert.train_on`
selects the part; every other field (datasets, episode counts, batch size) is
recoil_hopper.py's, so an override there applies to both baselines as well.
"""

import importlib.util
import os

from jaxrl_llm.offline import agents

PARTS = ("expert", "mixed")


def _recoil():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "recoil_hopper.py")
  spec = importlib.util.spec_from_file_location("jaxrl_llm_offline_config_recoil", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(part: str = "expert"):
  part = part or "expert"
  if part not in PARTS:
    raise ValueError(f"bc_few_expert_hopper.py:<part> must be one of {PARTS}, got {part!r}")
  config = _recoil().get_config("random")
  config.agent_name = "bc"
  config.agent = agents.bc.get_config()
  config.expert.train_on = part
  config.workdir = f"/tmp/jaxrl_llm_offline/bc_few_expert_hopper_{part}"
  return config

"""Goal-conditioned BC (GCBC) on the locally generated pointmaze-medium-navigate data.

  python experiments/offline.py --config=configs/offline/gcbc_pointmaze.py

The baseline of TD-JEPA's zero-shot claim (issue 15 (c)), on the same data as
`td_jepa_pointmaze.py` (its `ogbench` recipe and file): a Gaussian BC actor
π(a | s, g) trained on hindsight goals, g a future state of the same trajectory
(`future_goals`, geometric with γ_f = 0.99, as TD-JEPA samples its goal tasks).
Evaluation: the 5 single-task goals, the policy told each goal observation
(`zero_shot.policy = "goal_conditioned"`; TD-JEPA must infer its task from rewards).
Hyperparameters: OGBench's GCBC table (Park et al., ICLR 2025): MLP 3×512, Adam 3e-4,
batch 1024; ours learns a state-independent log σ where OGBench fixes σ.
"""

import importlib.util
import os


def _td_jepa():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "td_jepa_pointmaze.py")
  spec = importlib.util.spec_from_file_location("jaxrl_llm_offline_config_td_jepa", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(maze: str = "medium"):
  from jaxrl_llm.offline import agents

  config = _td_jepa().get_config(maze)  # the same data, goals and evaluation tasks
  config.agent_name = "bc"
  config.agent = agents.bc.get_config()
  config.agent.goal_conditioned = True
  config.agent.hidden_dims = (512, 512, 512)
  config.agent.actor_lr = 3e-4
  config.batch_size = 1024
  config.zero_shot.policy = "goal_conditioned"
  config.workdir = config.workdir.replace("td_jepa_", "gcbc_")
  return config

"""DRIVE's stage-2 hard-focus curriculum (Tencent Hunyuan, arXiv 2511.06307; spec section
25, SECONDARY: the HF ``tencent/DRIVE-RL`` README) on 2-digit addition, from the SFT
checkpoint of configs/sft_arithmetic.py.

Rollout method ``"drive"`` (training/curriculum.py): a retained set of hard prompts (kept
in the JSON method state by stream position, with their recent accuracies) fills up to
``hard_fraction`` of each batch, the rest comes from the stream; a stream prompt with group
accuracy ``< admit_threshold`` joins the set, a retained one whose mean accuracy over the
last ``window`` visits reaches ``solved_threshold`` is dropped, and beyond ``capacity`` the
easiest are evicted. The README gives none of these numbers (the values here are this
implementation's) and uses 64 rollouts per hard prompt; the groups here keep the run's
``group_size``. GRPO, n = 8, temperature 1.0. Logged: ``train/drive_retained``,
``train/drive_dropped``, ``train/drive_hard_accuracy`` (NaN on a step without retained
prompts), ``train/drive_admitted``, ``train/drive_evicted``.
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/drive_arithmetic"
  c.sampling.temperature = 1.0
  c.rl.group_size = 8
  c.rl.advantage = "grpo"
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.rollout_method = "drive"
  c.rl.rollout_method_kwargs = ConfigDict({
      "hard_fraction": 0.5, "solved_threshold": 0.75, "admit_threshold": 0.5, "window": 2,
      "capacity": 64, "correct_threshold": 1.0})
  return c

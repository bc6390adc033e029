"""SELF ("The Reasoning Boundary Paradox: How Reinforcement Learning Constrains Language
Models", arXiv 2510.02230) on 2-digit addition, from the SFT checkpoint of
configs/sft_arithmetic.py.

Rollout method ``"self"`` (training/curriculum.py): each step the current policy
greedy-decodes one response per drawn prompt; prompts it answers correctly are dropped and
more are drawn (up to ``max_rounds`` rounds of ``num_prompts``) until ``num_prompts`` remain;
if the rounds run out the batch is topped up with greedy-solved prompts (``top_up =
"solved"``; ``"repeat"`` cycles the kept ones) where the official trainer skips the step.
Then standard GRPO: n = 8, temperature 1.0, std-normalised group advantage, no KL loss
(``slurm/train_max_ppo.sh``; there lr 1e-6, 128 prompts, Qwen2.5-Math-1.5B, DeepScaleR).
Logged: ``train/self_kept_frac``, ``train/self_greedy_accuracy``, ``train/self_rounds``,
``train/self_topped_up``.
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/self_arithmetic"
  c.sampling.temperature = 1.0
  c.rl.group_size = 8
  c.rl.advantage = "grpo"
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.rollout_method = "self"
  c.rl.rollout_method_kwargs = ConfigDict({"max_rounds": 4, "correct_threshold": 1.0,
                                           "top_up": "solved"})
  return c

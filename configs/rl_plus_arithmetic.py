"""RL-PLUS (Dong et al. 2025, "RL-PLUS: Countering Capability Boundary Collapse of LLMs
in Reinforcement Learning with Hybrid-policy Optimization", arXiv 2508.00222) on 2-digit
addition, from the SFT checkpoint of configs/sft_arithmetic.py.

Each prompt's group of ``group_size`` = 8 holds 7 sampled completions and, replacing
the 8th, the example's reference solution (``rl.batch_augment = "demonstration"``:
``Example.completion`` tokenized with EOS, ``is_off_policy`` True, scored by the
task's verifier; training/demonstration.py). Advantage ``grpo_split``: the group mean
over the on-policy members only (``grpo_use_std=False``; ``use_std=True`` also divides
by their std). The released script (``exp_scripts/train_RL-PLUS.sh``) runs plain
``adv_estimator=grpo`` (the demonstration inside the mean): ``--config.rl.advantage=grpo``
(with ``--config.rl.advantage_kwargs`` emptied of ``use_std``).

Policy loss ``rl_plus`` (losses/rl_plus.py): on-policy ``-A r`` without clipping
(``loss_remove_clip=True``), off-policy ``-r_MIS A (1 - sg p)^0.5``, aggregated as
the sum over the batch's tokens / padded response length
(``loss_remove_token_mean=True``: ``agg_mode = "token-sum-norm"``). Entropy bonus
0.001, no KL and no reference (the script's defaults). Temperature 1.0 as the
script; learning rate, model and batch stay the tiny arithmetic model's (the script:
lr 1e-6 on Qwen2.5-Math-7B, 128 prompts).

    python experiments/rl.py --config=configs/rl_plus_arithmetic.py
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/rl_plus_arithmetic"
  c.sampling.temperature = 1.0
  c.rl.loss = "rl_plus"
  c.rl.loss_kwargs = ConfigDict({"gamma": 0.5, "clip": False, "clip_low": 0.2,
                                 "agg_mode": "token-sum-norm"})
  c.rl.advantage = "grpo_split"
  c.rl.advantage_kwargs = ConfigDict({"use_std": False})
  c.rl.batch_augment = "demonstration"
  c.rl.batch_augment_kwargs = ConfigDict({"field": "completion", "add_eos": True})
  c.rl.group_size = 8       # n = 8, of which n_prefix = 1 is the demonstration
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.entropy_coef = 0.001
  return c

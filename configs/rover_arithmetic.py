"""ROVER (He et al. 2025, "Random Policy Valuation is Enough for LLM Reasoning with
Verifiable Rewards", arXiv 2509.24981) on 2-digit addition.

The policy loss is :func:`jaxrl_llm.losses.rover_loss`: the intrinsic Q
``rho (lp - lp_old)`` of each sampled token is regressed (token mean of squares)
onto ``A_i + rho (mlp_theta(s_{t+1}) - mlp_old(s_{t+1}))``, the outcome advantage
plus the uniform-policy value of the next state, where ``mlp`` is the mean
log-prob over the whole vocabulary (from the fused kernel's ``mean_logprob``
statistic; the behaviour policy's is stored by ``prepare`` in
``batch.extras["old_mean_logprobs"]``).

Settings of the official ``Math/scripts/deepscaler/train/rover_qwen3_8b.sh``
(tinnerhrhe/ROVER @b0fa587): rollout temperature 0.6, ``rover_t`` (rho) 1.0,
GRPO advantage normalised by the group std (``norm_adv_by_std_in_grpo=True``;
the paper's formula uses the mean-centred reward only: set
``rl.advantage_kwargs.std_scope = "none"`` for it), no KL loss, no reference, no
critic, one PPO epoch over 4 mini-batches (128 prompts, mini-batch 32 there).
Token-level loss, no Q clip (``use_rover_clip`` off). The learning rate stays the
tiny arithmetic model's (the script uses 1e-6 on Qwen3-8B-Base).
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/rover_arithmetic"
  c.sampling.temperature = 0.6  # the script's rollout temperature (log-probs taken at it)
  c.rl.loss = "rover"
  # clip_eps (the code's use_rover_clip, e.g. 0.2) is off by default: not listed here.
  c.rl.loss_kwargs = ConfigDict({"rho": 1.0, "response_level": False,
                                 "target_adv_only": False})
  c.rl.advantage = "grpo"
  c.rl.advantage_kwargs = ConfigDict({"std_scope": "group", "eps": 1e-6})
  c.rl.kl = ""             # use_kl_loss=False: no KL term and no reference copy
  c.rl.kl_coef = 0.0
  c.rl.entropy_coef = 0.0
  c.rl.ppo_epochs = 1
  c.rl.num_minibatches = 4  # 4 optimiser steps per rollout batch
  c.rl.tis_cap = 0.0        # ROVER takes no importance weights
  return c

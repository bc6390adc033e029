"""PACS (Li et al. 2025, "Implicit Actor Critic Coupling via a Supervised Learning
Framework for RLVR", arXiv 2509.02522) on 2-digit addition.

The policy loss is :func:`jaxrl_llm.losses.pacs_loss`: the group-relative (RLOO)
log-ratio score ``psi_i`` of each response is a logit, the 0/1 outcome its label,
and the loss is the class-balanced BCE (weights per question). Settings of the
official ``scripts/pacs/pacs_beta_1.0.sh``: beta 1, rloo, question weights, no KL
loss, no entropy bonus, 4 optimiser steps per rollout batch (train batch 1024
prompts, PPO mini-batch 256 there; here ``num_minibatches = 4``, each a whole
number of groups, which the loop keeps whole because the loss is registered with
``whole_groups``). The advantage estimator ("grpo") is computed but unused. The
score sums over the response mask (the paper's formula); ``mask_score=False``
would reproduce the official unmasked sum. The learning rate stays the tiny
arithmetic model's (the paper uses 1e-6 on 3B/7B models).
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/pacs_arithmetic"
  c.rl.loss = "pacs"
  c.rl.loss_kwargs = ConfigDict({"beta": 1.0, "score": "log_ratio", "psi": "rloo",
                                 "class_weights": "question", "mask_score": True})
  c.rl.advantage = "grpo"  # unused by PACS
  c.rl.kl = ""             # no KL loss (and no reference copy)
  c.rl.kl_coef = 0.0
  c.rl.entropy_coef = 0.0
  c.rl.ppo_epochs = 1
  c.rl.num_minibatches = 4  # 4 optimiser steps per rollout batch (512 rows: 8 groups each)
  c.rl.tis_cap = 0.0        # PACS takes no per-token importance weights
  return c

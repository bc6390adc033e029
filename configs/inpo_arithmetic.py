"""INPO (Zhang et al. 2025, "Iterative Nash Policy Optimization", arXiv 2407.00617) on
2-digit addition, from the SFT checkpoint: each iteration samples ``num_samples``
responses per prompt from the current policy, labels (y_w, y_l) with the task's
verifier (prompts where every response ties are skipped and counted) and trains one
epoch of ``inpo_loss`` against the previous iterate and the initial (reference) policy.

SECONDARY: eta = 7.5e-3 and tau = eta / 3 are a third-party reimplementation's "paper
defaults" (unverified against the paper; /work/shared/reference/rlvr_methods.md section 8).
"""

from ml_collections import ConfigDict

from configs import dpo_arithmetic


def get_config():
  c = dpo_arithmetic.preference_config("inpo", {"eta": 7.5e-3, "tau": 2.5e-3},
                                       "/tmp/jaxrl_llm/inpo_arithmetic")
  del c.data  # the pairs come from the policy's own samples
  del c.steps  # iterations x (an epoch over each iteration's pairs)
  del c.max_new_tokens  # sampling.max_new_tokens (training samples and evaluation)
  c.inpo = ConfigDict({"iterations": 4, "prompts_per_iteration": 512, "num_samples": 4,
                       "epochs": 1})
  # top_k / top_p / min_p: 0 = off.
  c.sampling = ConfigDict({"max_new_tokens": 8, "temperature": 1.0, "top_p": 0.0, "top_k": 0,
                           "min_p": 0.0})
  c.batch_size = 32  # pairs per optimiser step
  c.eval_every = 1  # iterations
  c.checkpoint_every = 1  # iterations
  c.optim.learning_rate = 5e-5
  return c

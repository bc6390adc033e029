"""RLOO (Ahmadian et al. 2024, "Back to Basics"): leave-one-out baseline, REINFORCE loss."""

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/rloo_arithmetic"
  c.rl.advantage = "rloo"
  c.rl.loss = "reinforce"
  c.rl.loss_kwargs = {"agg_mode": "seq-mean-token-mean"}
  c.rl.num_minibatches = 1  # on-policy: one update per rollout batch
  return c

"""Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): no std
normalisation of the group advantage and a constant-length loss normaliser."""

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/drgrpo_arithmetic"
  c.rl.advantage = "dr_grpo"
  c.rl.loss_kwargs.agg_mode = "seq-mean-token-sum-norm"
  c.rl.loss_kwargs.horizon = float(c.sampling.max_new_tokens)
  return c

"""LaSeR (Yang et al. 2025, "LaSeR: Reinforcement Learning with Last-Token
Self-Rewarding", arXiv 2510.14943) on 2-digit addition, from the SFT checkpoint
of configs/sft_arithmetic.py.

GRPO (PPO clip on group-normalised advantages) plus the self-reward head: the
policy's log-prob of a fixed token z_c written right after each completion gives
s = beta_v (T lp_z - c_ref), fitted to the verifier reward by a class-balanced
MSE (weight alpha) and, after a warm-up, mixed into the advantage (weight
lambda). alpha, beta_v, lambda, tau are the official defaults (0.1 each); the
warm-ups are the official Qwen2.5-7B ones (200 / 400 of ~1000 steps) scaled to
this 100-step run (20 / 40). z_c is 'Z' (id 84 of the character tokenizer; an
arithmetic answer never contains it). c_ref stands for log pi_ref(z_c | x, y):
-4.5 is about log(1/86) (uniform over the 86-symbol vocabulary; the official
-23.0 is for Qwen2.5's 152k vocabulary); measure your initial model's log-prob of
z_c after EOS and set it there for s to start near 0.
"""

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/laser_arithmetic"
  c.rl.loss = "laser"
  c.rl.self_reward_token = 84  # 'Z'; -1 = off (then rl.loss='laser' fails at start)
  c.rl.loss_kwargs.update({
      "alpha": 0.1, "beta_v": 0.1, "lam": 0.1, "tau": 0.1, "c_ref": -4.5,
      "temperature": c.sampling.temperature,  # T in s = beta_v (T lp_z - c_ref)
      "loss_warmup_steps": 20, "advantage_warmup_steps": 40, "balanced": True})
  return c

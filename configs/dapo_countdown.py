"""DAPO (Yu et al. 2025) on Countdown: clip-higher, token-level loss, dynamic
sampling (drop all-equal groups, refill) and the soft overlong penalty; no KL."""

from ml_collections import ConfigDict

from configs import grpo_arithmetic, sft_countdown


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/dapo_countdown"
  c.init_from = "/tmp/jaxrl_llm/sft_countdown"  # configs/sft_countdown.py's workdir
  sft_countdown.set_countdown_task(c.task)
  c.sampling = ConfigDict({"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.0})
  c.rl.loss = "ppo"
  c.rl.loss_kwargs = {"clip_low": 0.2, "clip_high": 0.28, "agg_mode": "token-mean"}
  c.rl.advantage = "grpo"
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.dynamic_sampling = True
  c.rl.max_sampling_rounds = 3
  # Soft overlong penalty (losses.get_reward_shaping): ramps over the last 4 of
  # max_new_tokens tokens (max_length defaults to max_new_tokens).
  c.rl.reward_shaping = "overlong"
  c.rl.reward_shaping_kwargs = {"cache_length": 4}
  return c

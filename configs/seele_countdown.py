"""SEELE ("Staying in the Sweet Spot", arXiv 2509.06923; spec section 12) on Countdown,
from the SFT checkpoint of configs/sft_countdown.py.

Per step and problem, ``rounds`` m = 4 rounds of n = 8 rollouts (``rl.group_size = m * n
= 32``): round 1 starts from the problem's stored hint rate (cold start ``(|y| - 1) / |y|``),
later rounds fit the 3PL accuracy model ``f(p) = b + (1 - b) / (1 + exp(-k (p + mu)))`` to
the round pairs (plus the margin points) and hint ``l = round(f^{-1}(0.5) |y|)`` tokens of the
reference solution ``Example.completion`` (character tokens here), forced in front of the
generated tokens (``rl.rollout_method = "seele"``, training/seele.py). The advantage is
Dr. GRPO's ``r - mean`` over all 32 outputs of the problem (``rl.advantage = "dr_grpo"``);
the loss (``rl.loss = "seele"``, losses/seele.py) is PPO-clip (0.2) on the generated tokens
plus ``gamma = 0.001`` times the hint's NLL, summed per sequence and averaged over sequences
(Eq. 47, ``agg_mode = "seq-mean-token-sum"``); ``beta = 0.001`` k3 KL to the SFT model.
16 problems per step (the paper: 256, Qwen2.5 1.5B/3B, 400 steps, temperature 1.0).

    python experiments/rl.py --config=configs/seele_countdown.py

Logged: train/hint_rate (mean realised rate), train/hint_tokens, train/accuracy_round<i>,
train/accuracy_gap (mean |a - a*|), train/stored_hint_rate, train/fit_fallback_frac,
train/hint_nll; eval/accuracy is greedy and without hints.
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic, sft_countdown


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/seele_countdown"
  c.init_from = "/tmp/jaxrl_llm/sft_countdown"  # configs/sft_countdown.py's workdir
  sft_countdown.set_countdown_task(c.task)
  c.sampling = ConfigDict({"max_new_tokens": 12, "temperature": 1.0, "top_p": 0.0})
  c.rl.rollout_method = "seele"
  c.rl.rollout_method_kwargs = ConfigDict({"rounds": 4, "target_accuracy": 0.5,
                                           "solution_field": "completion",
                                           "length_unit": "tokens"})
  c.rl.group_size = 32   # m * n = 4 rounds x 8 rollouts: the problem's whole group
  c.rl.batch_size = 512  # 16 problems
  c.rl.advantage = "dr_grpo"
  c.rl.loss = "seele"
  c.rl.loss_kwargs = ConfigDict({"gamma": 0.001, "clip_low": 0.2,
                                 "agg_mode": "seq-mean-token-sum"})
  c.rl.kl = "k3"
  c.rl.kl_coef = 0.001
  return c

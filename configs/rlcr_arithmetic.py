"""RLCR (Damani et al. 2025, "Beyond Binary Rewards: Training LMs to Reason About Their
Uncertainty", arXiv 2507.16806) on 2-digit addition, from the SFT checkpoint of
configs/sft_arithmetic.py.

Reward ``task.reward = "rlcr"``: ``R = 1[y == y*] - (q - 1[y == y*])^2`` on the tabc
format ``<think>..</think> <answer>..</answer> <analysis>..</analysis>
<confidence>q</confidence>`` (rewards/calibration.py; a format failure, including q
outside [0, 1], gets -1). ``get_config("code")`` uses the released weighted sum
``0.5 fmt + 0.5 acc + 0.5 (1 - (acc - q)^2)`` (0 on a format failure; ``"rlcr_code"``).
The prompt transform ``rlcr_tabc`` puts the format instruction before each prompt; the
batch augmenter ``calibration_metrics`` logs ``train/rlcr_format_frac``,
``rlcr_answer_accuracy``, ``rlcr_confidence_mean`` and ``rlcr_brier`` (``train/accuracy``
counts R >= 1, i.e. correct with q = 1, so read ``rlcr_answer_accuracy`` instead).

As the released configs: GRPO without std scaling (``scale_rewards=false``: Dr. GRPO's
``A = r - mean_g r``), no KL (beta 0), temperature 0.7. Group size and learning rate are
the tiny model's (the released math config: 32 generations, lr 5e-6). The arithmetic
SFT model answers with the bare number, so it has to discover the format from the
instruction; a model that already follows instructions is what the method assumes.

    python experiments/rl.py --config=configs/rlcr_arithmetic.py
"""

from configs import grpo_arithmetic


def get_config(variant: str = ""):
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/rlcr_arithmetic"
  if variant not in ("", "code"):
    raise ValueError(f"rlcr_arithmetic: variant must be '' or 'code', got {variant!r}")
  c.task.reward = "rlcr_code" if variant == "code" else "rlcr"
  c.sampling.temperature = 0.7
  c.sampling.max_new_tokens = 96  # room for the four blocks
  c.rl.prompt_transform = "rlcr_tabc"
  c.rl.batch_augment = "calibration_metrics"
  c.rl.advantage = "dr_grpo"
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  return c

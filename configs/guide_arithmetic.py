"""Guide-GRPO (Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement Learning of
Reasoning Models", arXiv 2506.13923) on 2-digit arithmetic, from the SFT checkpoint of
configs/sft_arithmetic.py.

Rollouts (``rl.rollout_method = "guide"``, training/guide.py): G = 8 samples per prompt;
a group whose accuracy is <= 0.001 (all fail) is re-sampled from the hinted prompt
``hint_template.format(prompt=q, hint=Example.completion)`` (arithmetic: the answer
itself, so the hint is strong; for Countdown use ``hint_field = "completion"``, a
solution expression, with a template such as ``"Hint: {hint}\n{prompt}"``). The hinted group is
kept only if its accuracy is in (0.001, 0.999) (otherwise the original all-fail group
stays); its rows hold the ORIGINAL prompt, ``is_off_policy`` and the hinted-context
log-probs as ``sampler_logprobs``.

Loss ``guide`` (losses/guide.py): on-policy tokens PPO clip 0.2; hinted tokens
``-A r / (r + gamma)``, ``r = exp(lp - lp_old_hint)``, gamma = the detached 0.9-quantile
of r over the micro-batch's hinted tokens, >= 1e-4 (``gamma_strategy = "percentile"``;
``"constant"`` uses ``gamma_value`` itself); token-mean. GRPO advantages within each
group (hinted groups with their own rewards); no KL, no entropy bonus (the script's
``guide_grpo_qwen.sh``: lr 1e-6 on Qwen2.5-Math-7B, 128 prompts, n = 8, temperature 1).

    python experiments/rl.py --config=configs/guide_arithmetic.py
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/guide_arithmetic"
  c.sampling.temperature = 1.0
  c.rl.loss = "guide"
  c.rl.loss_kwargs = ConfigDict({"clip_low": 0.2, "gamma_strategy": "percentile",
                                 "gamma_value": 0.9, "gamma_min": 1e-4,
                                 "agg_mode": "token-mean"})
  c.rl.advantage = "grpo"
  c.rl.advantage_kwargs = ConfigDict()
  c.rl.rollout_method = "guide"
  c.rl.rollout_method_kwargs = ConfigDict({
      "hint_field": "completion", "hint_template": "Hint: the answer is {hint}.\n{prompt}",
      "reroll_threshold": 0.001, "keep_low": 0.001, "keep_high": 0.999,
      "min_reroll_groups": 1})
  c.rl.group_size = 8
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.entropy_coef = 0.0
  return c

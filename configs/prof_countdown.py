"""PROF (Process Consistency Filter, arXiv 2509.03403) with GRPO on Countdown, from the
SFT checkpoint of configs/sft_countdown.py.

``rl.rollout_method = "prof"`` (training/prof.py) samples ``num_samples`` = 2 m
completions per prompt and keeps ``m = rl.group_size`` of them: with the outcome
``r^o = +-1`` and the rule-based step scores ``r^h`` (``countdown_steps``: one equation
per line, 1 if right with available numbers; a verifiable stand-in for a PRM, there is
no learned PRM here), ``r_pro = [mean_h r^h - lambda 1(H <= 1 or H >= H_lambda)] r^o``;
``k+ + k- = m`` maximising ``k+ k-``; the correct rows with the highest ``r_pro`` and
(``variant="pos"``, PROF-POS) random incorrect rows, or (``"both"``, PROF-BOTH) the
incorrect rows with the lowest PRM. GRPO advantages on the kept rows. n, m, lambda and
H_lambda were not verified (the summary's values are unknown; ours: n = 2m, lambda 0.5,
H_lambda 8). Logged: ``train/prof_*`` (kept fractions of G+ / G-, step statistics) and
the kept set's ``train/accuracy``; ``train/prof_sampled_accuracy`` is over all n.

The SFT Countdown model writes one expression per answer (no ``=`` lines): every row then
has H = 0 and the penalty, so G+ is ranked by nothing but row order and PROF reduces to
balanced outcome subsampling until the policy writes intermediate equations.

    python experiments/rl.py --config=configs/prof_countdown.py
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic, sft_countdown


def get_config(variant: str = "pos"):
  if variant not in ("pos", "both"):
    raise ValueError(f"prof_countdown: variant must be 'pos' or 'both', got {variant!r}")
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/prof_countdown"
  c.init_from = "/tmp/jaxrl_llm/sft_countdown"
  sft_countdown.set_countdown_task(c.task)
  c.sampling.max_new_tokens = 24
  c.rl.group_size = 8  # m, the kept rows per prompt
  c.rl.rollout_method = "prof"
  c.rl.rollout_method_kwargs = ConfigDict({"num_samples": 16, "variant": variant, "lam": 0.5,
                                           "h_lambda": 8, "scorer": "countdown_steps",
                                           "correct_threshold": 1.0})
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  return c

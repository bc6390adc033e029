"""PEAR (importance-weighted SFT that prepares for RL; SECONDARY) on 2-digit addition:
configs/sft_arithmetic.py with the ``pear`` block switched on.

    python experiments/sft.py --config=configs/pear_arithmetic.py

Zhang et al., "Good SFT Optimizes for SFT, Better SFT Prepares for RL", arXiv 2602.01058.
No official code is public; the constants below come from a paper-to-code report
(rlvr_methods.md Sec. 9) and are options to re-check. ``behavior="init"``: the arithmetic
reference answers were not sampled from any model, so the behaviour policy ``pi_beta`` is
a frozen copy of the initial model (``"data"``: per-token log-probs stored in each
example's ``metadata["behavior_logprobs"]``).
"""

from ml_collections import ConfigDict

from configs import sft_arithmetic


def pear_block(enabled: bool = True) -> ConfigDict:
  """experiments/sft.py's ``pear`` block: off (``enabled=False``) is plain SFT, unchanged."""
  return ConfigDict({
      "enabled": enabled,
      "behavior": "init",       # "init" (frozen initial model) | "data" (metadata log-probs)
      "mode": "token",          # "token" (suffix, paper default) | "sequence" | "block"
      "gamma": 0.999,
      "clip_low": -0.08,        # [l_D, u_D]: clip of lp_theta - lp_beta
      "clip_high": 0.3,
      "block_size": 4,          # B of the "block" mode
      "log_weight_clip": (-10.0, 5.0),
  })


def get_config():
  c = sft_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/pear_arithmetic"
  c.pear = pear_block(True)
  return c

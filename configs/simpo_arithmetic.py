"""SimPO (Meng et al. 2024, arXiv 2405.14734; reference-free, length-normalised) on the
arithmetic preference pairs of configs/dpo_arithmetic.py."""

from configs import dpo_arithmetic


def get_config():
  c = dpo_arithmetic.preference_config("simpo", {"beta": 2.0, "gamma": 1.0},
                                       "/tmp/jaxrl_llm/simpo_arithmetic")
  return c

"""ORPO (Hong et al. 2024, arXiv 2403.07691; NLL on the chosen + lam * odds-ratio term, no
reference) on the arithmetic preference pairs of configs/dpo_arithmetic.py."""

from configs import dpo_arithmetic


def get_config():
  return dpo_arithmetic.preference_config("orpo", {"lam": 0.1},
                                          "/tmp/jaxrl_llm/orpo_arithmetic")

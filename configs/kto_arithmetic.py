"""KTO (Ethayarajh et al. 2024, arXiv 2402.01306) on the arithmetic preference pairs of
configs/dpo_arithmetic.py, unpaired (each pair: a desirable and an undesirable response;
batch_size counts responses)."""

from configs import dpo_arithmetic


def get_config():
  return dpo_arithmetic.preference_config(
      "kto", {"beta": 0.1, "desirable_weight": 1.0, "undesirable_weight": 1.0},
      "/tmp/jaxrl_llm/kto_arithmetic")

"""RAPO (Deng et al. 2025, "Unlocking Reasoning Capabilities in LLMs via
Reinforcement Learning Exploration", arXiv 2510.03865) on 2-digit addition, from
the SFT checkpoint of configs/sft_arithmetic.py.

SECONDARY: the method section of the paper was not reachable; this follows the
per-token reading of spec §3 (jaxrl_llm/losses/rapo.py). GRPO's clipped surrogate
plus alpha * forward KL(pihat_ref || pi) to the reward-tilted reference
pihat_ref ∝ pi_ref^phi(r), phi = phi_min + (1 - phi_min) r (the "linear" phi, an
unconfirmed choice), with an entropy bonus beta = rl.entropy_coef. alpha = 0.1,
phi_min = 0.5 and entropy_coef = 0.001 are unconfirmed constants. The frozen
reference is the initial model (rl.kl='k3' keeps it; rl.kl_coef=0: no reverse-KL
term); prepare computes log sum_a pi_ref(a)^phi in chunks of
rl.prepare_extras_kwargs.chunk_size tokens.
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/rapo_arithmetic"
  c.rl.loss = "rapo"
  c.rl.kl = "k3"      # a frozen reference is required (the tilted reference's base)
  c.rl.kl_coef = 0.0  # RAPO replaces the reverse KL by its forward KL
  c.rl.entropy_coef = 0.001
  c.rl.loss_kwargs.update({"alpha": 0.1, "phi": "linear", "phi_min": 0.5})
  c.rl.prepare_extras_kwargs = ConfigDict({"chunk_size": 1024})
  return c

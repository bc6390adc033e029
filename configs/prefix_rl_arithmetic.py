"""PrefixRL (Setlur et al. 2026, "Reuse your FLOPs", arXiv 2601.18795) on 2-digit
arithmetic, from the SFT checkpoint of configs/sft_arithmetic.py.

Rollouts (``rl.rollout_method = "prefix_rl"``, training/prefix_rl.py): the run keeps the
correct completions it finds (up to ``max_traces`` = 2 per problem, ``max_examples``
problems; JSON method state, saved with each checkpoint). For ``prefix_frac`` = 0.5 of
the drawn problems that have a trace, the completion is forced to start with the first
``h = floor(prefix_ratio * n)`` = half of one trace's n tokens; the forced tokens are
context (the verifier scores prefix + generated text) and get no loss, ratio or
gradient (out of ``loss_mask``). ``seed_field`` (e.g. ``"completion"``) would seed the
traces from the dataset instead of starting empty. The RL update is the GRPO recipe's
(PPO clip, GRPO advantages). The paper's mix ratio and h schedule are unknown (spec
section 10, SECONDARY), hence options.

    python experiments/rl.py --config=configs/prefix_rl_arithmetic.py
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/prefix_rl_arithmetic"
  # A finite problem set (reshuffled each epoch), so problems with a stored trace come back.
  c.task.pool_size = 2048
  c.rl.rollout_method = "prefix_rl"
  c.rl.rollout_method_kwargs = ConfigDict({
      "prefix_frac": 0.5, "prefix_ratio": 0.5, "max_traces": 2, "max_examples": 4096,
      "min_generated": 1, "seed_field": "", "store_prefixed": False})
  return c

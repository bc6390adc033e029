"""1-shot RLVR (Wang et al. 2025, "Reinforcement Learning for Reasoning in Large Language
Models with One Training Example", arXiv 2504.20571) on 2-digit addition, from the SFT
checkpoint of configs/sft_arithmetic.py.

Variants (``--config=configs/one_shot_rlvr_arithmetic.py:<variant>``):

* ``history``: GRPO on a finite training set (``task.pool_size`` = 256 examples of the
  arithmetic stream, reshuffled every epoch) that appends every example's per-step
  accuracy to ``workdir/example_accuracy.jsonl`` (``rl.accuracy_log``). Rank it::

      from jaxrl_llm.data import one_shot
      pi_1 = one_shot.select_examples("/tmp/jaxrl_llm/one_shot_history/example_accuracy.jsonl")[0]

  (``historical_variance_ranking``: std of each example's accuracy over the epochs,
  the official ``data_selection.py --method std``).
* ``""`` (default): the one-example run: ``task.only_examples = (pi_1,)`` (an index into
  the same pool; pass yours with ``--config.task.only_examples='(17,)'``), the example
  duplicated to fill every batch (64 copies x 8 samples here; the paper: 128 x 8).
* ``entropy_only``: the same with the policy-gradient term off, i.e. exactly
  ``--config.rl.pg_coef=0`` (the paper's "entropy loss only" ablation).

Loss as the official ``dp_actor`` (``scripts/train/training_1.5b_pi1_r128.sh``):
``pg_coef * PPO-clip(0.2, token-mean) - 0.001 * entropy + 0.001 * k3 KL`` (entropy is
maximised: the paper's entropy-loss coefficient -0.001), GRPO advantage, n = 8,
temperature 0.6, one update per rollout batch. The learning rate stays the tiny
model's (the paper: 1e-6 constant on Qwen2.5-Math-1.5B, 2000 epochs).
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic

VARIANTS = ("", "history", "entropy_only")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/one_shot_rlvr" + (f"_{variant}" if variant else "")
  c.sampling.temperature = 0.6
  c.task.pool_size = 256     # the finite training set the example indices refer to
  c.task.pool_seed = 0
  c.task.only_examples = (0,)  # pi_1: replace with the top index of the history run
  c.rl.loss = "ppo"
  c.rl.loss_kwargs = ConfigDict({"clip_low": 0.2, "agg_mode": "token-mean"})
  c.rl.advantage = "grpo"
  c.rl.kl = "k3"             # verl's low_var_kl
  c.rl.kl_coef = 0.001
  c.rl.entropy_coef = 0.001  # L = ... - entropy_coef * H: entropy maximised
  c.rl.group_size = 8
  c.rl.batch_size = 512
  c.rl.pg_coef = 1.0
  c.rl.accuracy_log = ""     # e.g. "example_accuracy.jsonl" (in workdir); "": off
  if variant == "history":
    c.task.only_examples = ()
    c.rl.accuracy_log = "example_accuracy.jsonl"
  elif variant == "entropy_only":
    c.rl.pg_coef = 0.0
  return c

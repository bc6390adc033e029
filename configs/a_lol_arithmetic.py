"""A-LoL (offline sequence-level advantage policy gradient) on 2-digit addition.

    python experiments/sft.py --config=configs/sft_arithmetic.py --config.workdir=/tmp/sft
    python experiments/a_lol.py --config=configs/a_lol_arithmetic.py --config.init_from=/tmp/sft

pi_ref = the SFT model (``init_from``; empty: a random init, for tests). The offline data
is a local JSONL of {"prompt", "response", "reward"[, "answer"]} rows at ``data.path``;
when the file is missing and ``data.generate`` is True it is written first, with
responses that are synthetic (the answer or a wrong one, ``data.responses="synthetic"``)
or sampled from pi_ref (``"model"``), each labelled by the task's verifier.
Baheti et al., "Leftover Lunch: Advantage-based Offline Reinforcement Learning for
Language Models", arXiv 2305.14718.
"""

from ml_collections import ConfigDict

from configs import sft_arithmetic


def get_config():
  c = sft_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/a_lol_arithmetic"
  del c.echo_fraction
  c.data = ConfigDict({
      "path": "/tmp/jaxrl_llm/a_lol_arithmetic_data.jsonl",
      "generate": True,            # write data.path when it does not exist
      "responses": "synthetic",    # "synthetic" (answer / wrong answer) | "model" (pi_ref samples)
      "num_prompts": 512,
      "responses_per_prompt": 4,
      "correct_fraction": 0.5,     # synthetic: share of correct responses
      "temperature": 1.0,          # model: sampling temperature
      "val_fraction": 0.1,         # prompts held out for the value head
  })
  c.a_lol = ConfigDict({
      "variant": "a_lol",          # a_lol | a_lol_seq | a_lol_kl | ref_free
      "clip_eps": 0.9,             # ratio clamped to [0.1, 1.9] (official ppo_clip)
      "kl_beta": 0.0,              # a_lol_kl only
      "sampler": "good_priority",  # good_priority (p ∝ A+) | good_random | uniform (all rows)
      "scale_steps": True,         # steps *= fraction of training pairs with A > 0
  })
  c.value = ConfigDict({
      # "dataset": the validation split's rows and rewards; "ref_generations": pi_ref's own
      # samples on the validation prompts, scored by the verifier (the paper; needs "answer").
      "source": "dataset",
      "samples_per_prompt": 4,
      "epochs": 50,
      "learning_rate": 1e-2,
      "batch_size": 32,
      "holdout_fraction": 0.2,     # of the value rows, picks the best epoch
      "max_value": 1.0,            # V = max_value * sigmoid(.) (rewards in [0, 1])
      "mlp_size": 64,
  })
  c.steps = 600
  c.batch_size = 16
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 10
  c.eval_every = 100
  return c

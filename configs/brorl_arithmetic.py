"""BroRL ("BroRL: Scaling Reinforcement Learning via Broadened Exploration", arXiv
2510.01180) on 2-digit addition, from the SFT checkpoint of configs/sft_arithmetic.py.

BroRL changes no loss: it scales the number of rollouts per prompt N (512 instead of
ProRL's 16) on the ProRL recipe (GRPO advantages, clip-higher eps_high 0.4, dynamic
sampling, temperature 1.2 -- constants from secondary notes, spec §13 [SECONDARY]).
Here: groups of ``rl.group_size`` = 128 completions for 8 prompts per step, sampled
``rl.sample_chunk`` = 32 completions per prompt at a time from one shared prefill
(`sampling.generate(sample_chunk=...)`: per-row keys, so the rollouts equal one-shot
sampling of the whole group with the same key for any chunk size), and the update in
``rl.num_micro_batches`` = 8 micro-batches of 128 rows so activations stay bounded.
Not implemented: ProRL's periodic reference reset (the KL term is off, as in the base
GRPO config's ``kl_coef`` 0).

    python experiments/rl.py --config=configs/brorl_arithmetic.py
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def apply_brorl(c, *, group_size: int, num_prompts: int, sample_chunk: int,
                micro_batch_rows: int):
  """Large groups (``group_size`` per prompt, ``num_prompts`` prompts) sampled
  ``sample_chunk`` at a time, updated in micro-batches of ``micro_batch_rows`` rows."""
  batch = group_size * num_prompts
  if group_size % sample_chunk or batch % micro_batch_rows:
    raise ValueError(f"sample_chunk={sample_chunk} must divide group_size={group_size} and "
                     f"micro_batch_rows={micro_batch_rows} must divide the batch of {batch}")
  c.rl.group_size = group_size
  c.rl.batch_size = batch
  c.rl.sample_chunk = sample_chunk
  c.rl.num_micro_batches = batch // micro_batch_rows
  return c


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/brorl_arithmetic"
  c.sampling.temperature = 1.2
  c.rl.loss = "ppo"
  c.rl.loss_kwargs = ConfigDict({"clip_low": 0.2, "clip_high": 0.4, "agg_mode": "token-mean"})
  c.rl.advantage = "grpo"
  c.rl.dynamic_sampling = True
  c.rl.max_sampling_rounds = 3
  apply_brorl(c, group_size=128, num_prompts=8, sample_chunk=32, micro_batch_rows=128)
  return c

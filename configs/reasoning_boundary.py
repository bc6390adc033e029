"""Reasoning-boundary evaluation (experiments/reasoning_boundary.py): pass@k for
k = 1, 2, 4, ..., n from n samples per held-out Countdown problem, for several checkpoints.

    python experiments/reasoning_boundary.py --config=configs/reasoning_boundary.py \
        --config.checkpoints=sft=/tmp/jaxrl_llm/sft_countdown,grpo=/tmp/jaxrl_llm/dapo_countdown
"""

from ml_collections import ConfigDict

from configs import sft_countdown


def get_config():
  base = sft_countdown.get_config()
  c = ConfigDict()
  c.output_dir = "/tmp/jaxrl_llm/reasoning_boundary"
  # "name=path,name=path": HF directories or experiment workdirs (their exported hf/).
  c.checkpoints = "sft=/tmp/jaxrl_llm/sft_countdown,grpo=/tmp/jaxrl_llm/dapo_countdown"
  c.model = base.model  # only read for a checkpoint without its own config (never here)
  c.task = base.task
  c.num_problems = 100  # the first held-out problems (setup.eval_examples)
  c.n = 256  # samples per problem; pass@k for k = 1, 2, 4, ..., n
  c.sample_chunk = 64  # samples per prompt per decode call (0: all n at once)
  c.prompts_per_batch = 8
  c.max_new_tokens = base.max_new_tokens
  c.sampling = ConfigDict({"temperature": 1.0, "top_p": 0.0, "top_k": 0, "min_p": 0.0,
                           "stop_strings": ()})
  c.seed = 0  # sampling key key(seed), the same for every checkpoint
  c.maj_ks = ()  # e.g. (1, 16, 256): maj@k over the task's extracted answers
  c.maj_subsets = 16
  c.bootstrap_reps = 2000  # resamples of the problems for the bands
  c.confidence = 0.95
  c.bootstrap_seed = 0
  c.save_correct = True  # output_dir/correct.npz: the [P, n] correctness matrix per checkpoint
  c.progress_bar = True
  c.title = ""
  return c

"""Tiny configs for the experiment tests (import the experiment scripts as modules)."""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

from configs import grpo_arithmetic, sft_arithmetic  # noqa: E402


def tiny_model(c):
  c.model.overrides.hidden_size = 32
  c.model.overrides.intermediate_size = 64
  c.model.overrides.head_dim = 8
  return c


def tiny_rl_config(workdir, **overrides):
  """Random-init policy on arithmetic prompts with the 'answer_present' reward
  (a random char model emits a digit sometimes, so groups are informative)."""
  c = tiny_model(grpo_arithmetic.get_config())
  c.workdir = str(workdir)
  c.init_from = ""
  c.task.reward = "answer_present"
  c.sampling.max_new_tokens = 4
  c.rl.group_size = 4
  c.rl.batch_size = 16
  c.rl.num_minibatches = 2
  c.steps = 5
  c.eval_every = 1000
  c.eval_at_start = False
  c.eval_size = 8
  c.checkpoint_every = 1
  c.keep_checkpoints = 3
  c.async_checkpointing = True
  c.progress_bar = False
  c.tensorboard = False
  c.optim.learning_rate = 1e-2
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def tiny_sft_config(workdir, **overrides):
  c = tiny_model(sft_arithmetic.get_config())
  c.workdir = str(workdir)
  c.steps = 3
  c.batch_size = 8
  c.eval_every = 1000
  c.eval_size = 4
  c.checkpoint_every = 1
  c.progress_bar = False
  c.tensorboard = False
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def shrink_rl_recipe(c, workdir, steps=20):
  """An RL recipe's config cut to the tiny model: random init, 'answer_present' reward
  (binary, informative for a random model), groups of 4 x 4 prompts, 4 new tokens, one
  checkpoint at the end, no evaluation, export or TensorBoard."""
  c = tiny_model(c)
  c.workdir = str(workdir)
  c.init_from = ""
  c.task.reward = "answer_present"
  c.sampling.max_new_tokens = 4
  c.rl.group_size = 4
  c.rl.batch_size = 16
  c.steps = steps
  c.eval_every = 1000
  c.eval_at_start = False
  c.eval_size = 4
  c.checkpoint_every = steps
  c.export_hf = False
  c.progress_bar = False
  c.tensorboard = False
  c.optim.learning_rate = 1e-2
  return c

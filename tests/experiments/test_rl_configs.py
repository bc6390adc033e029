"""Every RL recipe validates; the recipes with their own code paths (PPO value
head + GAE, DAPO dynamic sampling + overlong penalty) run two iterations."""

import importlib
import json
import os

import numpy as np
import pytest

import _helpers
from experiments import rl

RECIPES = ("grpo_arithmetic", "drgrpo_arithmetic", "rloo_arithmetic", "ppo_arithmetic",
           "dapo_countdown", "grpo_qwen_gsm8k")


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_validates(name, tmp_path):
  c = importlib.import_module(f"configs.{name}").get_config()
  c.init_from = ""
  if name == "grpo_qwen_gsm8k":
    c.task.path = str(tmp_path / "q.jsonl")
    (tmp_path / "q.jsonl").write_text(json.dumps({"question": "1+1?", "answer": "#### 2"}) + "\n")
  rl.validate(c)


@pytest.mark.parametrize("name", ["ppo_arithmetic", "dapo_countdown"])
def test_recipe_runs(name, tmp_path):
  c = _helpers.tiny_model(importlib.import_module(f"configs.{name}").get_config())
  c.workdir = str(tmp_path / name)
  c.init_from = ""
  c.task.reward = "answer_present"
  c.sampling.max_new_tokens = 6
  c.rl.batch_size = 16 if c.rl.group_size > 1 else 8
  c.rl.group_size = min(c.rl.group_size, 4)
  c.steps = 2
  c.eval_every = 2
  c.eval_size = 4
  c.eval_at_start = False
  c.checkpoint_every = 2
  c.progress_bar = False
  c.tensorboard = False
  rl.run(c)
  with open(os.path.join(c.workdir, "metrics.jsonl")) as f:
    lines = [json.loads(l) for l in f]
  train = [r for r in lines if "train/loss" in r]
  assert len(train) == 2 and all(np.isfinite(r["train/loss"]) for r in train)
  if name == "ppo_arithmetic":
    assert all(np.isfinite(r["train/value_loss"]) and r["train/value_loss"] > 0 for r in train)
  else:
    assert all(1 <= r["train/sampling_rounds"] <= 3 for r in train)
    assert all(r["train/overlong_penalty_mean"] <= 0 for r in train)


def test_countdown_recipe_chain_sft_then_dapo(tmp_path):
  """configs/sft_countdown.py feeds configs/dapo_countdown.py (init_from its workdir)."""
  from experiments import sft
  s = _helpers.tiny_model(importlib.import_module("configs.sft_countdown").get_config())
  s.workdir = str(tmp_path / "sft")
  s.steps, s.batch_size, s.eval_every, s.eval_size, s.checkpoint_every = 2, 8, 2, 4, 2
  s.progress_bar = s.tensorboard = False
  sft.run(s)  # raises if a countdown demonstration does not fit max_length
  r = _helpers.tiny_model(importlib.import_module("configs.dapo_countdown").get_config())
  r.workdir = str(tmp_path / "dapo")
  r.init_from = s.workdir
  r.rl.batch_size, r.rl.group_size = 8, 2
  r.steps = r.eval_every = r.checkpoint_every = 1
  r.eval_size = 4
  r.eval_at_start = False
  r.progress_bar = r.tensorboard = False
  rl.run(r)
  with open(os.path.join(r.workdir, "metrics.jsonl")) as f:
    train = [json.loads(l) for l in f if "train/loss" in l]
  assert len(train) == 1 and np.isfinite(train[0]["train/loss"])


def test_share_prompt_forward_auto_follows_what_keeps_groups_whole():
  c = importlib.import_module("configs.grpo_arithmetic").get_config()
  r = c.rl
  r.ppo_epochs, r.num_minibatches = 1, 1
  assert rl.share_prompt_forward(r)  # standard rollouts, one update per batch
  r.num_minibatches = 2  # minibatches of shuffled rows split the groups
  assert rl.share_prompt_forward(r) == rl._policy_loss(r).whole_groups
  r.num_minibatches = 1
  for key, value in (("rollout_method", "guide"), ("batch_augment", "demonstration")):
    with c.unlocked():
      r[key] = value
    assert not rl.share_prompt_forward(r)
    with c.unlocked():
      del r[key]
  with c.unlocked():
    r.share_prompt_forward = "auto"
  r.share_prompt_forward = "False"  # a string field overridden on the command line
  assert not rl.share_prompt_forward(r)
  r.share_prompt_forward = "yes"
  with pytest.raises(ValueError, match="rl.share_prompt_forward must be 'auto', 'true' or 'false'"):
    rl.validate(c)

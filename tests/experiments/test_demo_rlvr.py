"""A shortened demo (SFT on imperfect demonstrations, then GRPO): the training
reward and the held-out accuracy rise; the script writes its artefacts."""

import json
import os

import numpy as np

import _helpers  # noqa: F401  (puts the repo root on sys.path)
from experiments import demo_rlvr


def _train_rewards(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l)["train/reward_mean"] for l in f if "train/reward_mean" in l]


def test_shortened_demo_raises_reward_and_accuracy(tmp_path):
  out = demo_rlvr.main([f"--workdir={tmp_path}", "--sft_steps=800", "--rl_steps=30",
                        "--eval_size=50", "--progress_bar=0"])
  rewards = _train_rewards(tmp_path / "grpo")
  assert len(rewards) == 30
  first, last = np.mean(rewards[:8]), np.mean(rewards[-8:])
  assert last > first + 0.05, rewards
  assert out["rl_accuracy"] > out["sft_accuracy"], out
  assert os.path.isfile(tmp_path / "sft" / "hf" / "config.json")
  assert os.path.isfile(tmp_path / "grpo" / "hf" / "config.json")
  assert os.path.getsize(tmp_path / "grpo" / "curves.png") > 1000

"""experiments/demo_rlvr.py: a shortened demo (clean-data SFT, then GRPO) raises the
training reward by a wide margin and does not lower held-out accuracy; the demo can run
twice into one workdir; its t-interval matches a hand computation."""

import json
import os

import numpy as np
import pytest

import _helpers  # noqa: F401  (puts the repo root on sys.path)
from experiments import demo_rlvr

# The shortened demo: the demo's recipe (clean Countdown SFT 400 steps, then GRPO with
# dynamic sampling) with 40 instead of 80 GRPO steps and a 2-step control (the first 40
# steps of an 80-step run are the same: constant learning rate after warmup). Measured on
# the shared 2-core CPU (AMD EPYC), 5 seeds, 2026-12-02 (unrolled layers, completion-only
# head); held-out greedy accuracy on 200 problems, SFT -> GRPO@40, and training-batch task
# reward, mean of steps 1-10 -> steps 31-40:
#   seed 0: 12.5 -> 27.0 % (+14.5 pts); reward 0.179 -> 0.265 (+0.086)
#   seed 1: 23.5 -> 28.5 % (+5.0 pts);  reward 0.235 -> 0.385 (+0.150)
#   seed 2: 18.5 -> 24.0 % (+5.5 pts);  reward 0.161 -> 0.307 (+0.146)
#   seed 3: 16.0 -> 21.5 % (+5.5 pts);  reward 0.207 -> 0.343 (+0.136)
#   seed 4: 11.5 -> 23.0 % (+11.5 pts); reward 0.175 -> 0.273 (+0.098)
# Both assertions passed on 5 of 5 seeds (and on 5 of 5 with the previous model code,
# whose rounding differed: rises +0.090..+0.163, gains +3.5..+14 pts). The learning
# assertion is the reward rise: its smallest value (+0.086) is 2.9x MIN_REWARD_RISE (a
# 10-step mean of 512-sample batch means; per-step standard error ~0.02). The held-out
# gain after only 40 steps is too seed-dependent (+5 to +14.5 points) for a wide-margin
# threshold above 0, so the test only asserts that GRPO does not lower it (MIN_GAIN = -2
# points: 7 points, 14 of 200 problems, below the smallest gain; a rounding-flipped greedy
# answer moves it 0.5). The 80-step demo's held-out gains are in docs/results.md. Only
# seed 0 runs here.
SHORT = ["--sft_steps=400", "--rl_steps=40", "--control_steps=2", "--eval_size=200"]
MIN_GAIN = -0.02  # held-out greedy accuracy, GRPO - SFT: GRPO must not lower it
MIN_REWARD_RISE = 0.03  # training task reward, last 10 steps - first 10


def test_t_interval_matches_hand_computation():
  # values 1, 2, 3: mean 2, s = 1, t_{0.975, 2} = 4.302653, half width 4.302653 / sqrt(3).
  m, lo, hi = demo_rlvr.t_interval([1.0, 2.0, 3.0])
  assert m == 2.0
  np.testing.assert_allclose([lo, hi], [2 - 2.484138, 2 + 2.484138], atol=1e-5)
  with pytest.raises(ValueError, match=">= 2 values"):
    demo_rlvr.t_interval([1.0])


def test_demo_runs_twice_into_the_same_workdir(tmp_path):
  args = [f"--workdir={tmp_path}", "--seeds=1", "--sft_steps=3", "--rl_steps=2",
          "--control_steps=2", "--eval_size=4", "--progress_bar=0"]
  demo_rlvr.main(args)
  out = demo_rlvr.main(args)  # a used workdir is started fresh, not StepAlreadyExistsError
  row = out["rows"][0]
  for stage, steps in (("sft", 3), ("grpo", 2), ("sft_control", 2)):
    with open(tmp_path / "seed0" / stage / "metrics.jsonl") as f:
      train = [json.loads(l)["step"] for l in f if "train/loss" in l]
    assert train == list(range(1, steps + 1)), (stage, train)  # one run's lines, not two
  assert row["grpo_initial"] == row["sft"]  # GRPO starts from the SFT policy
  assert os.path.getsize(tmp_path / "demo_accuracy.png") > 1000
  with open(tmp_path / "demo_summary.json") as f:
    assert len(json.load(f)["rows"]) == 1


def test_shortened_demo_raises_reward_and_keeps_held_out_accuracy(tmp_path):
  out = demo_rlvr.main([f"--workdir={tmp_path}", "--seeds=1", *SHORT, "--progress_bar=0"])
  row = out["rows"][0]
  assert row["gain"] >= MIN_GAIN, row
  with open(tmp_path / "seed0" / "grpo" / "metrics.jsonl") as f:
    rewards = [json.loads(l)["train/task_reward_mean"] for l in f if "train/task_reward_mean" in l]
  assert len(rewards) == 40
  assert np.mean(rewards[-10:]) - np.mean(rewards[:10]) >= MIN_REWARD_RISE, rewards

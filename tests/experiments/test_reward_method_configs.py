"""Reward-side method recipes end to end on the tiny model, 20 RL steps each:
configs/rlcr_arithmetic.py (RLCR calibration reward + tabc prompt + calibration
metrics), configs/clip_delta_countdown.py (Clip-Delta process rewards at step-end tokens,
PPO with GAE over the token rewards) and configs/prof_countdown.py (PROF filter: 8
sampled, 4 kept per prompt); plus their start-up failures."""

import json
import os

import jax
import numpy as np
import pytest

import _helpers
from configs import clip_delta_countdown, prof_countdown, rlcr_arithmetic
from experiments import rl
from jaxrl_llm.training import prof, rollout


def _train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


def _finite(records, keys):
  for r in records:
    for k in keys:
      assert np.isfinite(r[f"train/{k}"]), (k, r)


def test_rlcr_recipe_20_steps(tmp_path):
  c = rlcr_arithmetic.get_config()
  assert (c.task.reward, c.rl.prompt_transform, c.rl.advantage, c.rl.kl) == (
      "rlcr", "rlcr_tabc", "dr_grpo", "")
  c.init_from = ""
  rl.validate(c)
  code = rlcr_arithmetic.get_config("code")
  code.init_from = ""
  rl.validate(code)
  assert code.task.reward == "rlcr_code"
  c = _helpers.shrink_rl_recipe(c, tmp_path / "rlcr")
  c.task.reward = "rlcr"  # shrink_rl_recipe sets 'answer_present'
  # The instruction (unit-tested in tests/training/test_process_reward_augmenter.py) would
  # make the prompts 128 tokens wide: a program no other test compiles (+10-20 s cold).
  c.rl.prompt_transform = "identity"
  rl.run(c)
  train = _train_records(c.workdir)
  assert len(train) == 20
  _finite(train, ("loss", "rlcr_format_frac", "rlcr_answer_accuracy", "rlcr_confidence_mean",
                  "rlcr_brier"))
  # 4 new tokens cannot hold the tabc format: every row fails it, R = -1, Brier counts 1.
  for r in train:
    assert r["train/reward_mean"] == -1.0 and r["train/rlcr_format_frac"] == 0.0
    assert r["train/rlcr_brier"] == 1.0 and r["train/rlcr_confidence_mean"] == 0.0


def test_clip_delta_recipe_20_steps(tmp_path):
  c = clip_delta_countdown.get_config()
  assert (c.rl.batch_augment, c.rl.advantage) == ("process_reward", "gae_token")
  assert c.rl.batch_augment_kwargs.shaping == "clip_delta"
  c.init_from = ""
  rl.validate(c)
  # The outcome stays 'answer_present' (a random model never solves Countdown), so the
  # token rewards carry signal; the step scorer reads the Countdown numbers.
  c = _helpers.shrink_rl_recipe(c, tmp_path / "clip_delta")
  rl.run(c)
  train = _train_records(c.workdir)
  assert len(train) == 20
  _finite(train, ("loss", "value_loss", "process_steps_mean", "process_step_score_mean",
                  "process_shaped_sum_mean", "process_token_reward_sum_mean"))
  for r in train:
    # Each row's token rewards sum to its outcome plus its shaped step rewards (coefs 1).
    assert r["train/process_token_reward_sum_mean"] == pytest.approx(
        r["train/reward_mean"] + r["train/process_shaped_sum_mean"], abs=1e-5)
    # A row's Clip-Delta sum is c_1 - c_K with c_k = min(r_k - 0.5, 0) in {0, -0.5}: |.| <= 0.5.
    assert abs(r["train/process_shaped_sum_mean"]) <= 0.5
  assert any(r["train/advantage_abs_mean"] > 0 for r in train)


def test_clip_delta_start_up_failures():
  c = clip_delta_countdown.get_config()
  c.init_from = ""
  c.rl.batch_augment = "none"
  c.rl.batch_augment_kwargs = {}
  with pytest.raises(ValueError, match=r"reads batch extras \['token_rewards'\]"):
    rl.validate(c)
  c = clip_delta_countdown.get_config()
  c.init_from = ""
  c.rl.batch_augment_kwargs.shaping_typo = 1.0
  with pytest.raises(ValueError, match="shaping_typo"):
    rl.validate(c)
  c = clip_delta_countdown.get_config()
  c.init_from = ""
  c.rl.batch_augment_kwargs.shaping = "sum"
  with pytest.raises(ValueError, match="shaping must be one of"):
    rl.validate(c)
  c = clip_delta_countdown.get_config()
  c.init_from = ""
  c.task.name, c.task.reward = "arithmetic", "arithmetic"   # no Countdown numbers
  with pytest.raises(ValueError, match="cannot score this task"):
    rl.validate(c)
  c.rl.batch_augment_kwargs.scorer = "equation_lines"         # any task
  rl.validate(c)


def test_prof_recipe_20_steps(tmp_path):
  c = prof_countdown.get_config()
  assert c.rl.rollout_method == "prof" and c.rl.rollout_method_kwargs.variant == "pos"
  c.init_from = ""
  rl.validate(c)
  both = prof_countdown.get_config("both")
  both.init_from = ""
  rl.validate(both)
  c = _helpers.shrink_rl_recipe(c, tmp_path / "prof")
  c.rl.rollout_method_kwargs.num_samples = 8   # n = 8 sampled, m = 4 kept per prompt
  rl.run(c)
  train = _train_records(c.workdir)
  assert len(train) == 20
  _finite(train, ("loss", "accuracy", "prof_sampled_accuracy", "prof_pos_kept_frac",
                  "prof_neg_kept_frac", "prof_kept_correct_frac", "prof_steps_mean",
                  "prof_r_pro_kept_mean"))
  for r in train:
    assert r["train/prof_kept_frac"] == 0.5
    assert r["train/accuracy"] == r["train/prof_kept_correct_frac"]   # kept set, same rule
    assert 0.0 <= r["train/prof_pos_kept_frac"] <= 1.0
    # k+ <= n+ in every group, so k+ / m <= n+ / m = 2 n+ / n (n = 2 m).
    assert r["train/prof_kept_correct_frac"] <= 2 * r["train/prof_sampled_accuracy"] + 1e-9


def test_prof_failures():
  c = prof_countdown.get_config()
  c.init_from = ""
  c.rl.rollout_method_kwargs.variant = "neg"
  with pytest.raises(ValueError, match="variant"):
    rl.validate(c)
  c = prof_countdown.get_config()
  c.init_from = ""
  c.task.name, c.task.reward = "arithmetic", "arithmetic"   # no Countdown numbers
  with pytest.raises(ValueError, match="cannot score this task"):
    rl.validate(c)
  ctx = rollout.RolloutContext(None, None, None, None, 0, {"group_size": 8})
  with pytest.raises(ValueError, match="num_samples=4 must be >= rl.group_size=8"):
    prof.prof_rollouts(ctx, None, None, jax.random.key(0), {}, num_samples=4)

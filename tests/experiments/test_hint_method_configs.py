"""configs/guide_arithmetic.py and configs/prefix_rl_arithmetic.py for 20 RL steps with the
tiny model (experiments/rl.py), their logged metrics, and the start-up check of the hint
field."""

import json
import os

import numpy as np
import pytest

import _helpers
from configs import guide_arithmetic, prefix_rl_arithmetic
from experiments import rl

GUIDE_METRICS = ("guide_rerolled_frac", "guide_hinted_accuracy", "guide_kept_frac",
                 "guide_hinted_group_frac", "guide_batch_reward_mean", "gamma",
                 "off_token_frac", "off_ratio_mean", "off_bounded_ratio_mean")
PREFIX_METRICS = ("prefix_rl_prefixed_frac", "prefix_rl_forced_tokens_mean",
                  "prefix_rl_accuracy_prefixed", "prefix_rl_accuracy_plain",
                  "prefix_rl_stored_traces", "prefix_rl_stored_examples")


def _train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


def _last_rollout_state(workdir):
  """``rollout_state`` of the newest checkpoint's metadata JSON."""
  ckpt = os.path.join(str(workdir), "checkpoints")
  last = max((d for d in os.listdir(ckpt) if d.isdigit()), key=int)
  for root, _, files in os.walk(os.path.join(ckpt, last)):
    for f in files:
      try:
        meta = json.load(open(os.path.join(root, f)))
      except (ValueError, UnicodeDecodeError):
        continue
      if isinstance(meta, dict) and "rollout_state" in meta:
        return meta["rollout_state"]
  return None


def test_guide_recipe_20_steps_rerolls(tmp_path):
  c = guide_arithmetic.get_config()
  assert (c.rl.loss, c.rl.rollout_method) == ("guide", "guide")
  c.init_from = ""
  rl.validate(c)
  c = _helpers.shrink_rl_recipe(c, tmp_path / "guide")
  # 'answer_present' on 2 new tokens: a random model writes no number in ~a third of the
  # groups (all fail: rerolled with the hint) and some hinted groups are informative
  # (kept). One hinted sampler shape (min_reroll_groups = num_prompts).
  c.sampling.max_new_tokens = 2
  c.rl.rollout_method_kwargs.min_reroll_groups = c.rl.batch_size // c.rl.group_size
  rl.run(c)
  train = _train_records(c.workdir)
  assert len(train) == 20
  for r in train:
    for k in GUIDE_METRICS:
      assert np.isfinite(r[f"train/{k}"]), (k, r)
    assert np.isfinite(r["train/loss"])
    assert 0.0 <= r["train/guide_kept_frac"] <= 1.0
  assert np.mean([r["train/guide_rerolled_frac"] for r in train]) > 0.0
  kept = [r for r in train if r["train/guide_hinted_group_frac"] > 0.0]
  assert kept  # the off-policy branch of the loss ran
  for r in train:
    if r["train/guide_hinted_group_frac"] == 0.0:  # no hinted rows: no off-policy tokens
      assert r["train/off_token_frac"] == 0.0 and r["train/gamma"] == pytest.approx(1e-4)
    else:  # hinted rows' share of the tokens; gamma = a quantile of their ratios
      assert r["train/off_token_frac"] > 0.0 and r["train/gamma"] > 1e-4


def test_guide_validate_names_the_hint_field(tmp_path):
  c = guide_arithmetic.get_config()
  c.init_from = ""
  c.rl.rollout_method_kwargs.hint_field = "metadata.hint"
  with pytest.raises(ValueError, match=r"Example\.metadata\.hint"):
    rl.validate(c)


def test_prefix_rl_recipe_20_steps_stores_and_uses_traces(tmp_path):
  c = prefix_rl_arithmetic.get_config()
  assert c.rl.rollout_method == "prefix_rl"
  c.init_from = ""
  rl.validate(c)
  c = _helpers.shrink_rl_recipe(c, tmp_path / "prefix_rl")
  c.task.pool_size = 8  # 4 prompts a step: each problem comes back every other step
  rl.run(c)
  train = _train_records(c.workdir)
  assert len(train) == 20
  for r in train:
    for k in PREFIX_METRICS:
      assert np.isfinite(r[f"train/{k}"]), (k, r)
    assert np.isfinite(r["train/loss"])
  # 'answer_present' rewards any number, so traces are found at the first step and
  # prefixes are forced from the second on.
  assert train[0]["train/prefix_rl_prefixed_frac"] == 0.0
  assert train[-1]["train/prefix_rl_stored_traces"] > 0
  assert max(r["train/prefix_rl_prefixed_frac"] for r in train) > 0.0
  assert max(r["train/prefix_rl_forced_tokens_mean"] for r in train) >= 1.0
  # The trace store is in the final checkpoint's metadata (restored on resume).
  state = _last_rollout_state(c.workdir)
  assert state and state["traces"], state
  assert sum(len(v) for v in state["traces"].values()) == (
      train[-1]["train/prefix_rl_stored_traces"])


def test_guide_claim_arms_validate(tmp_path):
  from experiments import guide_claim
  from jaxrl_llm import data
  from jaxrl_llm.data import rehearsal as rehearsal_data
  ex = data.Example("[3,7,5]->38:", "38", completion="5*7+3", task="countdown",
                    metadata={"numbers": (3, 7, 5), "target": 38})
  assert guide_claim.partial_hint(ex, 2) == "5*"
  assert guide_claim.hinted(ex, 2).prompt == "Hint: 5*\n[3,7,5]->38:"
  path = str(tmp_path / "hard.jsonl")
  rehearsal_data.save_examples(path, [ex])
  for arm in guide_claim.ARMS:
    c = guide_claim.arm_config(arm, str(tmp_path), "", 0, 3, {"train": path})
    c.init_from = ""
    # The hard split lacks metadata.hint: Guide's start-up check names the field.
    if arm == "guide":
      with pytest.raises(ValueError, match=r"Example\.metadata\.hint"):
        rl.validate(c)
    else:
      rl.validate(c)
  hinted_ex = data.Example(ex.prompt, ex.answer, ex.completion, ex.task,
                           {**ex.metadata, "hint": "5*"})
  rehearsal_data.save_examples(path, [hinted_ex])
  rl.validate(guide_claim.arm_config("guide", str(tmp_path), "", 0, 3, {"train": path}))

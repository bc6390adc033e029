"""Data selection and curricula end to end: configs/limr_arithmetic.py (a hand-made accuracy
log -> experiments/limr_select.py -> RL on the selected JSONL), configs/self_arithmetic.py,
configs/drive_arithmetic.py and configs/rorecomp_arithmetic.py, each for 20 RL steps with the
tiny model, logging their metrics."""

import json
import os

import numpy as np
import pytest

import _helpers
from configs import drive_arithmetic, limr_arithmetic, rorecomp_arithmetic, self_arithmetic
from experiments import limr_select, rl
from jaxrl_llm.data import one_shot, rehearsal
from jaxrl_llm.training import setup

STEPS = 20


def _train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


def _run(c, workdir):
  c.init_from = ""
  c = _helpers.shrink_rl_recipe(c, workdir, STEPS)
  rl.validate(c)
  rl.run(c)
  train = _train_records(c.workdir)
  assert len(train) == STEPS
  for r in train:
    for k in ("loss", "pg_loss", "entropy", "reward_mean"):
      assert np.isfinite(r[f"train/{k}"]), (k, r)
  return c, train


def _final_rollout_state(workdir):
  """The rollout method's state in the metadata of the last checkpoint."""
  ckpt = os.path.join(str(workdir), "checkpoints")
  last = max((d for d in os.listdir(ckpt) if d.isdigit()), key=int)
  with open(os.path.join(ckpt, last, "meta", "metadata")) as f:
    meta = json.load(f)
  assert int(last) == STEPS and meta["step"] == STEPS
  return meta["rollout_state"]


def test_limr_log_select_then_rl_on_the_selected_examples(tmp_path):
  h = limr_arithmetic.get_config("history")
  assert h.rl.accuracy_log == "example_accuracy.jsonl" and h.limr.theta == 0.6
  h.workdir = str(tmp_path / "history")
  h.task.pool_size = 8
  pool = setup.build_task(h.task, "train").items
  # Two epochs; examples 0-5 go 0 -> 1 (4 rewards each), 6-7 go 1 -> 0.
  # r_avg = [.25, .75], denominator .75^2 + .25^2 = .625: examples 0-5 score
  # 1 - (.0625 + .0625)/.625 = .8 (kept), 6-7 score 1 - 1.125/.625 = -.8 (dropped).
  recs = []
  for e in range(2):
    for i, ex in enumerate(pool):
      acc = float(e) if i < 6 else 1.0 - e
      recs.append({"step": e + 1, "index": i, "prompt": ex.prompt, "rewards": [acc] * 4,
                   "accuracy": acc})
  one_shot.append_jsonl(os.path.join(h.workdir, "example_accuracy.jsonl"), recs)
  out = str(tmp_path / "selected.jsonl")
  info = limr_select.run(h, out)
  assert info["kept"] == [0, 1, 2, 3, 4, 5]
  np.testing.assert_allclose([info["scores"][i] for i in (0, 6)], [0.8, -0.8])
  selected = {e.prompt for e in rehearsal.load_examples(out)}
  assert selected == {ex.prompt for ex in pool[:6]}

  c = limr_arithmetic.get_config()
  assert c.sampling.temperature == 1.2
  c.task.train_examples = out
  c.rl.accuracy_log = "example_accuracy.jsonl"
  c, _ = _run(c, tmp_path / "limr")
  trained = {r["prompt"] for r in one_shot.read_jsonl(
      os.path.join(c.workdir, "example_accuracy.jsonl"))}
  assert trained == selected  # 20 steps x 4 prompts cycle through all 6 selected


def test_self_recipe_20_steps(tmp_path):
  c = self_arithmetic.get_config()
  assert c.rl.rollout_method == "self" and c.rl.kl == ""
  c, train = _run(c, tmp_path / "self")
  for r in train:
    assert 0.0 <= r["train/self_kept_frac"] <= 1.0
    assert r["train/self_greedy_accuracy"] == pytest.approx(1.0 - r["train/self_kept_frac"])
    assert 1 <= r["train/self_rounds"] <= 4
    assert 0 <= r["train/self_topped_up"] <= 4
    # Topped up only when the rounds ran out.
    assert r["train/self_topped_up"] == 0 or r["train/self_rounds"] == 4


def test_drive_recipe_20_steps(tmp_path):
  c = drive_arithmetic.get_config()
  assert c.rl.rollout_method == "drive"
  c, train = _run(c, tmp_path / "drive")
  for r in train:
    assert 0 <= r["train/drive_retained"] <= 64
    assert r["train/drive_hard_prompts"] <= 2  # hard_fraction .5 of 4 prompts
    if r["train/drive_hard_prompts"]:
      assert 0.0 <= r["train/drive_hard_accuracy"] <= 1.0
  state = _final_rollout_state(c.workdir)
  assert len(state["hard"]) == train[-1]["train/drive_retained"]
  assert state["dropped_total"] == sum(r["train/drive_dropped"] for r in train)
  assert all(len(e["pos"]) == 2 and 1 <= len(e["acc"]) <= 2 for e in state["hard"])


def test_rorecomp_recipe_20_steps(tmp_path):
  c = rorecomp_arithmetic.get_config()
  assert c.rl.rollout_method == "rorecomp"
  c.rl.rollout_method_kwargs.replay_groups = 1
  c.rl.rollout_method_kwargs.capacity = 4
  # The tiny random model rarely ends early (4 tokens every time: no length differences,
  # no priority rows); stop strings make the lengths vary.
  c.sampling.stop_strings = tuple("abcdefghijklmnopqrst")
  c, train = _run(c, tmp_path / "rorecomp")
  for r in train:
    assert 0.0 <= r["train/rorecomp_priority_frac"] <= 1.0
    assert r["train/rorecomp_priority_frac"] == pytest.approx(
        r["train/rorecomp_short_correct_frac"] + r["train/rorecomp_long_incorrect_frac"])
    assert r["train/rorecomp_buffer_groups"] <= 4
  assert np.mean([r["train/rorecomp_priority_frac"] for r in train]) > 0
  # One group replayed whenever the previous step left the buffer non-empty.
  for prev, r in zip(train, train[1:]):
    assert r["train/rorecomp_replay_groups"] == float(prev["train/rorecomp_buffer_groups"] > 0)
  assert train[0]["train/rorecomp_replay_groups"] == 0
  state = _final_rollout_state(c.workdir)
  assert len(state["buffer"]) == train[-1]["train/rorecomp_buffer_groups"]

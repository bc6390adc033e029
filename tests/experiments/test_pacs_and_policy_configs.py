"""configs/pacs_arithmetic.py runs 20 RL steps end to end with the tiny model and logs
the PACS metrics; SAPO, GMPO, Clip-Cov and KL-Cov run a few steps selected by rl.loss."""

import json
import os

import numpy as np
import pytest

import _helpers
from configs import pacs_arithmetic
from experiments import rl

PACS_METRICS = ("pacs_score_mean", "pacs_psi_mean", "pacs_psi_abs_mean", "pacs_accuracy",
                "pacs_weight_mean", "pacs_bce", "approx_kl")


def _shrink(c, workdir, steps):
  return _helpers.shrink_rl_recipe(c, workdir, steps)


def _train_records(c):
  rl.run(c)
  with open(os.path.join(c.workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


def test_pacs_recipe_20_steps_logs_finite_pacs_metrics(tmp_path):
  c = _shrink(pacs_arithmetic.get_config(), tmp_path / "pacs", steps=20)
  assert c.rl.loss == "pacs" and c.rl.num_minibatches == 4   # 4 rows = 1 whole group each
  train = _train_records(c)
  assert len(train) == 20
  for r in train:
    for k in PACS_METRICS:
      assert np.isfinite(r[f"train/{k}"]), (k, r)
    assert 0.0 <= r["train/pacs_accuracy"] <= 1.0
    assert r["train/pacs_bce"] > 0 and np.isfinite(r["train/loss"])
  # Later minibatches of a rollout batch are off the behaviour policy: scores move.
  assert any(abs(r["train/pacs_score_mean"]) > 0 for r in train)


@pytest.mark.parametrize("loss, kwargs, metric", [
    ("sapo", {"tau_pos": 1.0, "tau_neg": 1.05}, "gate_weight_mean"),
    ("gmpo", {"clip_low": 0.4}, "seq_ratio_mean"),
    ("clip_cov", {"clip_cov_ratio": 0.2, "clip_cov_lb": 0.0, "seed": 3}, "cov_clip_frac"),
    ("kl_cov", {"kl_cov_ratio": 0.2, "ppo_kl_coef": 0.1}, "kl_cov_frac"),
])
def test_policy_loss_runs_by_name(loss, kwargs, metric, tmp_path):
  c = _helpers.tiny_rl_config(tmp_path / loss)
  c = _shrink(c, tmp_path / loss, steps=3)
  c.rl.loss = loss
  c.rl.loss_kwargs = kwargs
  c.rl.num_minibatches = 2
  train = _train_records(c)
  assert len(train) == 3
  for r in train:
    assert np.isfinite(r["train/loss"]) and np.isfinite(r[f"train/{metric}"])
    assert np.isfinite(r["train/clip_frac"])

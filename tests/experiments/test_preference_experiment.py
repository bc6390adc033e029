"""experiments/preference.py (DPO, SimPO, ORPO, KTO) and experiments/inpo.py on the tiny
random-init model: 20 steps of each recipe from a JSONL in tmp_path (or the generated
arithmetic pairs) logging its own metrics, a LoRA DPO run resumed half way, INPO's
iterations with the verifier as the oracle, and named errors for bad data/configs."""

import json
import math
import shutil

import numpy as np
import pytest

import _helpers  # tests/experiments is on sys.path (pytest rootdir-less import)
from configs import (dpo_arithmetic, inpo_arithmetic, kto_arithmetic, orpo_arithmetic,  # noqa: E402
                     simpo_arithmetic)
from experiments import inpo, preference  # noqa: E402
from jaxrl_llm.data import preference as pdata

CONFIGS = {"dpo": dpo_arithmetic, "simpo": simpo_arithmetic, "orpo": orpo_arithmetic,
           "kto": kto_arithmetic}
# Eight fixed pairs: a batch of 8 pairs (16 KTO responses) is the whole data set each
# step, so the loss's own statistics must move within 20 steps.
PAIRS = [pdata.PreferencePair(f"{a}+{b}=", str(a + b), str(a + b + 1 + a % 3))
         for a, b in ((1, 2), (3, 4), (12, 30), (7, 7), (25, 9), (40, 41), (5, 60), (8, 13))]


def _config(name, workdir, **overrides):
  c = _helpers.tiny_model(CONFIGS[name].get_config())
  c.workdir = str(workdir)
  c.init_from = ""
  c.steps = 20
  c.batch_size = 16 if name == "kto" else 8
  c.data.num_pairs = 64
  c.eval_every = 1000
  c.eval_size = 8
  c.eval_at_start = False
  c.max_new_tokens = 4
  c.checkpoint_every = 10
  c.progress_bar = False
  c.tensorboard = False
  c.export_hf = False
  c.optim.learning_rate = 1e-2
  c.optim.warmup_steps = 0
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def _train_rows(workdir):
  with open(workdir / "metrics.jsonl") as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


def _first_last(rows, key, n=5):
  return np.mean([r[key] for r in rows[:n]]), np.mean([r[key] for r in rows[-n:]])


# Measured on this data (20 steps, lr 1e-2; mean of steps 1-5 -> mean of steps 16-20):
#   dpo   reward_margin 0.16 -> 1.38    simpo reward_margin 1.34 -> 8.40
#   orpo  nll 3.78 -> 1.31              kto (beta 0.5) reward_chosen - reward_rejected 0.81 -> 6.29
# (printed with pytest -s); each threshold is about a third of the measured change.
@pytest.mark.parametrize("name,key,rise", [("dpo", "reward_margin", 0.4),
                                           ("simpo", "reward_margin", 2.0),
                                           ("orpo", "nll", -0.8),
                                           ("kto", "reward_gap", 1.8)])
def test_recipe_trains_20_steps_from_a_jsonl(tmp_path, name, key, rise):
  path = pdata.write_preference_jsonl(tmp_path / "pairs.jsonl", PAIRS)
  c = _config(name, tmp_path / "w", **{"data.path": path})
  if name == "kto":
    c.preference.loss_kwargs.beta = 0.5
  out = preference.run(c)
  rows = _train_rows(tmp_path / "w")
  assert [r["step"] for r in rows] == list(range(1, 21))
  for r in rows:
    r["train/reward_gap"] = r["train/reward_chosen"] - r["train/reward_rejected"]
  first, last = _first_last(rows, f"train/{key}")
  print(name, key, first, last)
  assert (last - first >= rise) if rise > 0 else (last - first <= rise), (first, last)
  expected = {"dpo": ("reward_accuracy", "reward_margin"), "simpo": ("reward_margin",),
              "orpo": ("nll", "log_odds_ratio"), "kto": ("kl", "desirable_frac")}[name]
  assert all(f"train/{k}" in rows[0] for k in expected + ("grad_norm",))
  if name in ("dpo", "kto"):  # policy == reference at step 1
    assert rows[0]["train/loss"] == pytest.approx(math.log(2) if name == "dpo" else 0.5,
                                                  abs=1e-5)
  if name == "kto":
    assert rows[0]["train/desirable_frac"] == 0.5 and all(r["train/kl"] >= 0 for r in rows)
  assert 0.0 <= out["eval/accuracy"] <= 1.0


def test_kto_reads_labelled_responses_and_generated_pairs_are_written(tmp_path):
  path = tmp_path / "kto.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in (
      {"prompt": "1+2=", "completion": "3", "label": True},
      {"prompt": "1+2=", "completion": "4", "label": False},
      {"prompt": "4+4=", "completion": "8", "label": 1},
      {"prompt": "4+4=", "completion": "9", "label": 0})))
  c = _config("kto", tmp_path / "w", steps=3, batch_size=4, **{"data.path": str(path)})
  preference.run(c)
  assert len(_train_rows(tmp_path / "w")) == 3
  # Empty data.path: wrong-answer pairs of the task's train split land in the workdir.
  c = _config("dpo", tmp_path / "g", steps=2)
  preference.run(c)
  written = list((tmp_path / "g").glob("preference_pairs_*.jsonl"))
  assert len(written) == 1
  pairs = pdata.load_preference_jsonl(written[0])
  assert len(pairs) == 64
  for p in pairs:
    a, b = p.prompt.rstrip("=").split("+")
    assert p.chosen == str(int(a) + int(b)) and p.rejected != p.chosen


def test_lora_dpo_resumes_to_20_steps_and_exports(tmp_path):
  path = pdata.write_preference_jsonl(tmp_path / "pairs.jsonl", PAIRS)
  opts = {"data.path": path, "lora.rank": 2, "lora.alpha": 4.0, "lora.targets": "q,v,up",
          "optim.learning_rate": 5e-2}
  c = _config("dpo", tmp_path / "w", steps=10, **opts)
  preference.run(c)
  c = _config("dpo", tmp_path / "w", steps=20, resume=True, export_hf=True, **opts)
  preference.run(c)
  rows = _train_rows(tmp_path / "w")
  assert [r["step"] for r in rows] == list(range(1, 21))
  assert rows[0]["train/loss"] == pytest.approx(math.log(2), abs=1e-5)  # B = 0: base == policy
  first, last = _first_last(rows, "train/reward_margin")
  print("lora dpo reward_margin", first, last)  # measured 0.025 -> 0.111
  assert last - first > 0.05, (first, last)
  assert (tmp_path / "w" / "hf" / "config.json").is_file()


def _inpo_config(workdir, **overrides):
  c = _helpers.tiny_model(inpo_arithmetic.get_config())
  c.workdir = str(workdir)
  c.init_from = ""
  c.task.reward = "answer_present"  # a random model emits a digit sometimes: not all ties
  c.inpo.iterations = 2
  c.inpo.prompts_per_iteration = 48
  c.inpo.num_samples = 4
  c.sampling.max_new_tokens = 4
  c.batch_size = 4
  c.eval_size = 8
  c.eval_at_start = False
  c.progress_bar = False
  c.tensorboard = False
  c.export_hf = False
  c.optim.learning_rate = 1e-3
  c.optim.warmup_steps = 0
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def test_inpo_two_iterations(tmp_path):
  c = _inpo_config(tmp_path / "w")
  out = inpo.run(c)
  with open(tmp_path / "w" / "metrics.jsonl") as f:
    rows = [json.loads(l) for l in f]
  its = [r for r in rows if "inpo/pairs" in r]
  train = [r for r in rows if "train/loss" in r]
  assert [r["inpo/iteration"] for r in its] == [1.0, 2.0]
  for r in its:  # every prompt gives a pair or is counted as tied
    assert r["inpo/pairs"] + r["inpo/tied_prompts"] == 48 and r["inpo/pairs"] >= 4
  # An epoch of floor(pairs / 4) steps per iteration.
  assert len(train) == sum(int(r["inpo/pairs"]) // 4 for r in its) == out["steps"]
  # Step 1: pi = pi_0 = pi_ref, so h = 0 and L = (1/(2 eta))^2.
  eta = c.preference.loss_kwargs.eta
  assert train[0]["train/h_mean"] == pytest.approx(0.0, abs=1e-4)
  assert train[0]["train/loss"] == pytest.approx((1 / (2 * eta)) ** 2, rel=1e-5)
  # Iteration 2 starts at pi_1 (its own previous iterate), where h = (tau/eta) (log-ratio
  # of pi_1 - that of pi_ref) on the new pairs: no longer 0 once pi_1 has moved.
  first_of_2 = train[int(its[0]["inpo/pairs"]) // 4]
  print("inpo h_mean at the start of iteration 2", first_of_2["train/h_mean"])
  assert abs(first_of_2["train/h_mean"]) > 1e-3
  assert all(np.isfinite(r["train/loss"]) for r in train)
  # Resumed from the checkpoint after iteration 1 (the run's own copy, the one after
  # iteration 2 deleted): the same samples, pairs and steps (the sampling key of
  # iteration t is fold_in(key(seed), t); the data cursor is in the checkpoint).
  shutil.copytree(tmp_path / "w", tmp_path / "r")
  shutil.rmtree(tmp_path / "r" / "checkpoints" / str(out["steps"]))
  inpo.run(_inpo_config(tmp_path / "r", resume=True))
  with open(tmp_path / "r" / "metrics.jsonl") as f:
    resumed = [json.loads(l) for l in f]
  np.testing.assert_allclose([r["train/loss"] for r in resumed if "train/loss" in r],
                             [r["train/loss"] for r in train], rtol=1e-5)
  assert [r["inpo/pairs"] for r in resumed if "inpo/pairs" in r] == [r["inpo/pairs"] for r in its]


def test_bad_configs_and_data_fail_with_named_errors(tmp_path):
  bad = tmp_path / "bad.jsonl"
  bad.write_text(json.dumps({"prompt": "1+1=", "completion": "2", "label": True}) + "\n")
  with pytest.raises(ValueError, match="needs pairs"):
    preference.run(_config("dpo", tmp_path / "a", **{"data.path": str(bad)}))
  with pytest.raises(ValueError, match="not options of preference loss 'simpo'"):
    preference.run(_config("simpo", tmp_path / "b", **{"preference.loss_kwargs": {"tau": 1.0}}))
  with pytest.raises(ValueError, match="data.path"):
    preference.run(_config("dpo", tmp_path / "c", **{"data.path": str(tmp_path / "none")}))
  with pytest.raises(ValueError, match="num_samples must be >= 2"):
    inpo.run(_inpo_config(tmp_path / "d", **{"inpo.num_samples": 1}))
  with pytest.raises(ValueError, match="0 < tau < eta"):
    inpo.run(_inpo_config(tmp_path / "e", **{"preference.loss_kwargs.tau": 0.1}))

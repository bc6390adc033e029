"""configs/seele_countdown.py for 20 RL steps on the tiny model (m = 2 rounds x n = 2):
the SEELE metrics are logged and the per-problem hint rates are stored in the checkpoint;
the full-size recipe validates, and inconsistent options fail at start."""

import json
import os

import pytest

import _helpers
from configs import seele_countdown
from experiments import rl
from jaxrl_llm.training import setup

SEELE_METRICS = ("hint_rate", "hint_tokens", "accuracy_round1", "accuracy_round2",
                 "accuracy_gap", "stored_hint_rate", "fit_fallback_frac", "hint_nll",
                 "hint_token_frac")


def _tiny(workdir, steps=20):
  c = _helpers.shrink_rl_recipe(seele_countdown.get_config(), workdir, steps)
  c.rl.rollout_method_kwargs.rounds = 2   # group_size 4 = 2 rounds x 2 rollouts
  c.sampling.max_new_tokens = 6
  c.task.pool_size = 8  # 8 problems, each seen every other step: stored rates are reused
  return c


def _train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


def test_seele_countdown_20_steps(tmp_path):
  c = _tiny(tmp_path)
  rl.run(c)
  records = _train_records(str(tmp_path))
  assert len(records) == 20
  for name in SEELE_METRICS:
    assert all(f"train/{name}" in r for r in records), name
  rates = [r["train/hint_rate"] for r in records]
  assert all(0.0 <= x <= 1.0 for x in rates)
  assert all(r["train/hint_tokens"] <= 5 for r in records)  # <= max_new_tokens - 1
  # 'answer_present' is 1 whenever the hint holds a digit, so accuracy sits above a* = 0.5
  # and the stored rates fall: later steps hint less than the first (cold start) ones.
  assert sum(rates[-4:]) < sum(rates[:2]) * 2
  print("seele 20 steps:", json.dumps({k: [round(r[f"train/{k}"], 3) for r in records]
                                       for k in ("hint_rate", "accuracy_round1",
                                                 "accuracy_round2", "accuracy_gap")}))
  # The rates are in the checkpoint's metadata (restored on resume by experiments/rl.py, see
  # tests/experiments/test_rl_rollout_method.py), one per problem of the pool of 8.
  ckpt = os.path.join(str(tmp_path), "checkpoints")
  states = []
  for root, _, files in os.walk(ckpt):
    for f in files:
      try:
        meta = json.load(open(os.path.join(root, f)))
      except (ValueError, UnicodeDecodeError):
        continue
      if isinstance(meta, dict) and "rollout_state" in json.dumps(meta):
        states.append(meta)
  found = [s for s in map(_find_rollout_state, states) if s is not None]
  final = [s for s in found if len(s["hint_rate"]) == 8]
  assert final, found
  assert all(0.0 <= v <= 1.0 for v in final[0]["hint_rate"].values())


def _find_rollout_state(node):
  if isinstance(node, dict):
    if "rollout_state" in node:
      return node["rollout_state"]
    for v in node.values():
      got = _find_rollout_state(v)
      if got is not None:
        return got
  return None


def test_full_recipe_validates_and_bad_options_fail():
  c = seele_countdown.get_config()
  c.init_from = ""
  rl.validate(c)
  c.rl.rollout_method_kwargs.length_unit = "steps"
  with pytest.raises(ValueError, match="length_unit"):
    rl.validate(c)
  c = seele_countdown.get_config()
  c.init_from = ""
  c.rl.rollout_method_kwargs.solution_field = "metadata.nope"
  with pytest.raises(ValueError, match=r"Example.metadata.nope"):
    rl.validate(c)

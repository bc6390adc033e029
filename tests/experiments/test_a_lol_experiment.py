"""experiments/a_lol.py: 20 steps on a tiny model from a tiny generated JSONL (metrics
logged and finite, Orbax checkpoints committed); a bad JSONL row's error names the field."""

import json
import math

import numpy as np
import pytest

import _helpers  # tests/experiments is on sys.path (pytest rootdir-less import)
from configs import a_lol_arithmetic  # noqa: E402
from experiments import a_lol  # noqa: E402
from jaxrl_llm.runs.checkpoint import committed_steps


def tiny_a_lol_config(tmp_path, **overrides):
  c = _helpers.tiny_model(a_lol_arithmetic.get_config())
  c.workdir = str(tmp_path / "w")
  c.data.path = str(tmp_path / "data.jsonl")
  c.data.num_prompts = 16
  c.data.responses_per_prompt = 2
  c.data.val_fraction = 0.25
  c.value.epochs = 3
  c.value.batch_size = 4
  c.a_lol.scale_steps = False
  c.steps = 20
  c.batch_size = 4
  c.eval_every = 1000
  c.eval_size = 4
  c.checkpoint_every = 10
  c.progress_bar = False
  c.tensorboard = False
  c.export_hf = False
  for k, v in overrides.items():
    node = c
    *path, last = k.split(".")
    for p in path:
      node = node[p]
    node[last] = v
  return c


def _lines(path):
  with open(path) as f:
    return [json.loads(l) for l in f]


def test_a_lol_20_steps_logs_finite_metrics_and_checkpoints(tmp_path):
  c = tiny_a_lol_config(tmp_path)
  summary = a_lol.run(c)
  assert summary["steps"] == 20
  rows = _lines(tmp_path / "data.jsonl")  # generated: 16 prompts x 2 responses, verifier-scored
  assert len(rows) == 32 and {r["reward"] for r in rows} <= {0.0, 1.0}
  for r in rows:
    assert r["reward"] == float(r["response"] == r["answer"])
  lines = _lines(tmp_path / "w" / "metrics.jsonl")
  first = lines[0]
  assert first["step"] == 0
  for key in ("value/mse_holdout", "value/mse_fit", "data/positive_frac", "data/adv_mean"):
    assert math.isfinite(first[key]), key
  assert first["data/num_train"] + first["data/num_val"] == 32
  train = [l for l in lines if "train/loss" in l]
  assert [l["step"] for l in train] == list(range(1, 21))
  for key in ("train/loss", "train/grad_norm", "train/nll", "train/ratio_mean",
              "train/ratio_clip_frac", "train/adv_mean"):
    assert np.all(np.isfinite([l[key] for l in train])), key
  # Only pairs with A > 0 are drawn (good_priority).
  assert all(l["train/adv_positive_frac"] == 1.0 for l in train)
  assert any("eval/accuracy" in l for l in lines)
  assert committed_steps(str(tmp_path / "w" / "checkpoints")) == [10, 20]


def test_bad_jsonl_row_error_names_the_field(tmp_path):
  path = tmp_path / "data.jsonl"
  with open(path, "w") as f:
    f.write(json.dumps({"prompt": "1+2=", "response": "3", "reward": 1.0}) + "\n")
    f.write(json.dumps({"prompt": "2+2=", "response": "4", "reward": "high"}) + "\n")
  c = tiny_a_lol_config(tmp_path, **{"data.generate": False})
  with pytest.raises(ValueError, match=r"data.jsonl:2: field 'reward' must be a finite number"):
    a_lol.run(c)
  with open(path, "w") as f:
    f.write(json.dumps({"prompt": "1+2=", "reward": 1.0}) + "\n")
  with pytest.raises(ValueError, match=r"data.jsonl:1: missing field 'response'"):
    a_lol.run(tiny_a_lol_config(tmp_path / "b", **{"data.path": str(path)}))


def test_bad_options_fail_at_start(tmp_path):
  with pytest.raises(ValueError, match="variant"):
    a_lol.run(tiny_a_lol_config(tmp_path, **{"a_lol.variant": "lol"}))
  with pytest.raises(ValueError, match="a_lol.sampler"):
    a_lol.run(tiny_a_lol_config(tmp_path, **{"a_lol.sampler": "best"}))
  with pytest.raises(ValueError, match="data.path"):
    a_lol.run(tiny_a_lol_config(tmp_path, **{"data.generate": False}))


def test_model_responses_and_value_on_ref_generations(tmp_path):
  # data.responses='model': pi_ref's samples labelled by the verifier; value.source=
  # 'ref_generations': the value head is fitted to pi_ref's own samples on the held-out
  # prompts (the paper's setting). ref_free + uniform sampling trains on every pair.
  c = tiny_a_lol_config(tmp_path, **{
      "data.responses": "model", "value.source": "ref_generations",
      "value.samples_per_prompt": 2, "steps": 2, "max_new_tokens": 4,
      "a_lol.sampler": "uniform", "a_lol.variant": "ref_free", "checkpoint_every": 1000})
  a_lol.run(c)
  rows = _lines(tmp_path / "data.jsonl")
  assert len(rows) == 32 and all(len(r["response"]) <= 4 for r in rows)
  first = _lines(tmp_path / "w" / "metrics.jsonl")[0]
  assert first["data/num_value_rows"] == 2 * 4  # 4 held-out prompts x 2 samples
  train = [l for l in _lines(tmp_path / "w" / "metrics.jsonl") if "train/loss" in l]
  assert len(train) == 2 and all(math.isfinite(l["train/loss"]) for l in train)


def test_ref_generations_need_the_answer_field(tmp_path):
  path = tmp_path / "data.jsonl"
  with open(path, "w") as f:
    for p in ("1+2=", "2+2=", "3+3=", "4+1="):
      f.write(json.dumps({"prompt": p, "response": "4", "reward": 0.0}) + "\n")
  c = tiny_a_lol_config(tmp_path, **{"data.generate": False, "value.source": "ref_generations"})
  with pytest.raises(ValueError, match="'answer'"):
    a_lol.run(c)

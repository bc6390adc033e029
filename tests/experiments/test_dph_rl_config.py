"""configs/dph_rl_arithmetic.py: pre-sampling on a tiny model, then 20 RL steps with
rehearsal rows and the dph_rl loss; f-divergence KL names in the RL step."""

import importlib
import json
import os

import jax
import numpy as np
import pytest

import _helpers
from experiments import rl
from jaxrl_llm import data
from jaxrl_llm.data import rehearsal as rehearsal_data
from jaxrl_llm.training import presample, setup

dph_config = importlib.import_module("configs.dph_rl_arithmetic")


def _write_files(c, root):
  """Pre-samples the tiny random-init policy (the RL run's own init: same seed) on 16
  problems; min_correct=1 so the random model has rehearsal samples ('answer_present')."""
  config, params, tokenizer, _ = setup.build_model(c.model, "", c.seed)
  exs = data.distinct_examples(setup.build_task(c.task, "train"), 16, seed=0)
  out = presample.presample(config, params, tokenizer, exs, setup.build_reward_fn(c.task),
                            jax.random.key(0), k=4, max_new_tokens=c.sampling.max_new_tokens,
                            temperature=c.sampling.temperature, prompts_per_batch=8,
                            stop_tokens=setup.stop_tokens(config, tokenizer),
                            add_bos=c.task.add_bos, min_correct=1)
  assert out.rehearsal is not None and out.rehearsal.num_rows >= 1
  assert out.rewards.shape == (16, 4)
  path = rehearsal_data.save_rehearsal(os.path.join(root, "rehearsal.npz"), out.rehearsal,
                                       {"k": 4})
  exp = rehearsal_data.save_examples(os.path.join(root, "d_exp.jsonl"),
                                     out.exp_examples or exs)
  return path, exp


def _tiny_dph(tmp_path, steps=20):
  c = _helpers.tiny_rl_config(tmp_path / "run", steps=steps)
  c.rl.num_minibatches = 1
  path, exp = _write_files(c, str(tmp_path))
  dph_config.apply_dph_rl(c, rehearsal_path=path, exp_path=exp, divergence="forward_kl",
                          eta=0.5, rehearsal_rows=4)
  c.checkpoint_every = steps
  return c


def _train_records(c):
  with open(os.path.join(c.workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


def test_dph_rl_recipe_runs_20_steps(tmp_path):
  c = _tiny_dph(tmp_path)
  rl.run(c)
  train = _train_records(c)
  assert len(train) == 20
  assert all(np.isfinite(r["train/loss"]) for r in train)
  assert all(r["train/rehearsal_rows"] == 4 for r in train)
  div = [r["train/rehearsal_divergence"] for r in train]
  # Step 1 updates from pi_0 itself: u = 1 on every rehearsal token, f = 0.
  assert abs(div[0]) < 1e-4, div[:3]
  assert max(div[1:]) > 1e-6 and all(d >= -1e-6 for d in div)  # the policy moved away
  assert all(0 < r["train/rehearsal_token_frac"] < 1 for r in train)
  # Rows cycle through the file from step * rows.
  m = train[0]["train/rehearsal_file_rows"]
  assert [r["train/rehearsal_start"] for r in train[:3]] == [(i * 4) % m for i in range(3)]


def test_dph_rl_config_validates_and_needs_the_augmenter(tmp_path):
  c = dph_config.get_config()
  c.init_from = ""
  root = str(tmp_path)
  rehearsal_data.save_rehearsal(os.path.join(root, "r.npz"), rehearsal_data.RehearsalSet(
      np.ones((1, 2), np.int32), np.ones((1, 2), bool), np.ones((1, 2), np.int32),
      np.ones((1, 2), bool), np.zeros((1, 2), np.float32), np.array(["p"])))
  rehearsal_data.save_examples(os.path.join(root, "e.jsonl"), data.distinct_examples(
      setup.build_task(c.task, "train"), 2))
  c.rl.batch_augment_kwargs.path = os.path.join(root, "r.npz")
  c.task.train_examples = os.path.join(root, "e.jsonl")
  rl.validate(c)
  c.rl.batch_augment = "none"
  c.rl.batch_augment_kwargs = {}
  with pytest.raises(ValueError, match="base_logprobs"):
    rl.validate(c)


@pytest.mark.parametrize("kl", ["f:js", "f:alpha=0.5"])
def test_f_divergence_kl_in_the_rl_step(tmp_path, kl):
  c = _helpers.tiny_rl_config(tmp_path / kl.replace(":", "_"), steps=2)
  c.rl.kl = kl
  c.rl.kl_coef = 0.1
  rl.validate(c)
  rl.run(c)
  train = _train_records(c)
  assert len(train) == 2 and all(np.isfinite(r["train/kl"]) and r["train/kl"] >= 0
                                 for r in train)


def test_unknown_f_divergence_lists_known(tmp_path):
  c = _helpers.tiny_rl_config(tmp_path / "x")
  c.rl.kl = "f:hellinger"
  with pytest.raises(ValueError, match="f:js"):
    rl.validate(c)

"""RL-PLUS and 1-shot RLVR end to end: the demonstration augmenter by hand,
configs/rl_plus_arithmetic.py and configs/one_shot_rlvr_arithmetic.py (default, history
and entropy_only variants) for 20 RL steps with the tiny model, the accuracy log ->
ranking -> only_examples path, and the start-up failures."""

import json
import os

import numpy as np
import pytest

import _helpers
from configs import one_shot_rlvr_arithmetic, rl_plus_arithmetic
from experiments import rl
from jaxrl_llm import data, models, training
from jaxrl_llm.data import one_shot
from jaxrl_llm.training import demonstration, rollout, setup

RL_PLUS_METRICS = ("off_ratio_mean", "off_adv_scale_mean", "off_token_frac", "on_clip_frac",
                   "on_ratio_mean", "demo_reward_mean", "demo_length_mean",
                   "demo_truncated_frac")


def _tiny(c, workdir, steps=20):
  return _helpers.shrink_rl_recipe(c, workdir, steps)


def _train_records(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if "train/loss" in r]


# ---- demonstration augmenter -----------------------------------------------------------------


class _Rollouts:
  def __init__(self, examples):
    self.examples = examples


def test_demonstration_augmenter_by_hand():
  tok = models.CharTokenizer()
  b, n = 4, 3
  batch = training.make_rollout_batch(
      np.ones((b, 2), np.int32), np.ones((b, 2), np.int32),
      np.full((b, n), 5, np.int32), np.ones((b, n), bool), np.full((b, n), -0.5, np.float32),
      np.array([0.0, 1.0, 0.0, 1.0], np.float32), group_size=2)
  exs = [data.Example("1+1=", "2", completion="2"), data.Example("9+9=", "18", completion="1800")]
  seen = []

  def reward_fn(text, ex):
    seen.append(text)
    return 1.0 if text == ex.answer else 0.25

  out, m = demonstration.demonstration_augment(batch, _Rollouts(exs), tokenizer=tok, key=None,
                                               step=0, reward_fn=reward_fn)
  # Rows 1 and 3 (each group's last) are replaced; rows 0 and 2 untouched.
  np.testing.assert_array_equal(np.asarray(out.is_off_policy), [False, True, False, True])
  # "2" + EOS, padded; "1800" + EOS cut at 3 tokens -> "180" (truncated), scored as "180".
  np.testing.assert_array_equal(np.asarray(out.completion_tokens[1]),
                                tok.encode("2", add_eos=True) + [tok.pad_id])
  np.testing.assert_array_equal(np.asarray(out.completion_tokens[3]), tok.encode("180"))
  np.testing.assert_array_equal(np.asarray(out.loss_mask[1]), [True, True, False])
  np.testing.assert_array_equal(np.asarray(out.completion_mask[3]), [True, True, True])
  np.testing.assert_array_equal(np.asarray(out.sampler_logprobs[1]), [0.0, 0.0, 0.0])
  np.testing.assert_array_equal(np.asarray(out.sampler_logprobs[0]), [-0.5] * 3)
  assert seen == ["2", "180"]
  np.testing.assert_array_equal(np.asarray(out.rewards), [0.0, 1.0, 0.0, 0.25])
  assert m["demo_reward_mean"] == pytest.approx(0.625)
  assert m["demo_truncated_frac"] == 0.5 and m["demo_length_mean"] == 2.5
  assert m["demo_replaced_reward_mean"] == 1.0
  assert "demonstration" in rollout.BATCH_AUGMENTERS


def test_demonstration_needs_reference_solutions():
  src = data.ListSource([data.Example("1+1=", "2")])  # completion "" (no reference)
  with pytest.raises(ValueError, match=r"Example\.completion"):
    demonstration.check_demonstration_source(src)
  # Through the experiment's start-up checks: arithmetic examples have no
  # metadata["solution"] (Countdown's do), so a run asking for it fails before any model.
  c = rl_plus_arithmetic.get_config()
  c.init_from = ""
  c.rl.batch_augment_kwargs.field = "metadata.solution"
  with pytest.raises(ValueError, match=r"no reference solution in Example\.metadata\.solution"):
    rl.validate(c)
  c.task.name = "countdown"
  c.task.reward = "countdown"
  rl.validate(c)


# ---- RL-PLUS recipe --------------------------------------------------------------------------


def test_rl_plus_recipe_20_steps_logs_finite_metrics(tmp_path):
  c = rl_plus_arithmetic.get_config()
  assert (c.rl.loss, c.rl.advantage, c.rl.batch_augment) == ("rl_plus", "grpo_split",
                                                             "demonstration")
  c.init_from = ""
  rl.validate(c)
  c = _tiny(c, tmp_path / "rl_plus")
  rl.run(c)
  train = _train_records(c.workdir)
  assert len(train) == 20
  for r in train:
    for k in RL_PLUS_METRICS:
      assert np.isfinite(r[f"train/{k}"]), (k, r)
    assert np.isfinite(r["train/loss"])
    # One demonstration of the 4 rows per group: its tokens ("46" + EOS: up to 4) are
    # a fraction of the masked tokens strictly between 0 and 1.
    assert 0.0 < r["train/off_token_frac"] < 1.0
    assert r["train/on_clip_frac"] == 0.0  # clip=False
  # answer_present: the reference answer contains the answer, so every demonstration scores 1.
  assert all(r["train/demo_reward_mean"] == 1.0 for r in train)


# ---- 1-shot RLVR -----------------------------------------------------------------------------


def test_one_shot_build_task_fills_batches_with_the_example():
  c = one_shot_rlvr_arithmetic.get_config()
  c.task.only_examples = (5,)
  src = setup.build_task(c.task, "train")
  batch, _ = data.take_batch(src, data.DataPosition(0, 0), 6)
  task = data.ArithmeticTask(digits=c.task.digits, min_digits=c.task.min_digits,
                             operators=c.task.operators, split="train",
                             test_fraction=c.task.test_fraction)
  pool = one_shot.finite_pool(task, c.task.pool_size)
  assert [e.prompt for e in batch] == [pool.items[5].prompt] * 6
  c.task.only_examples = (c.task.pool_size,)
  with pytest.raises(ValueError, match="task.only_examples"):
    setup.build_task(c.task, "train")


def test_one_shot_history_ranking_then_pi1_and_entropy_only(tmp_path):
  # 1. The history run on a pool of 8 examples (4 groups of 4 per step: every example
  #    seen once per 2 steps) logs per-example accuracy.
  c = one_shot_rlvr_arithmetic.get_config("history")
  c.init_from = ""
  rl.validate(c)
  c = _tiny(c, tmp_path / "history", steps=8)
  c.task.pool_size = 8
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  rl.run(c)
  log = os.path.join(c.workdir, "example_accuracy.jsonl")
  ids, acc = one_shot.accuracy_matrix(log)
  assert ids == list(range(8)) and acc.shape == (8, 4)  # 8 steps x 4 groups / 8 examples
  assert np.all((acc >= 0) & (acc <= 1))
  pi_1 = one_shot.select_examples(log)[0]
  order, scores = one_shot.historical_variance_ranking(acc)
  assert pi_1 == ids[order[0]] and scores[order[0]] == np.nanmax(scores)

  # 2. pi_1 alone for 20 steps (GRPO, entropy bonus and k3 KL of the recipe).
  c1 = one_shot_rlvr_arithmetic.get_config()
  assert (c1.rl.entropy_coef, c1.rl.kl, c1.rl.kl_coef, c1.sampling.temperature) == (
      0.001, "k3", 0.001, 0.6)
  c1 = _tiny(c1, tmp_path / "pi1")
  c1.task.pool_size = 8
  c1.task.only_examples = (pi_1,)
  c1.rl.accuracy_log = "example_accuracy.jsonl"
  rl.run(c1)
  train = _train_records(c1.workdir)
  assert len(train) == 20
  for r in train:
    for k in ("loss", "pg_loss", "entropy", "kl", "clip_frac"):
      assert np.isfinite(r[f"train/{k}"]), (k, r)
  prompts = {rec["prompt"] for rec in one_shot.read_jsonl(
      os.path.join(c1.workdir, "example_accuracy.jsonl"))}
  assert len(prompts) == 1  # every group of every batch is pi_1

  # 3. entropy_only == --config.rl.pg_coef=0: the loss is -0.001 H + 0.001 KL alone.
  c2 = one_shot_rlvr_arithmetic.get_config("entropy_only")
  assert c2.rl.pg_coef == 0.0
  c2 = _tiny(c2, tmp_path / "entropy_only")
  c2.task.pool_size = 8
  c2.task.only_examples = (pi_1,)
  rl.run(c2)
  train = _train_records(c2.workdir)
  assert len(train) == 20
  for r in train:
    assert np.isfinite(r["train/loss"]) and np.isfinite(r["train/pg_loss"])
    np.testing.assert_allclose(r["train/loss"],
                               -0.001 * r["train/entropy"] + 0.001 * r["train/kl"],
                               rtol=1e-3, atol=1e-6)

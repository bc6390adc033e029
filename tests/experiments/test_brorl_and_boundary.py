"""BroRL and the reasoning-boundary evaluation end to end: chunked rollouts equal one-shot
rollouts, configs/brorl_arithmetic.py for 20 steps with groups of 32 sampled 8 at a time,
eval/pass@k and eval/maj@k inside experiments/rl.py, and experiments/reasoning_boundary.py
on two tiny random checkpoints, each checked against an independent math.comb transcription."""

import json
import math
import os
from fractions import Fraction

import jax
import numpy as np
import pytest

import _helpers
from configs import brorl_arithmetic, reasoning_boundary as boundary_config
from experiments import reasoning_boundary, rl
from jaxrl_llm import data, models
from jaxrl_llm.training import passk_eval, rollout, setup


def _comb_pass(n, c, k):
  return float(1 - Fraction(math.comb(n - c, k), math.comb(n, k)))


def _records(workdir, key):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if key in r]


def _tiny_policy(seed=0):
  c = _helpers.tiny_model(_helpers.tiny_rl_config("/unused"))
  config, params, tokenizer, _ = setup.build_model(c.model, "", seed)
  return c, config, params, tokenizer


def test_chunked_rollouts_equal_one_shot():
  # The BroRL test's shapes (2 prompts x 32, chunks of 8), so its decode loop is compiled once.
  c, config, params, tok = _tiny_policy()
  source = setup.build_task(c.task, "train")
  reward_fn = setup.build_reward_fn(c.task)
  kw = dict(num_prompts=2, group_size=32, max_new_tokens=4, stop_tokens=(tok.eos_id,),
            add_bos=c.task.add_bos, temperature=1.2)
  key = jax.random.key(11)
  one = rollout.collect_rollouts(config, params, tok, source, data.DataPosition(0, 0),
                                 reward_fn, key, sample_chunk=32, **kw)
  chunked = rollout.collect_rollouts(config, params, tok, source, data.DataPosition(0, 0),
                                     reward_fn, key, sample_chunk=8, **kw)
  for f in ("prompt_tokens", "prompt_mask", "completion_tokens", "completion_mask", "loss_mask",
            "rewards", "group_ids"):
    np.testing.assert_array_equal(np.asarray(getattr(chunked.batch, f)),
                                  np.asarray(getattr(one.batch, f)), err_msg=f)
  # Log-probs to 1e-6: a decode loop of 16 rows and one of 64 may round a float32
  # matmul differently on CPU (measured: at most 4.8e-7 here); the draws are the same.
  np.testing.assert_allclose(np.asarray(chunked.batch.sampler_logprobs),
                             np.asarray(one.batch.sampler_logprobs), rtol=0, atol=1e-6)
  assert chunked.completions == one.completions and chunked.position == one.position
  assert len(set(one.completions)) > 8  # real samples, not one repeated row


def test_brorl_recipe_20_steps_with_sampled_eval(tmp_path):
  c = _helpers.shrink_rl_recipe(brorl_arithmetic.get_config(), tmp_path / "brorl", steps=20)
  brorl_arithmetic.apply_brorl(c, group_size=32, num_prompts=2, sample_chunk=8,
                               micro_batch_rows=16)
  assert (c.rl.batch_size, c.rl.num_micro_batches, c.rl.sample_chunk) == (64, 4, 8)
  assert c.rl.loss_kwargs.clip_high == 0.4 and c.sampling.temperature == 1.2
  # eval/pass@k and eval/maj@k at the start and the end: n = 8 samples (chunks of 8, so
  # the same 16-row decode loop as the rollouts) of 2 held-out problems.
  c.eval_every, c.eval_size, c.eval_at_start = 20, 2, True
  c.eval.n, c.eval.pass_ks, c.eval.maj_ks = 8, (1, 2, 8), (8,)
  c.eval.sample_chunk, c.eval.prompts_per_batch, c.eval.seed = 8, 2, 7
  rl.run(c)
  train = _records(c.workdir, "train/loss")
  assert len(train) == 20
  for r in train:
    assert all(np.isfinite(v) for v in r.values() if isinstance(v, float))
  assert 0.0 < np.mean([r["train/reward_mean"] for r in train]) < 1.0
  ev = _records(c.workdir, "eval/pass@1")
  assert len(ev) == 2  # step 0 and step 20
  # Recompute step 0 (the random init, rebuilt from the seed; the trained policy solves
  # this reward, so its pass@k are all 1): the same n = 8 samples of the 2 problems, then
  # pass@k by math.comb and maj@8 by counting votes here.
  config, params, tok, _ = setup.build_model(c.model, "", c.seed)
  s = passk_eval.sample_correctness(
      config, params, tok, setup.eval_examples(c.task, 2), setup.build_reward_fn(c.task),
      jax.random.key(7), n=8, max_new_tokens=4, prompts_per_batch=2, sample_chunk=8,
      temperature=1.2, stop_tokens=(tok.eos_id,), add_bos=c.task.add_bos,
      answer_fn=passk_eval.get_answer_extractor("answer_present"))
  counts = s.correct.sum(1)
  assert 0 < counts.sum() < 16  # not saturated: the comparison can fail
  for k in (1, 2, 8):
    assert ev[0][f"eval/pass@{k}"] == pytest.approx(np.mean([_comb_pass(8, int(x), k)
                                                             for x in counts]), abs=1e-12)
  maj = []
  for answers, corr in zip(s.answers, s.correct):
    votes = [a for a in answers if a is not None]
    if not votes:
      maj.append(0.0)
      continue
    best = max(votes.count(a) for a in votes)
    winner = next(a for a in answers if a is not None and votes.count(a) == best)
    maj.append(float(corr[answers.index(winner)]))
  assert ev[0]["eval/maj@8"] == pytest.approx(np.mean(maj))
  c.rl.sample_chunk = 5
  with pytest.raises(ValueError, match="sample_chunk=5 must divide"):
    rl.validate(c)
  c.rl.sample_chunk, c.eval.pass_ks = 8, (16,)
  with pytest.raises(ValueError, match=r"eval.pass_ks \[16\]"):
    rl.validate(c)


def test_reasoning_boundary_on_two_random_checkpoints(tmp_path):
  c0, config, _, tok = _tiny_policy()
  for seed in (1, 2):
    setup.export_hf(str(tmp_path / f"m{seed}"), config,
                    models.init_params(config, jax.random.key(seed)))
  c = boundary_config.get_config()
  c.output_dir = str(tmp_path / "out")
  c.checkpoints = f"a={tmp_path / 'm1'},b={tmp_path / 'm2'}"
  c.task = c0.task  # arithmetic prompts, 'answer_present' reward
  c.max_new_tokens, c.n, c.sample_chunk, c.num_problems, c.prompts_per_batch = 4, 8, 4, 6, 4
  c.maj_ks = (8,)
  c.bootstrap_reps, c.progress_bar = 500, False
  out = reasoning_boundary.run(c)
  with open(out["paths"]["json"]) as f:
    saved = json.load(f)
  mats = np.load(out["paths"]["correct"])
  assert os.path.getsize(out["paths"]["png"]) > 1000
  assert set(saved["checkpoints"]) == {"a", "b"}
  curves = []
  for name, cv in saved["checkpoints"].items():
    assert cv["ks"] == [1, 2, 4, 8] and cv["n"] == 8 and cv["num_problems"] == 6
    counts = cv["correct_counts"]
    np.testing.assert_array_equal(mats[name].sum(1), counts)
    assert mats[name].shape == (6, 8)
    want = [np.mean([_comb_pass(8, c_x, k) for c_x in counts]) for k in cv["ks"]]
    np.testing.assert_allclose(cv["pass_at_k"], want, rtol=1e-12, atol=1e-15)
    for lo, p, hi in zip(cv["low"], cv["pass_at_k"], cv["high"]):
      assert lo <= p + 1e-12 and p <= hi + 1e-12
    assert 0.0 <= cv["maj_at_k"]["8"] <= 1.0
    curves.append(cv["pass_at_k"])
  assert curves[0] != curves[1]  # two different models, not one evaluated twice
  assert 0 < np.mean([np.mean(cv["correct_counts"]) for cv in saved["checkpoints"].values()]) < 8
  with pytest.raises(ValueError, match="not name=path"):
    reasoning_boundary.parse_checkpoints("a=/x,b")
  c.checkpoints = f"a={tmp_path / 'missing'}"
  with pytest.raises(ValueError, match=r"checkpoints\[a\]"):
    reasoning_boundary.validate(c)


def test_boundary_claim_summary_by_hand():
  from experiments import boundary_claim
  # n = 2: pass@1 = c / 2, pass@2 = 1 if c >= 1. Two problems, two seeds.
  counts = {0: {"sft": [1, 0], "grpo": [2, 1]}, 1: {"sft": [1, 2], "grpo": [2, 0]}}
  per_seed = {s: {m: {"n": 2, "ks": [1, 2], "correct_counts": c, "pass_at_k": [0.0, 0.0]}
                  for m, c in row.items()} for s, row in counts.items()}
  out = boundary_claim.summarize(per_seed, reps=200)
  # SFT per problem, seed-averaged: pass@1 [.5, .5], pass@2 [1, .5]; GRPO: [1, .25], [1, .5].
  np.testing.assert_allclose(out["sft"]["mean"], [0.5, 0.75])
  np.testing.assert_allclose(out["grpo"]["mean"], [0.625, 0.75])
  np.testing.assert_allclose(out["delta"]["mean"], [0.125, 0.0])
  assert out["crossover_k"] == 2  # GRPO ahead at k = 1, level at k = 2
  for name in ("sft", "grpo", "delta"):
    for lo, p, hi in zip(out[name]["low"], out[name]["mean"], out[name]["high"]):
      assert lo <= p + 1e-12 and p <= hi + 1e-12


def test_full_size_brorl_recipe_validates():
  c = brorl_arithmetic.get_config()
  c.init_from = ""
  rl.validate(c)
  assert (c.rl.group_size, c.rl.batch_size, c.rl.sample_chunk, c.rl.num_micro_batches) == (
      128, 1024, 32, 8)
  with pytest.raises(ValueError, match="sample_chunk=48 must divide group_size=128"):
    brorl_arithmetic.apply_brorl(c, group_size=128, num_prompts=8, sample_chunk=48,
                                 micro_batch_rows=128)

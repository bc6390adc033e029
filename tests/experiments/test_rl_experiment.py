"""experiments/rl.py: config errors at start, metrics/exports, SIGKILL + resume
reproduces an uninterrupted run, half-written checkpoints are ignored, NaN stops."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import _helpers  # tests/experiments is on sys.path (pytest rootdir-less import)
from experiments import rl, sft  # noqa: E402  (the repo root is put on sys.path by _helpers)

ROOT = _helpers.ROOT


@pytest.mark.parametrize("field,value,message", [
    ("rl.loss", "not_a_loss", "unknown policy loss 'not_a_loss'"),
    ("rl.advantage", "nope", "rl.advantage: unknown advantage estimator 'nope'; known: dr_grpo, gae"),
    ("rl.advantage_kwargs", {"std": 1}, "['std'] are not options of rl.advantage 'grpo'; its "
                                        "options: std_scope, eps"),
    ("rl.reward_shaping", "longish", "unknown reward shaping 'longish'; known: none, overlong"),
    ("rl.overlong_cache", 4, "rl.overlong_cache=4 is replaced by rl.reward_shaping='overlong'"),
    ("rl.prompt_transform", "hints", "unknown prompt transform 'hints'; known: identity"),
    ("rl.kl", "k9", "unknown KL estimator 'k9'"),
    ("rl.batch_size", 18, "rl.batch_size=18 is not divisible by rl.group_size=4"),
    ("init_from", "/nonexistent/ckpt", "checkpoint directory '/nonexistent/ckpt' does not exist"),
    ("resume", True, "resume=True but there is no checkpoint directory"),
    ("task.path", "/nonexistent.jsonl", "JSONL file '/nonexistent.jsonl' does not exist"),
])
def test_bad_configs_fail_at_start(tmp_path, field, value, message):
  overrides = {field: value}
  if field == "task.path":
    overrides["task.name"] = "jsonl"
  c = _helpers.tiny_rl_config(tmp_path / "w", **overrides)
  t0 = time.time()
  with pytest.raises(ValueError, match=re.escape(message)):
    rl.run(c)
  assert time.time() - t0 < 5.0  # before any model is built or compiled
  assert not os.path.exists(tmp_path / "w" / "metrics.jsonl")


def _metric_lines(path):
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]


def _comparable(record):
  return {k: v for k, v in record.items() if not k.startswith("perf/")}


def _cli(workdir, steps, resume=False):
  args = [sys.executable, os.path.join(ROOT, "experiments", "rl.py"),
          "--config=" + os.path.join(ROOT, "tests", "experiments", "tiny_rl_config.py"),
          f"--config.workdir={workdir}", f"--config.steps={steps}"]
  if resume:
    args.append("--config.resume=True")
  return args


def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
  steps = 8  # enough iterations that the kill lands mid-run even on a fast machine
  # Uninterrupted reference (in-process), also checks outputs and key names.
  ref_dir = tmp_path / "ref"
  summary = rl.run(_helpers.tiny_rl_config(ref_dir, steps=steps))
  ref = [r for r in _metric_lines(ref_dir / "metrics.jsonl") if "train/reward_mean" in r]
  assert [r["step"] for r in ref] == list(range(1, steps + 1))
  for key in ("train/reward_mean", "train/kl", "train/entropy", "train/clip_frac",
              "perf/tokens_per_s", "mismatch/mismatch_k1"):
    assert all(np.isfinite(r[key]) for r in ref), key
  assert np.isfinite(summary["eval/accuracy"])
  assert os.path.isfile(ref_dir / "hf" / "config.json")
  assert os.path.getsize(ref_dir / "curves.png") > 1000

  # Killed run: SIGKILL once step 2's metrics are written (training is mid-flight).
  work = tmp_path / "killed"
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.Popen(_cli(work, steps), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  metrics_path = work / "metrics.jsonl"
  deadline = time.time() + 240
  ckpt_dir = work / "checkpoints"

  def committed():
    return sorted(int(d) for d in os.listdir(ckpt_dir) if d.isdigit()) if ckpt_dir.exists() else []

  # Saves are asynchronous: wait for step 2's metrics and a committed checkpoint.
  while time.time() < deadline and proc.poll() is None:
    if metrics_path.exists() and len(_metric_lines(metrics_path)) >= 2 and committed():
      break
    time.sleep(0.02)
  assert proc.poll() is None, "the run ended before it could be killed"
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  complete = committed()
  assert complete and max(complete) < steps
  # A half-written checkpoint from a later step (as a kill mid-save leaves it)
  # must never be restored.
  fake = ckpt_dir / f"{steps - 1}.orbax-checkpoint-tmp"  # Orbax's own temporary name
  fake.mkdir(exist_ok=True)
  (fake / "garbage").write_text("half written")

  out = subprocess.run(_cli(work, steps, resume=True), cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert f"resumed from step {max(complete)} " in out.stdout, out.stdout[-2000:]
  resumed = {r["step"]: r for r in _metric_lines(metrics_path) if "train/reward_mean" in r}
  assert sorted(resumed) == list(range(1, steps + 1))  # each step exactly once
  assert not fake.exists()  # the leftover was cleaned up, never restored
  for r in ref:
    got = _comparable(resumed[r["step"]])
    want = _comparable(r)
    assert got.keys() == want.keys()
    for k in want:
      np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-6,
                                 err_msg=f"step {r['step']} metric {k}")


def test_nan_loss_stops_with_step_and_metric(tmp_path):
  c = _helpers.tiny_sft_config(tmp_path / "nan", steps=4)
  c.optim.learning_rate = 1e30  # params overflow after the first update
  c.optim.max_grad_norm = 0.0
  c.optim.warmup_steps = 0
  with pytest.raises(FloatingPointError, match=r"non-finite (loss|grad_norm)=\S+ at step 2"):
    sft.run(c)


def test_grpo_qwen_gsm8k_runs_on_tiny_checkpoint_and_jsonl(tmp_path):
  import jax
  from tokenizers import Tokenizer, models as tok_models, pre_tokenizers

  from configs import grpo_qwen_gsm8k
  from jaxrl_llm import models

  chars = list("0123456789+-*/=#. ?abcdefghijklmnopqrstuvwxyzQA:\n")
  vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
  vocab.update({ch: i + 4 for i, ch in enumerate(chars)})
  tok = Tokenizer(tok_models.WordLevel(vocab, unk_token="<unk>"))
  tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
  hf_dir = tmp_path / "qwen"
  config = models.get_preset("tiny-qwen2", vocab_size=len(vocab), bos_token_id=1,
                             eos_token_id=2, pad_token_id=0)
  models.save_hf(str(hf_dir), config, models.init_params(config, jax.random.key(0)))
  tok.save(str(hf_dir / "tokenizer.json"))
  (hf_dir / "tokenizer_config.json").write_text(json.dumps(
      {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"}))
  jsonl = tmp_path / "gsm8k.jsonl"
  with open(jsonl, "w") as f:
    for i in range(10):
      f.write(json.dumps({"question": f"what is {i}+{i}?",
                          "answer": f"{i}+{i}={2 * i}\n#### {2 * i}"}) + "\n")
  c = grpo_qwen_gsm8k.get_config()
  c.workdir = str(tmp_path / "run")
  c.model.hf_dir = str(hf_dir)
  c.task.path = str(jsonl)
  c.task.test_path = str(jsonl)
  c.task.prompt_template = "Q:{question}A:"
  c.mesh = (1, -1, 1)  # FSDP over the 8 fake devices
  c.sampling.max_new_tokens = 8
  c.rl.batch_size = 8
  c.rl.group_size = 4
  c.rl.num_minibatches = 1
  c.rl.num_micro_batches = 2
  c.steps = 2
  c.eval_size = 4
  c.eval_every = 2
  c.eval_at_start = False
  c.checkpoint_every = 2
  c.progress_bar = False
  c.tensorboard = False
  summary = rl.run(c)
  lines = [r for r in _metric_lines(os.path.join(c.workdir, "metrics.jsonl"))
           if "train/loss" in r]
  assert len(lines) == 2 and all(np.isfinite(r["train/loss"]) for r in lines)
  assert "mismatch/is_clipped_frac" in lines[0]
  assert 0.0 <= summary["eval/accuracy"] <= 1.0
  cfg, _ = models.load_hf(os.path.join(c.workdir, "hf"))
  assert cfg.family == config.family and cfg.vocab_size == config.vocab_size


def test_sft_on_a_2x2x2_mesh_matches_one_device(tmp_path, monkeypatch):
  import kernels_pallas

  vocab_sharded = []
  original = kernels_pallas.fused_logprobs_vocab_sharded
  monkeypatch.setattr(kernels_pallas, "fused_logprobs_vocab_sharded",
                      lambda *a, **k: vocab_sharded.append(k) or original(*a, **k))
  runs = {}
  for name, mesh in (("single", ()), ("mesh", (2, 2, 2))):
    c = _helpers.tiny_sft_config(tmp_path / name, steps=3, mesh=mesh, export_hf=False,
                                 eval_every=3)
    summary = sft.run(c)
    lines = _metric_lines(os.path.join(c.workdir, "metrics.jsonl"))
    runs[name] = ([r["train/loss"] for r in lines if "train/loss" in r], summary)
  assert len(runs["mesh"][0]) == 3
  np.testing.assert_allclose(runs["mesh"][0], runs["single"][0], rtol=1e-4)
  assert runs["mesh"][1]["eval/accuracy"] == runs["single"][1]["eval/accuracy"]
  assert vocab_sharded, "the tensor axis should take the vocab-parallel log-prob path"


def test_single_update_is_chosen_from_the_config(tmp_path):
  c = _helpers.tiny_rl_config(tmp_path / "w")  # 2 minibatches
  assert not rl.single_update(c.rl)
  c.rl.num_minibatches = 1
  assert rl.single_update(c.rl)
  c.rl.ppo_epochs = 2
  assert not rl.single_update(c.rl)


def test_advantage_options_take_gamma_lam_only_where_the_estimator_has_them(tmp_path):
  c = _helpers.tiny_rl_config(tmp_path / "w", **{"rl.lam": 0.9})
  assert rl.advantage_options(c.rl) == {}
  c.rl.advantage = "gae"
  c.rl.advantage_kwargs = {"whiten": False}
  assert rl.advantage_options(c.rl) == {"gamma": 1.0, "lam": 0.9, "whiten": False}


def test_group_coupled_loss_needs_whole_groups_per_micro_batch(tmp_path):
  """PACS couples a group's rows: 8-row minibatches in 4 micro-batches of 2 rows would
  split groups of 4, with one minibatch as with several."""
  for minibatches in (1, 2):
    c = _helpers.tiny_rl_config(tmp_path / f"w{minibatches}")
    c.rl.loss, c.rl.loss_kwargs = "pacs", {}
    c.rl.num_minibatches, c.rl.num_micro_batches = minibatches, 8 // minibatches
    with pytest.raises(ValueError, match="needs whole groups per micro-batch"):
      rl.validate(c)


def test_rollouts_on_their_own_mesh_match_rollouts_on_the_training_device(tmp_path, monkeypatch):
  """config.rollout_mesh: sampling (and eval) on an 8-device mesh, the update on one
  device; the run equals the one-device run (same samples, same updates)."""
  from jaxrl_llm import sampling

  seen, original = [], sampling.generate

  def spy(config, params, *args, mesh=None, **kwargs):
    seen.append((None if mesh is None else mesh.size,
                 frozenset(len(x.sharding.device_set) for x in jax.tree.leaves(params))))
    return original(config, params, *args, mesh=mesh, **kwargs)

  monkeypatch.setattr(sampling, "generate", spy)
  runs = {}
  for name, rollout_mesh in (("single", ()), ("rollout_mesh", (8, 1, 1))):
    seen.clear()
    c = _helpers.tiny_rl_config(tmp_path / name, steps=2, rollout_mesh=rollout_mesh,
                                eval_every=2, export_hf=False)
    summary = rl.run(c)
    lines = _metric_lines(os.path.join(c.workdir, "metrics.jsonl"))
    runs[name] = ([(r["train/loss"], r["train/reward_mean"]) for r in lines
                   if "train/loss" in r], summary["eval/accuracy"])
    # Every rollout and eval sampled where the config put it, with params there too.
    assert seen and set(seen) == {(None, frozenset({1})) if name == "single"
                                  else (8, frozenset({8}))}, seen
  assert len(runs["rollout_mesh"][0]) == 2
  np.testing.assert_allclose(runs["rollout_mesh"][0], runs["single"][0], rtol=1e-4, atol=1e-6)
  assert runs["rollout_mesh"][1] == runs["single"][1]

"""ROVER wiring: make_rl_step feeds rover_loss the current and behaviour mean log-probs
(checked against an independent NumPy forward), and configs/rover_arithmetic.py runs 20
RL steps end to end with the tiny model, logging finite ROVER metrics."""

import json
import os

import jax
import numpy as np
import optax
import pytest

import _helpers
from configs import rover_arithmetic
from experiments import rl
from jaxrl_llm import models, training

ROVER_METRICS = ("rover_q_mean", "rover_q_abs_mean", "rover_next_v_mean", "rover_target_mean",
                 "rover_td_abs_mean")
VOCAB = 16
TAU = 0.6


@pytest.fixture(scope="module")
def tiny():
  config = models.get_preset("tiny-llama", vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                             num_heads=2, num_kv_heads=2, head_dim=8, pad_token_id=0,
                             bos_token_id=1, eos_token_id=2)
  return config, models.init_params(config, jax.random.key(0))


def _batch(b=4, p=3, n=4):
  rng = np.random.default_rng(0)
  prompt_mask = np.ones((b, p), np.int32)
  prompt_mask[0, 0] = 0
  prompt_tokens = np.where(prompt_mask, rng.integers(3, VOCAB, (b, p)), 0).astype(np.int32)
  completion_mask = (np.arange(n)[None] < np.array([4, 2, 3, 1])[:, None]).astype(np.int32)
  completion_tokens = np.where(completion_mask, rng.integers(3, VOCAB, (b, n)), 0).astype(np.int32)
  return training.make_rollout_batch(prompt_tokens, prompt_mask, completion_tokens,
                                     completion_mask, np.zeros((b, n), np.float32),
                                     np.array([1.0, 0.0, 0.0, 1.0], np.float32), group_size=2)


def _numpy_stats(config, params, batch):
  """(lp [B, N], mean log-prob over V [B, N]) from models.forward's logits at TAU."""
  tokens = np.concatenate([batch.prompt_tokens, batch.completion_tokens], 1)
  mask = np.concatenate([batch.prompt_mask, batch.completion_mask], 1)
  z = np.asarray(models.forward(config, params, tokens, mask), np.float64) / TAU
  logp = z - z.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  p, n = batch.prompt_tokens.shape[1], batch.completion_tokens.shape[1]
  lp = np.array([[logp[i, p - 1 + t, tokens[i, p + t]] for t in range(n)]
                 for i in range(tokens.shape[0])])
  return lp, logp[:, p - 1:p - 1 + n].mean(-1)


def _numpy_rover(lp, lp_old, mlp, mlp_old, adv, m):
  """Token mean of (Q - A - V_next)^2, rho = 1, V_next from column t + 1."""
  total, count = 0.0, 0.0
  b, n = m.shape
  for i in range(b):
    for t in range(n):
      if m[i, t]:
        v = (mlp[i, t + 1] - mlp_old[i, t + 1]) * m[i, t + 1] if t + 1 < n else 0.0
        total += (lp[i, t] - lp_old[i, t] - adv[i, t] - v) ** 2
        count += 1
  return total / count


@pytest.mark.parametrize("single_update", [False, True])
def test_rl_step_feeds_rover_the_mean_logprobs(tiny, single_update):
  config, params = tiny
  opt = optax.sgd(0.5)
  step = training.make_rl_step(config, opt, group_size=2, loss="rover", advantage="grpo",
                               temperature=TAU, single_update=single_update,
                               logprob_impl="xla")
  state = training.init_train_state(params, opt)
  batch, _ = jax.jit(step.prepare)(state, _batch())
  lp0, mlp0 = _numpy_stats(config, params, batch)
  m = np.asarray(batch.loss_mask, np.float64)
  adv = np.asarray(batch.advantages, np.float64)
  if single_update:
    assert "old_mean_logprobs" not in batch.extras  # sg(current) inside the update
  else:
    np.testing.assert_allclose(batch.extras["old_mean_logprobs"], mlp0, rtol=1e-5, atol=1e-5)
  # First update: theta = theta_old, so Q = 0 and V = 0; the loss is the token mean of A^2.
  update = jax.jit(step.update)
  state1, metrics = update(state, batch)
  np.testing.assert_allclose(metrics["loss"], np.sum(m * adv ** 2) / np.sum(m), rtol=1e-5)
  assert float(metrics["rover_q_abs_mean"]) < 1e-6  # prepare and update: two programs, ~1 ulp
  if single_update:
    return
  # Second update on the same batch (a later minibatch): Q and V from theta_1 vs theta_0.
  lp1, mlp1 = _numpy_stats(config, state1.params, batch)
  _, metrics2 = update(state1, batch)
  assert float(metrics2["rover_q_abs_mean"]) > 0 and float(metrics2["rover_next_v_mean"]) != 0
  np.testing.assert_allclose(metrics2["loss"], _numpy_rover(lp1, lp0, mlp1, mlp0, adv, m),
                             rtol=1e-4)


def test_rover_recipe_20_steps_logs_finite_rover_metrics(tmp_path):
  c = rover_arithmetic.get_config()
  assert (c.rl.loss, c.sampling.temperature, c.rl.num_minibatches) == ("rover", 0.6, 4)
  assert c.rl.advantage == "grpo" and c.rl.advantage_kwargs.std_scope == "group"
  c.init_from = ""
  rl.validate(c)  # the full-size recipe passes the start-up checks
  c = _helpers.tiny_model(c)
  c.workdir = str(tmp_path / "rover")
  c.init_from = ""
  c.task.reward = "answer_present"  # binary, and informative for a random model
  c.sampling.max_new_tokens = 4
  c.rl.group_size = 4
  c.rl.batch_size = 16
  c.steps = 20
  c.eval_every = 1000
  c.eval_at_start = False
  c.eval_size = 4
  c.checkpoint_every = 20
  c.export_hf = False
  c.progress_bar = False
  c.tensorboard = False
  c.optim.learning_rate = 1e-2
  rl.run(c)
  with open(os.path.join(c.workdir, "metrics.jsonl")) as f:
    train = [r for r in map(json.loads, f) if "train/loss" in r]
  assert len(train) == 20
  for r in train:
    for k in ROVER_METRICS:
      assert np.isfinite(r[f"train/{k}"]), (k, r)
    assert np.isfinite(r["train/loss"]) and r["train/loss"] >= 0
  # Later minibatches of a rollout batch are off the behaviour policy: Q and V move.
  assert any(r["train/rover_q_abs_mean"] > 0 for r in train)
  assert any(r["train/rover_next_v_mean"] != 0 for r in train)

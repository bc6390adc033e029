"""training/a_lol.py: the attention-pooling value head by hand, its fit, the offline data
helpers, reference log-probs in chunks and the A-LoL step's loss (count = B)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl_llm import data, models, rewards, training
from jaxrl_llm.training import a_lol


def _gelu_tanh(x):
  return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def test_value_head_attention_pooling_by_hand():
  params = {"query": jnp.array([1.0, 0.0]), "w1": jnp.eye(2), "b1": jnp.zeros(2),
            "w2": jnp.array([1.0, -1.0]), "b2": jnp.array(0.5)}
  hidden = jnp.array([[[1.0, 0.0], [0.0, 1.0], [1e6, -1e6]]])  # last position is padding
  mask = jnp.array([[1, 1, 0]])
  v = a_lol.value_head_apply(params, hidden, mask, max_value=2.0)
  # scores (1/sqrt 2, 0) -> attention (a, 1 - a); pooled = (a, 1 - a)
  a = math.exp(1 / math.sqrt(2)) / (math.exp(1 / math.sqrt(2)) + 1)
  z = _gelu_tanh(a) - _gelu_tanh(1 - a) + 0.5
  np.testing.assert_allclose(v, [2.0 / (1 + math.exp(-z))], rtol=1e-5)


def test_fit_value_head_beats_a_constant():
  rng = np.random.default_rng(0)
  feats = rng.normal(size=(60, 3, 4)).astype(np.float32)
  mask = np.ones((60, 3), np.float32)
  mask[:, 0] = 0  # left padding
  r = (feats[:, 1:, 0].mean(1) > 0).astype(np.float32)
  params, m = a_lol.fit_value_head(jax.random.key(0), feats, mask, r, epochs=60,
                                   learning_rate=3e-2, batch_size=16)
  assert m["best_epoch"] > 0
  assert m["mse_holdout"] < 0.5 * m["mse_const"], m
  adv, v = a_lol.advantages(params, feats, mask, r)
  np.testing.assert_allclose(adv, r - v, rtol=1e-6)
  assert np.all((v >= 0) & (v <= 1))  # sigmoid * max_value


def test_offline_records_and_split():
  task = data.ArithmeticTask(digits=2, operators="+")
  fn = rewards.get_reward_fn("arithmetic")
  good = a_lol.arithmetic_offline_records(task, 6, fn, responses_per_prompt=2, correct_fraction=1.0)
  assert len(good) == 12 and all(r.reward == 1.0 and r.response == r.answer for r in good)
  bad = a_lol.arithmetic_offline_records(task, 6, fn, correct_fraction=0.0)
  assert all(r.reward == 0.0 and r.response != r.answer for r in bad)
  train, val = a_lol.split_by_prompt(good, 0.34, seed=0)
  assert len(train) + len(val) == 12 and val
  assert not {r.prompt for r in train} & {r.prompt for r in val}


def _tiny_model():
  tok = models.CharTokenizer()
  config = models.get_preset("tiny-llama", vocab_size=tok.vocab_size, bos_token_id=tok.bos_id,
                             eos_token_id=tok.eos_id, pad_token_id=tok.pad_id, hidden_size=32,
                             intermediate_size=64, num_layers=1, num_heads=4, num_kv_heads=2,
                             head_dim=8)
  return tok, config, models.init_params(config, jax.random.key(0))


RECORDS = [a_lol.OfflineRecord("1+2=", "3", 1.0), a_lol.OfflineRecord("10+20=", "31", 0.0),
           a_lol.OfflineRecord("5+5=", "10", 1.0), a_lol.OfflineRecord("7+1=", "9", 0.0)]


def test_reference_logprobs_chunks_and_mask():
  tok, config, params = _tiny_model()
  batch = a_lol.offline_batch(tok, RECORDS + RECORDS[:1], 12)
  whole = a_lol.reference_logprobs(config, params, batch)
  chunked = a_lol.reference_logprobs(config, params, batch, chunk=2)
  np.testing.assert_allclose(chunked, whole, rtol=1e-5, atol=1e-6)
  direct = training.sequence_logprobs(config, params, batch["tokens"], batch["attention_mask"])
  m = batch["loss_mask"][:, 1:]
  np.testing.assert_allclose(whole, np.asarray(direct.logprobs) * m, rtol=1e-5, atol=1e-6)
  assert np.all(whole[m == 0] == 0)


def test_a_lol_step_loss_is_the_mean_over_sequences():
  tok, config, params = _tiny_model()
  batch = a_lol.offline_batch(tok, RECORDS, 12)
  batch["ref_logprobs"] = a_lol.reference_logprobs(config, params, batch)  # pi_ref = pi: ratio 1
  batch["advantages"] = np.array([0.5, -0.2, 0.3, 0.1], np.float32)
  lp = np.asarray(training.sequence_logprobs(config, params, batch["tokens"],
                                             batch["attention_mask"]).logprobs)
  seq_nll = -(lp * batch["loss_mask"][:, 1:]).sum(1)
  expected = np.mean(np.maximum(batch["advantages"], 0) * seq_nll)  # (1/B) sum_i A+ sum_t nll
  opt = optax.sgd(0.1)
  out = []
  for n in (1, 2):
    step = jax.jit(a_lol.make_a_lol_step(config, opt, num_micro_batches=n))
    state, m = step(training.init_train_state(jax.tree.map(jnp.copy, params), opt), batch)
    np.testing.assert_allclose(m["loss"], expected, rtol=1e-5)
    out.append(state.params)
  for a, b in zip(jax.tree.leaves(out[0]), jax.tree.leaves(out[1])):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
  with pytest.raises(ValueError, match="advantages"):
    step(training.init_train_state(params, opt), {k: v for k, v in batch.items()
                                                 if k != "advantages"})

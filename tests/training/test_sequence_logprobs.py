"""training.logprobs: the dense head, the fused kernel and impl="auto" between them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import models, training
from jaxrl_llm.training import logprobs as lp_lib


def _numpy_logprobs(h, w, y, tau):
  """Independent float64 transcription: log softmax(h W / tau)[y] and its entropy."""
  z = (np.asarray(h, np.float64) @ np.asarray(w, np.float64)) / tau
  z = z - z.max(-1, keepdims=True)
  logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
  return logp[np.arange(len(y)), y], -(np.exp(logp) * logp).sum(-1)


def test_dense_logprobs_match_hand_computation():
  k = jax.random.split(jax.random.key(0), 3)
  h = jax.random.normal(k[0], (9, 5))
  w = jax.random.normal(k[1], (5, 11))
  y = jax.random.randint(k[2], (9,), 0, 11)
  lp, ent = lp_lib.dense_logprobs(h, w, y, temperature=0.7, want_entropy=True)
  want_lp, want_ent = _numpy_logprobs(h, w, np.asarray(y), 0.7)
  np.testing.assert_allclose(lp, want_lp, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(ent, want_ent, rtol=1e-5, atol=1e-5)
  assert lp_lib.dense_logprobs(h, w, y)[1] is None


def test_resolve_auto_picks_dense_within_budget_and_kernel_beyond():
  # 4 bytes x 100 tokens x 512 vocab = 204,800 bytes.
  assert lp_lib.resolve_logprob_impl("auto", 100, 512, dense_logits_bytes=204_800) == "dense"
  assert lp_lib.resolve_logprob_impl("auto", 100, 512, dense_logits_bytes=204_799) == "auto"
  assert lp_lib.resolve_logprob_impl("auto", 100, 512, vocab_parallel=True) == "auto"
  assert lp_lib.resolve_logprob_impl("xla", 100, 512) == "xla"
  assert lp_lib.resolve_logprob_impl("dense", 10**6, 10**6) == "dense"


def test_resolve_rejects_unknown_impl_and_bad_budget():
  with pytest.raises(ValueError, match="known: dense, auto, reference, xla"):
    lp_lib.resolve_logprob_impl("fast", 1, 1)
  with pytest.raises(ValueError, match="dense_logits_bytes"):
    lp_lib.resolve_logprob_impl("auto", 1, 1, dense_logits_bytes=-1)
  with pytest.raises(ValueError, match="splits the vocabulary"):
    lp_lib.resolve_logprob_impl("dense", 1, 1, vocab_parallel=True)


@pytest.fixture(scope="module")
def tiny():
  config = models.ModelConfig(family="llama", vocab_size=37, hidden_size=16,
                              intermediate_size=24, num_layers=2, num_heads=2, num_kv_heads=1,
                              head_dim=8)
  params = models.init_params(config, jax.random.key(1))
  tokens = jax.random.randint(jax.random.key(2), (3, 7), 0, 37)
  mask = jnp.array([[0, 0, 1, 1, 1, 1, 1], [1] * 7, [0, 1, 1, 1, 1, 1, 1]], jnp.int32)
  return config, params, tokens, mask


def test_dense_and_fused_paths_agree_in_value_and_gradient(tiny):
  config, params, tokens, mask = tiny
  weights = jax.random.normal(jax.random.key(3), (3, 6))

  def objective(p, impl):
    out = training.sequence_logprobs(config, p, tokens, mask, temperature=0.9,
                                     want_entropy=True, impl=impl)
    return jnp.sum(weights * (out.logprobs + 0.3 * out.entropy)), out

  grad_of = lambda impl: jax.jit(jax.value_and_grad(lambda p: objective(p, impl), has_aux=True))
  (v_d, o_d), g_d = grad_of("dense")(params)
  (v_x, o_x), g_x = grad_of("xla")(params)
  np.testing.assert_allclose(o_d.logprobs, o_x.logprobs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(o_d.entropy, o_x.entropy, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(v_d, v_x, rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_d, g_x)


def test_auto_follows_the_budget(tiny, monkeypatch):
  config, params, tokens, mask = tiny
  calls = []
  real = lp_lib.dense_logprobs
  monkeypatch.setattr(lp_lib, "dense_logprobs", lambda *a, **k: calls.append(1) or real(*a, **k))
  training.sequence_logprobs(config, params, tokens, mask)  # 18 x 37 logits: well within
  assert calls == [1]
  training.sequence_logprobs(config, params, tokens, mask, dense_logits_bytes=4 * 18 * 37 - 1)
  assert calls == [1]  # one byte short: the fused kernel


def test_start_runs_the_head_on_later_positions_only(tiny, monkeypatch):
  config, params, tokens, mask = tiny
  full = training.sequence_logprobs(config, params, tokens, mask, want_entropy=True)
  rows = []
  real = lp_lib.dense_logprobs
  monkeypatch.setattr(lp_lib, "dense_logprobs",
                      lambda h, *a, **k: rows.append(h.shape[0]) or real(h, *a, **k))
  part = training.sequence_logprobs(config, params, tokens, mask, want_entropy=True, start=2)
  assert rows == [3 * 4]  # 3 rows x positions 2..5 (predicting tokens 3..6): no head on 0, 1
  np.testing.assert_allclose(part.logprobs, full.logprobs[:, 2:], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(part.entropy, full.entropy[:, 2:], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(part.hidden, full.hidden[:, 2:], rtol=1e-6, atol=1e-6)
  for bad in (-1, 6, 2.0):
    with pytest.raises(ValueError, match="start must be an int"):
      training.sequence_logprobs(config, params, tokens, mask, start=bad)


def test_dense_mean_logprob_hand_computed_value_and_gradient():
  # One token, V = 3, h = 1, W = (0, log 2, log 5) at tau = 0.5: z = (0, 2 log 2, 2 log 5),
  # p = (1, 4, 25) / 30, mean log p = (log 1 + log 4 + log 25) / 3 - log 30,
  # d/dW_a = (1/V - p_a) / tau.
  h = jnp.ones((1, 1), jnp.float32)
  w = jnp.log(jnp.array([[1.0, 2.0, 5.0]], jnp.float32))
  y = jnp.array([2])
  lp, ent, mlp = lp_lib.dense_logprobs(h, w, y, temperature=0.5, want_mean_logprob=True)
  assert ent is None
  np.testing.assert_allclose(mlp, [(np.log(4.0) + np.log(25.0)) / 3 - np.log(30.0)], rtol=1e-6)
  np.testing.assert_allclose(lp, [np.log(25.0 / 30.0)], rtol=1e-6)
  grad = jax.grad(lambda w: lp_lib.dense_logprobs(h, w, y, temperature=0.5,
                                                  want_mean_logprob=True)[2][0])(w)
  p = np.array([1.0, 4.0, 25.0]) / 30.0
  np.testing.assert_allclose(grad, [(1.0 / 3 - p) / 0.5], rtol=1e-5, atol=1e-6)
  assert len(lp_lib.dense_logprobs(h, w, y)) == 2  # the old pair without the option


def _numpy_mean_logprobs(h, w, tau):
  z = (np.asarray(h, np.float64) @ np.asarray(w, np.float64)) / tau
  m = z.max(-1, keepdims=True)
  lse = (m + np.log(np.exp(z - m).sum(-1, keepdims=True)))[:, 0]
  return z.mean(-1) - lse


@pytest.mark.parametrize("impl", ["dense", "xla"])
def test_sequence_and_completion_mean_logprobs(tiny, impl):
  config, params, tokens, mask = tiny
  out = training.sequence_logprobs(config, params, tokens, mask, temperature=0.6, impl=impl,
                                   want_mean_logprob=True)
  weight = models.unembed_weight(config, params)
  b, n = out.logprobs.shape
  want = _numpy_mean_logprobs(out.hidden.reshape(b * n, -1), weight, 0.6).reshape(b, n)
  np.testing.assert_allclose(out.mean_logprobs, want, rtol=1e-5, atol=1e-5)
  assert training.sequence_logprobs(config, params, tokens, mask, impl=impl).mean_logprobs is None
  # Completion column n: the distribution that predicts completion token n.
  comp = training.completion_logprobs(config, params, tokens[:, :3], mask[:, :3], tokens[:, 3:],
                                      mask[:, 3:], temperature=0.6, impl=impl,
                                      want_mean_logprob=True)
  assert comp.mean_logprobs.shape == (3, 4)
  np.testing.assert_allclose(comp.mean_logprobs, out.mean_logprobs[:, 2:], rtol=1e-5, atol=1e-5)


def test_mean_logprobs_gradient_dense_equals_fused(tiny):
  config, params, tokens, mask = tiny
  weights = jax.random.normal(jax.random.key(4), (3, 6))

  def objective(p, impl):
    out = training.sequence_logprobs(config, p, tokens, mask, temperature=0.6, impl=impl,
                                     want_mean_logprob=True)
    return jnp.sum(weights * (out.logprobs + out.mean_logprobs))

  g_d = jax.jit(jax.grad(lambda p: objective(p, "dense")))(params)
  g_x = jax.jit(jax.grad(lambda p: objective(p, "xla")))(params)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), g_d, g_x)


@pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")
def test_vocab_parallel_mean_logprobs_match_dense(monkeypatch):
  # V = 40 split 2 ways on "tensor", tokens over data x fsdp (the kernel's gradients under
  # this split are tested in tests/kernels_pallas/test_vocab_parallel.py).
  import kernels_pallas
  from jaxrl_llm import sharding
  calls = []
  real = kernels_pallas.fused_logprobs_vocab_sharded
  monkeypatch.setattr(kernels_pallas, "fused_logprobs_vocab_sharded",
                      lambda *a, **k: calls.append(k["want_mean_logprob"]) or real(*a, **k))
  config = models.ModelConfig(family="llama", vocab_size=40, hidden_size=16,
                              intermediate_size=24, num_layers=1, num_heads=2, num_kv_heads=1,
                              head_dim=8)
  params = models.init_params(config, jax.random.key(5))
  tokens = jax.random.randint(jax.random.key(6), (4, 5), 0, 40)
  mask = jnp.ones((4, 5), jnp.int32)
  mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
  dense = training.sequence_logprobs(config, params, tokens, mask, temperature=0.6,
                                     impl="dense", want_mean_logprob=True)
  with jax.set_mesh(mesh):
    split = jax.jit(lambda p: training.sequence_logprobs(
        config, p, tokens, mask, temperature=0.6, impl="xla", mesh=mesh,
        want_mean_logprob=True))(sharding.shard_params(params, config, mesh))
  assert calls == [True]  # the split head went through the vocab-parallel kernel
  np.testing.assert_allclose(split.mean_logprobs, dense.mean_logprobs, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(split.logprobs, dense.logprobs, rtol=1e-5, atol=1e-5)

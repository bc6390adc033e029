"""token_logprobs (fused kernel path) against dense log_softmax of the full logits."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxrl_llm import models

TOKENS = np.array([[0, 0, 5, 6, 7, 8, 9], [3, 4, 5, 6, 7, 8, 9]], np.int32)
MASK = np.array([[0, 0, 1, 1, 1, 1, 1], [1] * 7], np.int32)


def _dense(config, params, temperature=1.0):
  logp = jax.nn.log_softmax(models.forward(config, params, TOKENS, MASK) / temperature, -1)
  picked = jnp.take_along_axis(logp[:, :-1], TOKENS[:, 1:, None], -1)[..., 0]
  valid = MASK[:, 1:] * MASK[:, :-1]
  return logp, jnp.pad(picked * valid, ((0, 0), (1, 0))), valid


def test_logprobs_entropy_and_kl_match_dense():
  config = models.get_preset("tiny-qwen3")
  params = models.init_params(config, jax.random.key(0))
  ref_params = models.init_params(config, jax.random.key(1))
  out = models.token_logprobs(config, params, TOKENS, MASK, temperature=0.7, ref_params=ref_params,
                              want_entropy=True, want_kl="full", impl="xla", block_v=24)
  logp, expected, valid = _dense(config, params, 0.7)
  ref_logp, ref_expected, _ = _dense(config, ref_params, 0.7)
  np.testing.assert_allclose(out.logprobs, expected, atol=1e-5)
  np.testing.assert_allclose(out.ref_logprobs, ref_expected, atol=1e-5)
  p = jnp.exp(logp[:, :-1])
  entropy = -(p * logp[:, :-1]).sum(-1) * valid
  kl = (p * (logp[:, :-1] - ref_logp[:, :-1])).sum(-1) * valid
  np.testing.assert_allclose(out.entropy[:, 1:], entropy, atol=1e-5)
  np.testing.assert_allclose(out.kl[:, 1:], kl, atol=1e-5)
  assert float(out.logprobs[0, :3].sum()) == 0.0  # padding and its successor are zeroed


def test_gradient_matches_dense_and_ignores_reference():
  config = models.get_preset("tiny-llama")
  params = models.init_params(config, jax.random.key(0))
  ref_params = models.init_params(config, jax.random.key(1))
  weights = jnp.asarray(np.random.default_rng(0).normal(size=TOKENS.shape), jnp.float32)

  def fused_loss(p, rp):
    out = models.token_logprobs(config, p, TOKENS, MASK, ref_params=rp, want_kl="k3", impl="xla")
    return jnp.sum(out.logprobs * weights) + jnp.sum(out.kl)

  def dense_loss(p):
    _, lp, _ = _dense(config, p)
    _, rlp, _ = _dense(config, ref_params)
    r = rlp - lp
    return jnp.sum(lp * weights) + jnp.sum((jnp.exp(r) - 1 - r)[:, 1:] * (MASK[:, 1:] * MASK[:, :-1]))

  g_fused, g_ref = jax.grad(fused_loss, argnums=(0, 1))(params, ref_params)
  g_dense = jax.grad(dense_loss)(params)
  for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_dense)):
    np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(g_ref))


def test_kl_without_reference_is_an_error():
  config = models.get_preset("tiny-llama")
  params = models.init_params(config, jax.random.key(0))
  with pytest.raises(ValueError, match="needs ref_params"):
    models.token_logprobs(config, params, TOKENS, MASK, want_kl="k3")

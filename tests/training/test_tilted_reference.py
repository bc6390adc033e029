"""RAPO's chunked tilted-reference normaliser equals the dense one (and a NumPy transcription)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import models
from jaxrl_llm.losses import rapo
from jaxrl_llm.training import tilted_reference


def _numpy_lognorm(h, w, phi, tau):
  z = (np.asarray(h, np.float64) @ np.asarray(w, np.float64)) / tau
  logp = z - np.log(np.exp(z - z.max(-1, keepdims=True)).sum(-1, keepdims=True)) - z.max(
      -1, keepdims=True)
  return np.log((np.exp(logp) ** np.asarray(phi, np.float64)[:, None]).sum(-1))


@pytest.mark.parametrize("chunk_size", [1, 4, 7, 100])
def test_chunked_equals_dense_and_numpy(chunk_size):
  k = jax.random.split(jax.random.key(0), 3)
  h = jax.random.normal(k[0], (11, 6))
  w = jax.random.normal(k[1], (6, 13))
  phi = jax.random.uniform(k[2], (11,))
  got = tilted_reference.chunked_tilted_lognorm(h, w, phi, temperature=0.8,
                                                chunk_size=chunk_size)
  dense = rapo.tilted_lognorm_from_logits((h @ w) / 0.8, phi)
  np.testing.assert_allclose(got, dense, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got, _numpy_lognorm(h, w, phi, 0.8), rtol=1e-5, atol=1e-5)


def test_chunked_never_builds_all_logits():
  h = jnp.ones((64, 4))
  w = jnp.ones((4, 50))
  jaxpr = str(jax.make_jaxpr(lambda a, b, c: tilted_reference.chunked_tilted_lognorm(
      a, b, c, chunk_size=8))(h, w, jnp.ones(64)))
  assert "8,50" in jaxpr.replace(" ", "") and "64,50" not in jaxpr.replace(" ", "")


def test_ref_tilted_lognorm_on_a_model_matches_dense_logits():
  config = models.ModelConfig(family="llama", vocab_size=19, hidden_size=16,
                              intermediate_size=24, num_layers=1, num_heads=2, num_kv_heads=1,
                              head_dim=8)
  params = models.init_params(config, jax.random.key(1))
  prompts = jnp.array([[0, 1, 5, 6], [1, 7, 8, 9]])
  prompt_mask = jnp.array([[0, 1, 1, 1], [1, 1, 1, 1]])
  comps = jnp.array([[10, 11, 2], [12, 2, 0]])
  comp_mask = jnp.array([[1, 1, 1], [1, 1, 0]])
  phi = jnp.array([0.3, 0.9])
  got = tilted_reference.ref_tilted_lognorm(config, params, prompts, prompt_mask, comps,
                                            comp_mask, phi, temperature=1.3, chunk_size=4)
  tokens = jnp.concatenate([prompts, comps], 1)
  mask = jnp.concatenate([prompt_mask, comp_mask], 1)
  logits = models.forward(config, params, tokens, mask)[:, 3:-1] / 1.3   # predict completions
  want = rapo.tilted_lognorm_from_logits(logits, phi[:, None])
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  with pytest.raises(ValueError, match="chunk_size"):
    tilted_reference.chunked_tilted_lognorm(jnp.ones((2, 3)), jnp.ones((3, 4)), jnp.ones(2),
                                            chunk_size=0)


def test_prepare_fills_the_normaliser_for_rapo():
  import optax
  from jaxrl_llm import training
  config = models.ModelConfig(family="llama", vocab_size=19, hidden_size=16,
                              intermediate_size=24, num_layers=1, num_heads=2, num_kv_heads=1,
                              head_dim=8)
  params = models.init_params(config, jax.random.key(1))
  ref = models.init_params(config, jax.random.key(2))
  prompts = jnp.array([[0, 1, 5, 6], [1, 7, 8, 9]])
  prompt_mask = jnp.array([[0, 1, 1, 1], [1, 1, 1, 1]])
  comps = jnp.array([[10, 11, 2], [12, 2, 0]])
  comp_mask = jnp.array([[1, 1, 1], [1, 1, 0]])
  batch = training.make_rollout_batch(prompts, prompt_mask, comps, comp_mask,
                                      jnp.zeros((2, 3)), jnp.array([0.0, 1.0]), group_size=2)
  with pytest.raises(ValueError, match="chunk_size_typo"):
    training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="rapo",
                          prepare_extras_kwargs={"chunk_size_typo": 2})
  step = training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="rapo",
                               loss_kwargs={"phi_min": 0.2}, temperature=0.9,
                               prepare_extras_kwargs={"chunk_size": 2}, logprob_impl="dense")
  state = training.init_train_state(params, optax.sgd(0.0))
  with pytest.raises(ValueError, match="ref_params"):
    step.prepare(state, batch)
  prepared, metrics = jax.jit(step.prepare)(state, batch, ref)  # jit: eager is slower
  # phi = 0.2 + 0.8 r = (0.2, 1.0) under the loss's phi_min, from the reference (not the policy).
  logits = models.forward(config, ref, jnp.concatenate([prompts, comps], 1),
                          jnp.concatenate([prompt_mask, comp_mask], 1))[:, 3:-1] / 0.9
  want = rapo.tilted_lognorm_from_logits(logits, jnp.array([[0.2], [1.0]]))
  np.testing.assert_allclose(prepared.extras["ref_tilted_lognorm"], want, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(prepared.extras["ref_tilted_lognorm"][1], 0.0, atol=1e-5)
  assert np.isfinite(metrics["tilted_lognorm_mean"])
  _, m = jax.jit(step.update)(state, prepared)
  assert np.isfinite(m["forward_kl"]) and np.isfinite(m["loss"])

"""generate(sample_chunk=C): chunked group sampling equals the one-call per-row-key
stream bitwise; per-row keys by hand; the default stream is untouched; errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import models, sampling
from jaxrl_llm.sampling import filters

PROMPTS = np.array([[0, 0, 0, 0, 11, 12, 13],
                    [21, 22, 23, 24, 25, 26, 27],
                    [0, 0, 31, 32, 33, 34, 35]], np.int32)
PROMPT_MASK = (np.arange(7)[None] >= np.array([4, 0, 2])[:, None]).astype(np.int32)
# Prompt 0 forces 2 tokens, prompt 2 one; prompt 1 samples from the start.
PREFIX = np.array([[5, 6, -1], [-1, -1, -1], [7, -1, -1]], np.int32)


@pytest.fixture(scope="module")
def model():
  config = models.get_preset("tiny-llama", vocab_size=64, max_position_embeddings=128)
  return config, models.init_params(config, jax.random.key(0))


def _gen(model, chunk, key=3, **kw):
  config, params = model
  kw = {"max_new_tokens": 10, "num_samples": 8, "stop_tokens": (3,), "top_p": 0.9,
        "prefix_tokens": PREFIX, **kw}
  return jax.device_get(sampling.generate(config, params, PROMPTS, PROMPT_MASK,
                                          jax.random.key(key), sample_chunk=chunk, **kw))


def test_chunked_equals_one_call_bitwise(model):
  one = _gen(model, 8)
  assert one.lengths.min() < 10 < one.lengths.max() + 1  # some rows stop on token 3 early
  for chunk in (2,):  # one compiled chunk shape keeps the test fast; any divisor works
    out = _gen(model, chunk)
    for field in one._fields:  # tokens, all three log-probs, masks, forced, finish reasons
      np.testing.assert_array_equal(getattr(out, field), getattr(one, field), err_msg=field)
  np.testing.assert_array_equal(one.prompt_index, np.repeat([0, 1, 2], 8))
  # Forced prefixes land on their prompt's rows in the one-shot order.
  np.testing.assert_array_equal(one.tokens[:8, :2], np.tile([5, 6], (8, 1)))
  np.testing.assert_array_equal(one.tokens[16:, 0], np.full(8, 7))
  assert not one.forced[8:16].any()
  # The 8 samples of a prompt differ (distinct per-row streams), and another key differs.
  assert len({tuple(r) for r in one.tokens[8:16]}) > 1
  assert not np.array_equal(_gen(model, 8, key=4).tokens, one.tokens)


def test_per_row_stream_at_a_later_step(model):
  # sample_chunk=C: row r's draw at step t uses uniform(fold_in(fold_in(key, t), r), (1,)).
  config, params = model
  out = _gen(model, 8, top_p=None)
  for r in [r for r in range(8, 16) if out.tokens[r, 0] != 3]:
    seq = jnp.asarray(np.append(PROMPTS[1], out.tokens[r, 0])[None])
    w = np.exp(np.asarray(models.forward(config, params, seq)[0, -1], np.float64))
    cdf = np.cumsum(w)
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(3), 1), r)
    u = float(jax.random.uniform(key, (1,), jnp.float32)[0])
    assert out.tokens[r, 1] == int(np.argmax(cdf > u * cdf[-1])), r


def test_chunked_greedy_equals_default_greedy(model):
  # Greedy draws no key: every stream gives the argmax path.
  a = _gen(model, 2, temperature=0.0)
  b = _gen(model, None, temperature=0.0)
  np.testing.assert_array_equal(a.tokens, b.tokens)
  np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-6)


def test_per_row_keys_by_hand():
  # Row r draws token = first i with cdf_i > u_r * cdf_V, u_r = uniform(key_r): computed
  # here in NumPy from the keys' own uniforms.
  logits = jnp.asarray(np.random.default_rng(0).normal(size=(5, 11)), jnp.float32)
  keys = jax.vmap(lambda r: jax.random.fold_in(jax.random.key(7), r))(jnp.arange(5))
  got = np.asarray(filters.categorical_inverse_cdf(keys, logits))
  w = np.exp(np.asarray(logits, np.float64) - np.asarray(logits).max(-1, keepdims=True))
  cdf = np.cumsum(w, -1)
  for r in range(5):
    u = float(jax.random.uniform(keys[r], (1,), jnp.float32)[0])
    assert got[r] == int(np.argmax(cdf[r] > u * cdf[r, -1]))
  # A row's draw depends on its own key only: rows 1..3 alone draw the same tokens.
  np.testing.assert_array_equal(
      np.asarray(filters.categorical_inverse_cdf(keys[1:4], logits[1:4])), got[1:4])
  # Raw uint32 keys work too; a wrong number of keys is an error.
  raw = jax.vmap(lambda r: jax.random.fold_in(jax.random.PRNGKey(7), r))(jnp.arange(5))
  assert filters.is_key_batch(raw) and not filters.is_key_batch(jax.random.PRNGKey(7))
  assert filters.categorical_inverse_cdf(raw, logits).shape == (5,)
  with pytest.raises(ValueError, match="one key per row"):
    filters.categorical_inverse_cdf(keys[:3], logits)


def test_default_stream_is_the_shared_step_key(model):
  # sample_chunk=None keeps the one-key-per-step draws: the first token of prompt 1's
  # rows (nothing forced) is the inverse-CDF draw of row r's entry of
  # uniform(fold_in(key, 0), (R, 1)) on the prompt's next-token logits (plain forward).
  config, params = model
  out = _gen(model, None, top_p=None)  # no filter: the draw is from softmax(logits)
  logits = models.forward(config, params, jnp.asarray(PROMPTS[1:2]))[0, -1]
  w = np.exp(np.asarray(logits, np.float64) - float(np.max(logits)))
  cdf = np.cumsum(w)
  u = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.key(3), 0), (24, 1)))[:, 0]
  for r in range(8, 16):
    assert out.tokens[r, 0] == int(np.argmax(cdf > u[r] * cdf[-1]))
  # Step 1 (the sampler draws all steps' uniforms before its loop): row r's second token
  # is the draw of uniform(fold_in(key, 1), (R, 1))[r] on the logits after its first.
  u1 = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.key(3), 1), (24, 1)))[:, 0]
  live = [r for r in range(8, 16) if out.tokens[r, 0] != 3]  # 3 is the stop token
  assert live
  for r in live:
    seq = jnp.asarray(np.append(PROMPTS[1], out.tokens[r, 0])[None])
    w = np.exp(np.asarray(models.forward(config, params, seq)[0, -1], np.float64))
    cdf = np.cumsum(w)
    assert out.tokens[r, 1] == int(np.argmax(cdf > u1[r] * cdf[-1])), r


def test_sample_chunk_errors(model):
  for bad in (3, 0, -2, True, 2.0):
    with pytest.raises(ValueError, match="sample_chunk"):
      _gen(model, bad)

"""Sampling filters: exact masks against transformers' logits warpers, and draw frequencies."""

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers.generation.logits_process import (MinPLogitsWarper, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

from jaxrl_llm.sampling import filters
from jaxrl_llm.sampling import (SamplingParams, filter_logits, sample_from_logits, top_k_mask,
                                top_p_mask, validate_sampling_params)


def _reference_distribution(logits, temperature, top_k, top_p, min_p):
  """NumPy transcription of the definitions: temperature, top-k, top-p, min-p, renormalise."""
  x = np.asarray(logits, np.float64) / temperature
  order = np.argsort(-x)
  keep = np.zeros(x.shape, bool)
  keep[order[:top_k or len(x)]] = True
  if top_p is not None:
    p = np.where(keep, np.exp(x - x.max()), 0.0)
    p /= p.sum()
    mass_before = 0.0
    for i in order:  # most probable first
      if keep[i]:
        keep[i] = mass_before < top_p
        mass_before += p[i]
  if min_p is not None:
    keep &= x >= x[keep].max() + np.log(min_p)
  q = np.where(keep, np.exp(x - x.max()), 0.0)
  return q / q.sum()


def _hf_warped(logits, temperature, top_k, top_p, min_p):
  scores = torch.tensor(np.asarray(logits), dtype=torch.float32)
  warpers = [TemperatureLogitsWarper(temperature)]
  if top_k is not None:
    warpers.append(TopKLogitsWarper(top_k))
  if top_p is not None:
    warpers.append(TopPLogitsWarper(top_p))
  if min_p is not None:
    warpers.append(MinPLogitsWarper(min_p))
  for w in warpers:
    scores = w(None, scores)
  return scores.numpy()


SETTINGS = [  # (temperature, top_k, top_p, min_p)
    (1.0, 3, None, None),
    (1.0, None, 0.8, None),
    (1.0, 6, 0.7, None),
    (1.0, None, None, 0.2),
    (0.5, 5, 0.9, 0.05),
    (2.0, None, 0.6, 0.3),
]


@pytest.mark.parametrize("setting", SETTINGS)
def test_filter_logits_matches_transformers_warpers(setting):
  # Reference implementation: HF's warpers. Random logits (no ties) with varied peakedness.
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(16, 50)) * rng.uniform(0.3, 4.0, size=(16, 1))
  ours = np.asarray(filter_logits(jnp.asarray(logits, jnp.float32), SamplingParams(*setting)))
  theirs = _hf_warped(logits, *setting)
  np.testing.assert_array_equal(np.isfinite(ours), np.isfinite(theirs))
  np.testing.assert_allclose(ours[np.isfinite(ours)], theirs[np.isfinite(theirs)], rtol=1e-6)


def test_top_p_bisection_equals_sorted_definition():
  rng = np.random.default_rng(1)
  logits = rng.normal(size=(32, 200)) * rng.uniform(0.1, 8.0, size=(32, 1))
  mask_fn = jax.jit(top_p_mask, static_argnums=1)
  for top_p in (0.05, 0.5, 0.9, 0.999):
    mask = np.asarray(mask_fn(jnp.asarray(logits, jnp.float32), top_p))
    for row, m in zip(logits, mask):
      expected = _reference_distribution(row, 1.0, None, top_p, None) > 0
      np.testing.assert_array_equal(m, expected)


def test_top_p_with_ties_filtered_tokens_and_large_vocabularies():
  # Definition, transcribed in float64: keep i iff M_i = Σ_{j: p_j > p_i} p_j < top_p
  # (ties at the threshold all kept). Tokens whose M_i is within 1e-5 of top_p may go
  # either way under float32 sums and are not checked.
  rng = np.random.default_rng(2)
  mask_fn = jax.jit(top_p_mask, static_argnums=1)
  for vocab, rows in ((512, 24), (32000, 4)):
    logits = rng.normal(size=(rows, vocab)) * rng.uniform(0.02, 6.0, size=(rows, 1))
    logits[rng.random((rows, vocab)) < 0.2] = -np.inf  # filtered (p = 0)
    logits[:, : vocab // 8] = logits[:, vocab // 8: vocab // 4]  # exact ties
    logits = logits.astype(np.float32)
    probs = np.asarray(jax.nn.softmax(jnp.asarray(logits), axis=-1), np.float64)
    for top_p in (0.1, 0.7, 0.95):
      mask = np.asarray(mask_fn(jnp.asarray(logits), top_p))
      for r in range(rows):
        order = np.argsort(-probs[r], kind="stable")
        sorted_p = probs[r][order]
        cum = np.concatenate([[0.0], np.cumsum(sorted_p)])
        first = np.searchsorted(-sorted_p, -sorted_p, side="left")  # first of each tie run
        mass_above = np.empty(vocab)
        mass_above[order] = cum[first]
        clear = np.abs(mass_above - top_p) > 1e-5
        np.testing.assert_array_equal(mask[r][clear], (mass_above < top_p)[clear],
                                      err_msg=f"V={vocab} row {r} top_p={top_p}")
        assert clear.sum() > 0.9 * vocab
        # A tie run is kept or dropped whole.
        assert np.all(mask[r, : vocab // 8] == mask[r, vocab // 8: vocab // 4])


_jit_draw = jax.jit(sample_from_logits)


def test_top_k_bisection_keeps_the_k_largest_with_ties():
  rng = np.random.default_rng(3)
  # Mixed signs, huge and tiny magnitudes, -inf, and deliberate ties.
  logits = rng.normal(size=(24, 300)) * rng.uniform(0.01, 50.0, size=(24, 1))
  logits[:, :10] = logits[:, 10:11]  # a ten-way tie
  logits[0, 50:] = -np.inf
  logits = logits.astype(np.float32)
  mask_fn = jax.jit(top_k_mask)  # k traced: one compilation for every k
  compiled = mask_fn._cache_size()
  for k in (1, 2, 7, 10, 11, 50, 299, 300):
    mask = np.asarray(mask_fn(jnp.asarray(logits), k))
    for row, m in zip(logits, mask):
      kth = np.sort(row)[::-1][k - 1]
      np.testing.assert_array_equal(m, row >= kth)  # ties with the k-th are kept (as HF)
  assert mask_fn._cache_size() == compiled + 1


# A fixed 8-token logit vector; each setting keeps a different subset.
LOGITS = np.array([2.0, 1.5, 1.2, 0.3, 0.0, -0.5, -1.0, -3.0], np.float32)
NUM_DRAWS = 40_000


@pytest.mark.parametrize("setting", SETTINGS)
def test_draw_frequencies_match_truncated_distribution(setting):
  expected = _reference_distribution(LOGITS, *setting)
  logits = jnp.broadcast_to(jnp.asarray(LOGITS), (NUM_DRAWS, LOGITS.size))
  # Settings as traced arrays (the sampler's form): one compilation for every setting.
  params = validate_sampling_params(SamplingParams(*setting), LOGITS.size)
  draw = _jit_draw(logits, jax.random.key(7), params)
  counts = np.bincount(np.asarray(draw.token), minlength=LOGITS.size)
  freq = counts / NUM_DRAWS
  # Excluded tokens must never be drawn.
  assert np.all(counts[expected == 0] == 0), (counts, expected)
  # Each kept token's count is Binomial(n, q_i): its frequency has standard deviation
  # sqrt(q_i (1 - q_i) / n) <= 0.0025 at n = 40k. A 5-sigma band per token has a
  # two-sided false-alarm probability of 6e-7 per token (<1e-5 over all the cells of
  # all settings), yet catches any error in q_i larger than ~0.012.
  sigma = np.sqrt(expected * (1 - expected) / NUM_DRAWS)
  np.testing.assert_array_less(np.abs(freq - expected), 5 * sigma + 1e-12)
  # The reported log-probs are those of the sampled token under both distributions.
  model_logp = LOGITS - np.log(np.exp(LOGITS.astype(np.float64)).sum())
  tok = np.asarray(draw.token)
  np.testing.assert_allclose(np.asarray(draw.logprob), model_logp[tok], atol=1e-5)
  np.testing.assert_allclose(np.asarray(draw.sampling_logprob), np.log(expected[tok]), atol=1e-5)


def test_greedy_is_argmax_with_zero_sampling_logprob():
  rng = np.random.default_rng(2)
  logits = jnp.asarray(rng.normal(size=(5, 40)), jnp.float32)
  draw = sample_from_logits(logits, jax.random.key(0), SamplingParams(0.0, 3, 0.5, None))
  np.testing.assert_array_equal(np.asarray(draw.token), np.argmax(np.asarray(logits), -1))
  np.testing.assert_array_equal(np.asarray(draw.sampling_logprob), 0.0)
  # Greedy is a traced switch: the same compiled draw serves temperature 0 and 1.
  fn = jax.jit(sample_from_logits)
  compiled = fn._cache_size()  # (jit caches are shared by every jit of one function)
  for t in (0.0, 1.0, 0.0):
    draw = fn(logits, jax.random.key(0), validate_sampling_params(SamplingParams(t), 40))
    if t == 0.0:
      np.testing.assert_array_equal(np.asarray(draw.token), np.argmax(np.asarray(logits), -1))
  assert fn._cache_size() == compiled + 1


@pytest.mark.parametrize("setting", [(1.0, 8, 0.9, 0.1), (1.0, None, 0.9, 0.1)])
def test_no_full_vocabulary_sort(setting):
  jaxpr = jax.make_jaxpr(lambda x, k: sample_from_logits(x, k, SamplingParams(*setting)))(
      jnp.zeros((2, 1000)), jax.random.key(0))

  def primitives(jaxpr):
    for eqn in jaxpr.eqns:
      yield eqn.primitive.name
      for sub in jax.extend.core.jaxprs_in_params(eqn.params):
        yield from primitives(sub)

  names = set(primitives(jaxpr.jaxpr))
  # Exact top-k for a traced k without sorting: no sort, and no static-k lax.top_k.
  assert "sort" not in names and "top_k" not in names, names


@pytest.mark.parametrize("kwargs, field", [
    (dict(top_p=0.0), "top_p"), (dict(top_p=1.5), "top_p"), (dict(top_p=-0.1), "top_p"),
    (dict(top_k=0), "top_k"), (dict(temperature=-1.0), "temperature"),
    (dict(min_p=1.5), "min_p"),
])
def test_bad_settings_raise(kwargs, field):
  with pytest.raises(ValueError, match=field):
    validate_sampling_params(SamplingParams()._replace(**kwargs), vocab_size=10)


def test_two_level_inverse_cdf_by_hand():
  # V = 5000 > the flat-cumsum limit: blocks of 128 tokens, the last one padded. Row r
  # must draw the first i with C_i > u_r C_V, u_r = uniform(key_r), computed here in
  # float64 from the keys' own uniforms. float32 partial sums may move a boundary by
  # ~1e-6 C_V; a draw that differs from the float64 one must sit within that distance
  # of the boundary it crossed (any other difference is a bug).
  vocab, rows = 5000, 512
  rng = np.random.default_rng(3)
  logits = rng.normal(scale=2.0, size=(rows, vocab)).astype(np.float32)
  logits[rng.random((rows, vocab)) < 0.5] = -np.inf  # filtered tokens, some whole blocks:
  logits[:, 4700:] = -np.inf                         # the last blocks hold no mass at all
  keys = jax.vmap(lambda r: jax.random.fold_in(jax.random.key(11), r))(jnp.arange(rows))
  got = np.asarray(jax.jit(filters.categorical_inverse_cdf)(keys, jnp.asarray(logits)))
  u = np.asarray(jax.vmap(lambda k: jax.random.uniform(k, (1,), jnp.float32)[0])(keys),
                 np.float64)
  w = np.exp(logits.astype(np.float64) - logits.max(-1, keepdims=True))
  cdf = np.cumsum(w, -1)
  target = u * cdf[:, -1]
  want = np.argmax(cdf > target[:, None], axis=-1)
  assert np.all(np.isfinite(logits[np.arange(rows), got])), "drew a filtered token"
  differ = np.flatnonzero(got != want)
  for r in differ:
    lo, hi = sorted((got[r], want[r]))
    assert abs(cdf[r, lo] - target[r]) < 1e-5 * cdf[r, -1], (r, got[r], want[r])
    assert hi - lo == 1 or np.all(w[r, lo + 1:hi] == 0), (r, got[r], want[r])
  assert len(differ) <= 5, len(differ)


def test_first_above_never_lands_on_zero_weight():
  cdf = jnp.asarray([[1.0, 2.0, 2.0, 2.0]])
  weights = jnp.asarray([[1.0, 1.0, 0.0, 0.0]])
  # Rounding left nothing above the target: the last positive-weight index, not 3.
  assert int(filters._first_above(cdf, jnp.asarray([[2.0]]), weights)[0]) == 1
  assert int(filters._first_above(cdf, jnp.asarray([[1.5]]), weights)[0]) == 1
  assert int(filters._first_above(cdf, jnp.asarray([[0.0]]), weights)[0]) == 0


def test_sampling_logprob_on_a_large_vocabulary():
  # The draw's sampling log-prob comes from the two-level normaliser: it must equal the
  # float64 log-softmax of the filtered logits at the drawn token.
  vocab = 3000
  logits = jnp.asarray(np.random.default_rng(4).normal(size=(6, vocab)), jnp.float32)
  params = validate_sampling_params(SamplingParams(0.7, 50, 0.9, None), vocab)
  draw = sample_from_logits(logits, jax.random.key(5), params)
  filtered = np.asarray(filter_logits(logits, params), np.float64)
  tok = np.asarray(draw.token)
  assert np.all(np.isfinite(filtered[np.arange(6), tok]))
  ref = filtered - np.log(np.exp(filtered - filtered.max(-1, keepdims=True)).sum(-1,
                          keepdims=True)) - filtered.max(-1, keepdims=True)
  np.testing.assert_allclose(np.asarray(draw.sampling_logprob), ref[np.arange(6), tok],
                             atol=1e-5)
  x = np.asarray(logits, np.float64)
  model = x - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)) - x.max(
      -1, keepdims=True)
  np.testing.assert_allclose(np.asarray(draw.logprob), model[np.arange(6), tok], atol=1e-5)

"""Sampling filters: temperature, top-k, top-p (nucleus) and min-p, and one draw.

All filters act on a row of logits ``ℓ ∈ R^V`` and return logits where excluded
tokens are ``-inf``, so the sampling distribution is ``softmax(filtered / T)``
renormalised over the kept set. They compose in the order used by Hugging Face
``generate``: temperature, then top-k, then top-p, then min-p, each step
applied to the distribution left by the previous one.

* top-k keeps the k largest logits.
* top-p (Holtzman et al., 2020, "The Curious Case of Neural Text
  Degeneration") keeps token i iff the probability mass of the tokens strictly
  more probable than i is < p, i.e. the smallest set of most probable tokens
  whose mass reaches p.
* min-p (Nguyen et al., 2024, "Turning Up the Heat: Min-p Sampling for Creative
  and Coherent LLM Outputs") keeps token i iff p_i >= min_p · max_j p_j, i.e.
  ℓ_i/T >= max_j ℓ_j/T + log(min_p).

No full-vocabulary sort is ever done. With top-k, `jax.lax.top_k` picks k
candidates (already sorted) and top-p / min-p act on those k only. Without
top-k, the top-p threshold is found by bisection over the bit patterns of the
(non-negative, float32) probabilities: 31 masked sums over the vocabulary find
the exact threshold, against a sort of V elements that is slow on CPU and is a
known pitfall of simple JAX samplers.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


class SamplingParams(NamedTuple):
  """Static sampling settings (hashable, so they can be jit static arguments)."""

  temperature: float = 1.0
  top_k: Optional[int] = None
  top_p: Optional[float] = None
  min_p: Optional[float] = None

  @property
  def greedy(self) -> bool:
    return self.temperature == 0.0


def validate_sampling_params(params: SamplingParams, vocab_size: int) -> SamplingParams:
  """Checks ranges and returns normalised settings (no-op filters dropped)."""
  t, k, p, m = params
  if not isinstance(t, (int, float)) or t < 0 or t != t:
    raise ValueError(f"temperature must be a float >= 0 (0 = greedy), got {t!r}")
  if k is not None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
      raise ValueError(f"top_k must be a positive int or None, got {k!r}")
    if k >= vocab_size:
      k = None  # keeps everything
  if p is not None:
    if not isinstance(p, (int, float)) or not 0.0 < p <= 1.0:
      raise ValueError(f"top_p must lie in (0, 1], got {p!r}")
    if p == 1.0:
      p = None
  if m is not None:
    if not isinstance(m, (int, float)) or not 0.0 <= m <= 1.0:
      raise ValueError(f"min_p must lie in [0, 1], got {m!r}")
    if m == 0.0:
      m = None
  return SamplingParams(float(t), k, None if p is None else float(p),
                        None if m is None else float(m))


def top_p_mask_sorted(sorted_logits: jax.Array, top_p: float) -> jax.Array:
  """Top-p keep-mask for logits sorted in descending order along the last axis.

  keep_i = (Σ_{j<i} p_j) < top_p with p = softmax(sorted_logits); the first
  (most probable) entry is always kept.
  """
  probs = jax.nn.softmax(sorted_logits, axis=-1)
  mass_before = jnp.cumsum(probs, axis=-1) - probs
  keep = mass_before < top_p
  return keep.at[..., 0].set(True)


def top_p_mask(logits: jax.Array, top_p: float, num_iters: int = 31) -> jax.Array:
  """Top-p keep-mask over unsorted logits ``[..., V]``, by bisection (no sort).

  keep_i ⟺ M(p_i) < top_p, where M(v) = Σ_{j: p_j > v} p_j is non-increasing
  in v, so the kept set is {i : p_i >= v*} with v* the smallest float with
  M(v*) < top_p. Non-negative float32 values order like their int32 bit
  patterns, so bisecting over integers in [0, 0x7F800000] for 31 steps finds v*
  exactly. Ties at the threshold are all kept.
  """
  probs = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
  bits = jax.lax.bitcast_convert_type(probs, jnp.int32)
  batch_shape = probs.shape[:-1]

  def mass_above(v):  # M(v) for integer bit patterns v [...]
    return jnp.sum(jnp.where(bits > v[..., None], probs, 0.0), axis=-1)

  # Invariant: M(hi) < top_p (hi = max bit pattern: nothing above it, M = 0);
  # lo = -1 is "below everything", where M = 1 >= top_p unless top_p == 1.
  lo = jnp.full(batch_shape, -1, jnp.int32)
  hi = jnp.max(bits, axis=-1)

  def body(_, bounds):
    lo, hi = bounds
    mid = lo + (hi - lo) // 2
    ok = mass_above(mid) < top_p
    return jnp.where(ok, lo, mid), jnp.where(ok, mid, hi)

  lo, hi = jax.lax.fori_loop(0, num_iters, body, (lo, hi))
  # hi is now the smallest pattern with M(hi) < top_p (up to 31 halvings of a
  # 2^31-wide range, i.e. exact). Keep every token whose probability is >= it.
  return bits >= hi[..., None]


def filter_logits(logits: jax.Array, params: SamplingParams) -> jax.Array:
  """Temperature-scaled logits with filtered-out tokens set to -inf (full vocab).

  This is the reference form of the sampling distribution used by
  `sample_from_logits` (which avoids materialising it when top-k is set); the
  sampling log-probs are ``log_softmax(filter_logits(ℓ))``.
  """
  chex.assert_rank(logits, 2)
  t, k, p, m = params
  x = logits.astype(jnp.float32) / (t if t > 0 else 1.0)
  if k is not None:
    kth = jax.lax.top_k(x, k)[0][:, -1:]
    x = jnp.where(x >= kth, x, NEG_INF)
  if p is not None:
    x = jnp.where(top_p_mask(x, p), x, NEG_INF)
  if m is not None:
    x = jnp.where(x >= jnp.max(x, axis=-1, keepdims=True) + jnp.log(m), x, NEG_INF)
  return x


def categorical_inverse_cdf(key: jax.Array, logits: jax.Array) -> jax.Array:
  """One draw per row from softmax(logits) by inverting the CDF with a single uniform.

  With w_i = exp(ℓ_i - max ℓ) and C_i = Σ_{j<=i} w_j, the draw is the first i with
  C_i > u·C_V, u ~ U[0, 1): P(i) = w_i / C_V exactly (tokens with w_i = 0, i.e.
  filtered ones, are never chosen). One random number per row instead of the V
  Gumbel variates of `jax.random.categorical` (about 6x faster at V = 32k on CPU).
  """
  weights = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
  cdf = jnp.cumsum(weights, axis=-1)
  u = jax.random.uniform(key, logits.shape[:-1] + (1,), jnp.float32) * cdf[..., -1:]
  return jnp.argmax(cdf > u, axis=-1).astype(jnp.int32)


class Draw(NamedTuple):
  """One sampled token per row with its log-probs."""

  token: jax.Array  # [B] int32
  logprob: jax.Array  # [B] log p_model(token), temperature 1, no filters
  sampling_logprob: jax.Array  # [B] log q(token) under the filtered sampling distribution


def sample_from_logits(logits: jax.Array, key: jax.Array, params: SamplingParams) -> Draw:
  """Draws one token per row of ``logits [B, V]`` (float32) with the given filters.

  Greedy (temperature 0) takes the argmax and reports sampling log-prob 0. With
  top-k the draw happens among the k candidates from `lax.top_k` (top-p and
  min-p are applied to those, renormalised); otherwise over the full vocabulary
  with the bisection top-p mask.
  """
  chex.assert_rank(logits, 2)
  logits = logits.astype(jnp.float32)
  model_logprobs = jax.nn.log_softmax(logits, axis=-1)
  t, k, p, m = params
  if t == 0.0:
    token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    sampling_logprob = jnp.zeros(token.shape, jnp.float32)
  elif k is not None:
    values, indices = jax.lax.top_k(logits / t, k)  # sorted, descending
    if p is not None:
      values = jnp.where(top_p_mask_sorted(values, p), values, NEG_INF)
    if m is not None:
      values = jnp.where(values >= values[:, :1] + jnp.log(m), values, NEG_INF)
    choice = categorical_inverse_cdf(key, values)
    token = jnp.take_along_axis(indices, choice[:, None], axis=-1)[:, 0].astype(jnp.int32)
    sampling_logprob = jnp.take_along_axis(jax.nn.log_softmax(values, axis=-1),
                                           choice[:, None], axis=-1)[:, 0]
  else:
    filtered = filter_logits(logits, params)
    token = categorical_inverse_cdf(key, filtered)
    sampling_logprob = jnp.take_along_axis(jax.nn.log_softmax(filtered, axis=-1),
                                           token[:, None], axis=-1)[:, 0]
  logprob = jnp.take_along_axis(model_logprobs, token[:, None], axis=-1)[:, 0]
  return Draw(token, logprob, sampling_logprob)

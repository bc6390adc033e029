"""Decoder-only transformer (Llama / Qwen2 / Qwen3 families) in Flax.

Architecture (per layer, pre-norm):
    h = x + Attn(RMSNorm(x)),   y = h + W_down( silu(W_gate RMSNorm(h)) * W_up RMSNorm(h) )
with rotary position embeddings (Su et al., 2021, "RoFormer"), grouped-query
attention (Ainslie et al., 2023) and a SwiGLU MLP (Shazeer, 2020). Qwen2 adds
biases to the q/k/v projections; Qwen3 applies RMSNorm to every query and key
head before RoPE.

Layers are stacked with `nn.scan`, so every per-layer parameter has a leading
``layers`` axis: one compiled block regardless of depth. Every parameter carries
logical axis names (``vocab``, ``embed``, ``heads``, ``kv_heads``, ``head_dim``,
``mlp``, ``layers``, ``norm``) that `jaxrl_llm.sharding` maps to mesh axes.

The public functions are pure: ``f(config, params, arrays) -> arrays``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.models.config import ModelConfig

_INIT_STD = 0.02


class KVCache(NamedTuple):
  """Preallocated key/value cache, one slot per position: ``[L, B, S, KV, Dh]``."""

  k: jax.Array
  v: jax.Array


# --------------------------------------------------------------------------- RoPE
def rope_inv_freq(config: ModelConfig) -> np.ndarray:
  """Inverse frequencies θ^(-2i/d), with Llama-3 or linear scaling when configured."""
  dim = config.head_dim
  inv_freq = 1.0 / (config.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
  s = config.rope_scaling
  if s is None:
    return inv_freq.astype(np.float32)
  if s.rope_type == "linear":
    return (inv_freq / s.factor).astype(np.float32)
  # Llama 3: keep wavelengths < old_ctx/high_freq_factor, divide those > old_ctx/low_freq_factor
  # by `factor`, interpolate linearly in old_ctx/wavelength in between.
  old_ctx = s.original_max_position_embeddings
  low_wavelen = old_ctx / s.low_freq_factor
  high_wavelen = old_ctx / s.high_freq_factor
  wavelen = 2 * math.pi / inv_freq
  scaled = np.where(wavelen > low_wavelen, inv_freq / s.factor, inv_freq)
  smooth = (old_ctx / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
  smoothed = (1 - smooth) * scaled / s.factor + smooth * scaled
  is_medium = (wavelen >= high_wavelen) & (wavelen <= low_wavelen)
  return np.where(is_medium, smoothed, scaled).astype(np.float32)


def rope_cos_sin(config: ModelConfig, positions: jax.Array) -> tuple[jax.Array, jax.Array]:
  """cos/sin tables ``[B, T, 1, Dh]`` for integer ``positions [B, T]`` (float32)."""
  inv_freq = jnp.asarray(rope_inv_freq(config))
  freqs = positions.astype(jnp.float32)[..., None] * inv_freq
  emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
  return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
  """x·cos + rotate_half(x)·sin, rotate_half(x) = [-x₂, x₁] (the HF "half" layout)."""
  x1, x2 = jnp.split(x, 2, axis=-1)
  rotated = jnp.concatenate([-x2, x1], axis=-1)
  return (x * cos.astype(x.dtype) + rotated * sin.astype(x.dtype)).astype(x.dtype)


# ------------------------------------------------------------------------ modules
def _normal():
  return nn.initializers.normal(_INIT_STD)


class RMSNorm(nn.Module):
  """y = w ⊙ x / sqrt(mean(x²) + ε), statistics in float32 (Zhang & Sennrich, 2019)."""

  eps: float
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("norm",)),
                       (x.shape[-1],), self.param_dtype)
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return scale * y.astype(x.dtype)


class Attention(nn.Module):
  """Grouped-query self-attention over an optional preallocated KV cache."""

  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  def _proj(self, name, x, n_heads, heads_axis):
    c = self.config
    kernel = self.param(f"{name}_kernel",
                        nn.with_logical_partitioning(_normal(), ("embed", heads_axis, "head_dim")),
                        (c.hidden_size, n_heads, c.head_dim), self.param_dtype)
    y = jnp.einsum("btd,dhk->bthk", x, kernel.astype(x.dtype))
    if c.qkv_bias:
      bias = self.param(f"{name}_bias",
                        nn.with_logical_partitioning(nn.initializers.zeros, (heads_axis, "head_dim")),
                        (n_heads, c.head_dim), self.param_dtype)
      y = y + bias.astype(x.dtype)
    return y

  @nn.compact
  def __call__(self, x, cos, sin, mask, cache, cache_index):
    c = self.config
    q = self._proj("q", x, c.num_heads, "heads")
    k = self._proj("k", x, c.num_kv_heads, "kv_heads")
    v = self._proj("v", x, c.num_kv_heads, "kv_heads")
    if c.qk_norm:
      q = RMSNorm(c.rms_norm_eps, self.param_dtype, name="q_norm")(q)
      k = RMSNorm(c.rms_norm_eps, self.param_dtype, name="k_norm")(k)
    q = apply_rope(q, cos, sin)
    k = apply_rope(k, cos, sin)
    if cache is not None:
      k_cache, v_cache = cache
      k = jax.lax.dynamic_update_slice(k_cache, k.astype(k_cache.dtype), (0, cache_index, 0, 0))
      v = jax.lax.dynamic_update_slice(v_cache, v.astype(v_cache.dtype), (0, cache_index, 0, 0))
      new_cache = (k, v)
    else:
      new_cache = None
    b, t = q.shape[:2]
    groups = c.num_heads // c.num_kv_heads
    qg = q.reshape(b, t, c.num_kv_heads, groups, c.head_dim)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k.astype(q.dtype),
                        preferred_element_type=jnp.float32) / math.sqrt(c.head_dim)
    scores = jnp.where(mask[:, None, None, :, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v.astype(q.dtype))
    out = out.reshape(b, t, c.num_heads, c.head_dim)
    o_kernel = self.param("o_kernel",
                          nn.with_logical_partitioning(_normal(), ("heads", "head_dim", "embed")),
                          (c.num_heads, c.head_dim, c.hidden_size), self.param_dtype)
    return jnp.einsum("bthk,hkd->btd", out, o_kernel.astype(out.dtype)), new_cache


class MLP(nn.Module):
  """SwiGLU: W_down (silu(W_gate x) ⊙ W_up x)."""

  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    c = self.config
    def kernel(name, shape, axes):
      return self.param(name, nn.with_logical_partitioning(_normal(), axes), shape,
                        self.param_dtype).astype(x.dtype)
    gate = x @ kernel("gate_kernel", (c.hidden_size, c.intermediate_size), ("embed", "mlp"))
    up = x @ kernel("up_kernel", (c.hidden_size, c.intermediate_size), ("embed", "mlp"))
    return (nn.silu(gate) * up) @ kernel("down_kernel", (c.intermediate_size, c.hidden_size),
                                         ("mlp", "embed"))


class DecoderBlock(nn.Module):
  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, cos, sin, mask, cache, cache_index):
    c = self.config
    h = RMSNorm(c.rms_norm_eps, self.param_dtype, name="attn_norm")(x)
    a, new_cache = Attention(c, self.param_dtype, name="attn")(h, cos, sin, mask, cache, cache_index)
    x = x + a
    h = RMSNorm(c.rms_norm_eps, self.param_dtype, name="mlp_norm")(x)
    x = x + MLP(c, self.param_dtype, name="mlp")(h)
    return x, new_cache


class DecoderLM(nn.Module):
  """Token embedding → scanned decoder blocks → final RMSNorm (→ vocab head)."""

  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens, positions, mask, cache=None, cache_index=0, compute_logits=False):
    c = self.config
    embedding = self.param("embedding", nn.with_logical_partitioning(_normal(), ("vocab", "embed")),
                           (c.vocab_size, c.hidden_size), self.param_dtype)
    if not c.tie_word_embeddings:
      head = self.param("lm_head", nn.with_logical_partitioning(_normal(), ("embed", "vocab")),
                        (c.hidden_size, c.vocab_size), self.param_dtype)
    else:
      head = embedding.T
    x = jnp.take(embedding, tokens, axis=0)
    cos, sin = rope_cos_sin(c, positions)
    block = DecoderBlock
    if c.remat:
      block = nn.remat(block, prevent_cse=False)
    blocks = nn.scan(
        block,
        variable_axes={"params": 0},
        split_rngs={"params": True},
        in_axes=(nn.broadcast, nn.broadcast, nn.broadcast, 0, nn.broadcast),
        length=c.num_layers,
        metadata_params={nn.PARTITION_NAME: "layers"},
    )(c, self.param_dtype, name="layers")
    x, new_cache = blocks(x, cos, sin, mask, cache, cache_index)
    x = RMSNorm(c.rms_norm_eps, self.param_dtype, name="final_norm")(x)
    if compute_logits:
      return jnp.einsum("btd,dv->btv", x, head.astype(x.dtype),
                        preferred_element_type=jnp.float32), new_cache
    return x, new_cache


# ----------------------------------------------------------------- validation
def _is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def _check_inputs(config: ModelConfig, tokens, attention_mask, positions):
  if tokens.ndim != 2:
    raise ValueError(f"tokens must have shape [batch, length], got shape {tokens.shape}")
  if not jnp.issubdtype(tokens.dtype, jnp.integer):
    raise ValueError(f"tokens must be integers, got dtype {tokens.dtype}")
  for name, arr in (("attention_mask", attention_mask), ("positions", positions)):
    if arr is not None and arr.shape != tokens.shape:
      raise ValueError(f"{name} has shape {arr.shape}, expected the tokens' shape {tokens.shape}")
  if _is_concrete(tokens) and tokens.size:
    hi, lo = int(jnp.max(tokens)), int(jnp.min(tokens))
    if hi >= config.vocab_size or lo < 0:
      raise ValueError(
          f"tokens must lie in [0, vocab_size={config.vocab_size}), got values in [{lo}, {hi}]")


def default_positions(attention_mask: jax.Array) -> jax.Array:
  """Positions for a left-padded batch: cumsum(mask) - 1, clipped at 0 on padding."""
  return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)


def _causal_mask(attention_mask: jax.Array) -> jax.Array:
  t = attention_mask.shape[-1]
  causal = jnp.tril(jnp.ones((t, t), dtype=bool))
  return causal[None] & attention_mask.astype(bool)[:, None, :]


def _model(config: ModelConfig, params) -> DecoderLM:
  dtype = params["embedding"].dtype if "embedding" in params else jnp.float32
  return DecoderLM(config, dtype)


# ------------------------------------------------------------------ public API
def init_params(config: ModelConfig, key: jax.Array, dtype=jnp.float32):
  """Random parameters (normal(0.02) weights, unit norms, zero biases) as a plain pytree."""
  tokens = jnp.zeros((1, 1), jnp.int32)
  variables = DecoderLM(config, dtype).init(key, tokens, tokens, jnp.ones((1, 1, 1), bool))
  return nn.unbox(variables["params"])


def param_logical_axes(config: ModelConfig):
  """Pytree (same structure as params) of `PartitionSpec`s of logical axis names."""
  tokens = jnp.zeros((1, 1), jnp.int32)
  abstract = jax.eval_shape(
      lambda: DecoderLM(config).init(jax.random.key(0), tokens, tokens, jnp.ones((1, 1, 1), bool)))
  return nn.get_partition_spec(abstract["params"])


def param_shapes(config: ModelConfig, dtype=jnp.float32):
  """Pytree of `jax.ShapeDtypeStruct` of the parameters (no memory allocated)."""
  return jax.eval_shape(lambda: init_params(config, jax.random.key(0), dtype))


def hidden_states(config: ModelConfig, params, tokens, attention_mask=None, positions=None):
  """Final-norm hidden states ``[B, T, D]`` (the input of the vocab head).

  ``attention_mask [B, T]`` (1 = real token) supports left-padded batches; when
  ``positions`` is omitted they are ``cumsum(mask) - 1`` (or ``arange(T)``).
  """
  tokens = jnp.asarray(tokens)
  _check_inputs(config, tokens, attention_mask, positions)
  if attention_mask is None:
    attention_mask = jnp.ones(tokens.shape, bool)
  if positions is None:
    positions = default_positions(attention_mask)
  x, _ = _model(config, params).apply({"params": params}, tokens, positions,
                                      _causal_mask(attention_mask))
  return x


def unembed_weight(config: ModelConfig, params) -> jax.Array:
  """The vocab head ``W [D, V]`` (the transposed embedding when tied)."""
  if config.tie_word_embeddings:
    return params["embedding"].T
  return params["lm_head"]


def forward(config: ModelConfig, params, tokens, attention_mask=None, positions=None):
  """Logits ``[B, T, V]`` in float32."""
  h = hidden_states(config, params, tokens, attention_mask, positions)
  w = unembed_weight(config, params)
  return jnp.einsum("btd,dv->btv", h, w.astype(h.dtype), preferred_element_type=jnp.float32)


def init_cache(config: ModelConfig, batch_size: int, max_length: int, dtype=jnp.float32) -> KVCache:
  """Zeroed KV cache with ``max_length`` slots per row."""
  shape = (config.num_layers, batch_size, max_length, config.num_kv_heads, config.head_dim)
  return KVCache(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))


def forward_with_cache(config: ModelConfig, params, tokens, positions, kv_mask, cache: KVCache,
                       cache_index):
  """Runs ``tokens [B, T]`` written into cache slots ``[cache_index, cache_index + T)``.

  ``kv_mask [B, S]`` marks the cache slots holding real tokens (S = cache length);
  a query in slot ``cache_index + t`` attends to valid slots ``s <= cache_index + t``.
  Returns ``(hidden [B, T, D], new_cache)``; used for prefill and for decoding.
  """
  t = tokens.shape[1]
  s = cache.k.shape[2]
  query_slot = cache_index + jnp.arange(t)
  mask = (jnp.arange(s)[None, :] <= query_slot[:, None])[None] & kv_mask.astype(bool)[:, None, :]
  x, new_cache = _model(config, params).apply(
      {"params": params}, tokens, positions, mask, (cache.k, cache.v), cache_index)
  return x, KVCache(*new_cache)

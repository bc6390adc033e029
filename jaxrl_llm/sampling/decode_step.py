"""One-token decoder step with a decode-friendly KV-cache layout.

Same mathematics as `jaxrl_llm.models.transformer` (pre-norm blocks, RoPE, GQA,
SwiGLU; Qwen2 q/k/v biases; Qwen3 per-head q/k RMSNorm), specialised to T = 1:

* the cache is a tuple of per-layer buffers ``[B, KV, S, Dh]`` (heads before
  slots), so ``q·Kᵀ`` and ``softmax·V`` are plain batched matmuls over (B, KV)
  with no transposes of the cache;
* the layer loop is unrolled over per-layer buffers held in the decode loop's
  carry, so each step writes its one new slot in place with
  ``dynamic_update_slice`` instead of slicing and re-stacking a scanned
  ``[L, B, S, KV, Dh]`` cache (measured on CPU, that restacking and the cache
  transposes moved more bytes per step than the weight matmuls).

The prompt is still run by `models.forward_with_cache` (prefill); its cache is
converted once with `from_model_cache`. Equality with the model's own forward is
checked by the sampler tests (greedy vs transformers, log-probs vs `forward`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxrl_llm.models import KVCache, ModelConfig
from jaxrl_llm.models.transformer import apply_rope, rope_cos_sin


class DecodeCache(NamedTuple):
  """Per-layer key/value buffers, each ``[B, KV, S, Dh]``."""

  k: tuple[jax.Array, ...]
  v: tuple[jax.Array, ...]


DECODE_CACHE_AXES = ("batch", "kv_heads", "cache_length", "head_dim")


def from_model_cache(cache: KVCache) -> DecodeCache:
  """``[L, B, S, KV, Dh]`` (`models.KVCache`) -> L buffers ``[B, KV, S, Dh]``."""
  split = lambda c: tuple(jnp.swapaxes(c[i], 1, 2) for i in range(c.shape[0]))
  return DecodeCache(split(cache.k), split(cache.v))


def split_layers(params) -> list:
  """The scanned ``params["layers"]`` as a list of per-layer parameter trees."""
  layers = params["layers"]
  num_layers = jax.tree.leaves(layers)[0].shape[0]
  return [jax.tree.map(lambda x, i=i: x[i], layers) for i in range(num_layers)]


def _rms_norm(x, scale, eps):
  """scale ⊙ x / sqrt(mean(x²) + ε), statistics in float32."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return scale * y.astype(x.dtype)


def _project(config, x, attn, name):
  y = jnp.einsum("bd,dhk->bhk", x, attn[f"{name}_kernel"].astype(x.dtype))
  if config.qkv_bias:
    y = y + attn[f"{name}_bias"].astype(x.dtype)
  return y


def decode_step(config: ModelConfig, params, layers: list, tokens: jax.Array,
                positions: jax.Array, kv_mask: jax.Array, cache: DecodeCache, index):
  """Runs one token per row: ``tokens, positions [B]``, written into cache slot ``index``.

  ``kv_mask [B, S]`` marks valid slots; the query attends to valid slots ``s <= index``.
  ``layers`` is `split_layers(params)` (split once, outside the decode loop).
  Returns ``(final-norm hidden [B, D], new cache)``.
  """
  c = config
  embedding = params["embedding"]
  x = jnp.take(embedding, tokens, axis=0)
  dtype = x.dtype
  cos, sin = rope_cos_sin(c, positions[:, None])  # [B, 1, 1, Dh]
  slots = cache.k[0].shape[2]
  visible = kv_mask.astype(bool) & (jnp.arange(slots)[None, :] <= index)  # [B, S]
  groups = c.num_heads // c.num_kv_heads
  new_k, new_v = [], []
  for layer, k_cache, v_cache in zip(layers, cache.k, cache.v):
    attn = layer["attn"]
    h = _rms_norm(x, layer["attn_norm"]["scale"], c.rms_norm_eps)
    q, k, v = (_project(c, h, attn, n) for n in ("q", "k", "v"))  # [B, heads, Dh]
    if c.qk_norm:
      q = _rms_norm(q, attn["q_norm"]["scale"], c.rms_norm_eps)
      k = _rms_norm(k, attn["k_norm"]["scale"], c.rms_norm_eps)
    q = apply_rope(q[:, None], cos, sin)[:, 0]
    k = apply_rope(k[:, None], cos, sin)[:, 0]
    k_cache = jax.lax.dynamic_update_slice(k_cache, k[:, :, None].astype(k_cache.dtype),
                                           (0, 0, index, 0))
    v_cache = jax.lax.dynamic_update_slice(v_cache, v[:, :, None].astype(v_cache.dtype),
                                           (0, 0, index, 0))
    new_k.append(k_cache)
    new_v.append(v_cache)
    qg = q.reshape(q.shape[0], c.num_kv_heads, groups, c.head_dim)
    scores = jnp.einsum("bkgd,bksd->bkgs", qg, k_cache.astype(dtype),
                        preferred_element_type=jnp.float32) / math.sqrt(c.head_dim)
    scores = jnp.where(visible[:, None, None, :], scores, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(scores, axis=-1).astype(dtype)
    out = jnp.einsum("bkgs,bksd->bkgd", probs, v_cache.astype(dtype))
    out = out.reshape(out.shape[0], c.num_heads, c.head_dim)
    x = x + jnp.einsum("bhk,hkd->bd", out, attn["o_kernel"].astype(dtype))
    mlp = layer["mlp"]
    h = _rms_norm(x, layer["mlp_norm"]["scale"], c.rms_norm_eps)
    gate = h @ mlp["gate_kernel"].astype(dtype)
    up = h @ mlp["up_kernel"].astype(dtype)
    x = x + (jax.nn.silu(gate) * up) @ mlp["down_kernel"].astype(dtype)
  x = _rms_norm(x, params["final_norm"]["scale"], c.rms_norm_eps)
  return x, DecodeCache(tuple(new_k), tuple(new_v))

"""Decoder-only transformer (Llama / Qwen2 / Qwen3 families) in Flax.

Architecture (per layer, pre-norm):
    h = x + Attn(RMSNorm(x)),   y = h + W_down( silu(W_gate RMSNorm(h)) * W_up RMSNorm(h) )
with rotary position embeddings (Su et al., 2021, "RoFormer"), grouped-query
attention (Ainslie et al., 2023) and a SwiGLU MLP (Shazeer, 2020). Qwen2 adds
biases to the q/k/v projections; Qwen3 applies RMSNorm to every query and key
head before RoPE.

The block is one pure function, `block_apply(config, layer_params, x, ...)`,
called by training (`hidden_states`/`forward`), prefill and decode
(`forward_with_cache`). Every per-layer parameter has a leading ``layers`` axis
(declared with `nn.scan`); `apply_layers` either scans over it
(``ModelConfig.scans_layers``: one compiled block regardless of depth) or unrolls
the layer loop, and with a KV cache always unrolls over per-layer buffers
(`KVCache`) that each step updates in place. Every parameter carries logical
axis names (``vocab``, ``embed``, ``heads``, ``kv_heads``, ``head_dim``,
``mlp``, ``layers``, ``norm``) that `jaxrl_llm.sharding` maps to mesh axes.
Flax is used only to declare parameters (`init_params`, `param_logical_axes`).

The public functions are pure: ``f(config, params, arrays) -> arrays``.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import einops
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.models.config import ModelConfig

_INIT_STD = 0.02


class KVCache(NamedTuple):
  """Preallocated key/value cache, one buffer per layer: ``k[l]: [B, KV, Dh, S]`` (keys
  stored transposed), ``v[l]: [B, KV, S, Dh]``.

  Heads come first, so ``q·K`` and ``softmax·V`` are batched matmuls over (B, KV); the
  keys are stored as ``Kᵀ`` so both are plain (non-transposed) matmuls. On XLA:CPU the
  score product of a decode step read from ``[B, KV, S, Dh]`` keys cost 4.6x the same
  product from ``[B, KV, Dh, S]`` (16 rows, 2 kv heads x 2 queries, S = 192: 84 vs
  18 us; 3x at S = 1024). Prefill writes the cache and every decode step writes one
  slot of each buffer in place (`apply_layers`).
  """

  k: tuple[jax.Array, ...]
  v: tuple[jax.Array, ...]


# Logical axis names of each `KVCache` buffer (see `jaxrl_llm.sharding`).
K_CACHE_AXES = ("batch", "kv_heads", "head_dim", "cache_length")
V_CACHE_AXES = ("batch", "kv_heads", "cache_length", "head_dim")


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


# ------------------------------------------------------------- the block (pure)
def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
  """y = w ⊙ x / sqrt(mean(x²) + ε), statistics in float32 (Zhang & Sennrich, 2019)."""
  x32 = x.astype(jnp.float32)
  y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
  return scale * y.astype(x.dtype)


def _dense(x: jax.Array, kernel: jax.Array, in_dims: int = 1) -> jax.Array:
  """``x [..., *K] . kernel [*K, *F] -> [..., *F]`` (``K``: the last ``in_dims`` axes of ``x``).

  Done as one 2-D matmul ``[N, prod K] x [prod K, prod F]``: on XLA:CPU the
  weight gradient of that product (one contracting axis) was measured about 2x
  faster than the same einsum over ``[B, T, D]`` (contracting ``B`` and ``T``);
  see docs/results/rl_step_vs_trl_*.txt.
  """
  lead = x.shape[:x.ndim - in_dims]
  k = math.prod(x.shape[x.ndim - in_dims:])
  out_shape = kernel.shape[in_dims:]
  y = x.reshape(-1, k) @ kernel.astype(x.dtype).reshape(k, -1)
  return y.reshape(lead + out_shape)


def _linear(p, name: str, x: jax.Array, in_dims: int = 1) -> jax.Array:
  """``x·W`` with ``W = p[f"{name}_kernel"]``, plus ``(x·A)·B`` when ``p`` carries an
  unmerged LoRA adapter ``{name}_lora_a`` / ``{name}_lora_b`` (`jaxrl_llm.models.lora`)."""
  y = _dense(x, p[f"{name}_kernel"], in_dims)
  if f"{name}_lora_a" in p:
    y = y + _dense(_dense(x, p[f"{name}_lora_a"], in_dims), p[f"{name}_lora_b"])
  return y


def _project(config: ModelConfig, p, name: str, x: jax.Array) -> jax.Array:
  """``x [B, T, D] -> [B, T, heads, Dh]`` with the ``{name}_kernel`` (and bias)."""
  y = _linear(p, name, x)
  if config.qkv_bias:
    y = y + p[f"{name}_bias"].astype(x.dtype)
  return y


def attend(config: ModelConfig, q: jax.Array, keys: jax.Array, values: jax.Array,
           mask: jax.Array, *, keys_transposed: bool = False) -> jax.Array:
  """Grouped-query attention softmax(q·kᵀ/√Dh + mask)·v (Ainslie et al., 2023).

  ``q [B, T, H, Dh]``; ``keys, values [B, KV, S, Dh]`` (query head h reads kv head
  h // (H/KV)), or with ``keys_transposed`` keys ``[B, KV, Dh, S]`` (the `KVCache`
  layout); ``mask [B, T, S]`` (True = may attend). Scores in float32.
  Returns ``[B, T, H, Dh]``.

  The G = H/KV query heads of a kv head are stacked along the query axis
  (``[B, KV, G*T, Dh]``), so both products are plain batched matmuls with the batch
  axes leading; on XLA:CPU this layout ran forward+backward ~2.7x faster than
  the 5-D ``btkgd,bksd->bkgts`` einsum (docs/results/rl_step_vs_trl_*.txt).
  """
  c = config
  (b, t), s = q.shape[:2], values.shape[2]
  kvh, groups = c.num_kv_heads, c.num_heads // c.num_kv_heads
  # Query head h = k·G + g (kv head k, group member g) goes to row g·T + t of kv head k.
  qg = einops.rearrange(q, "b t (k g) d -> b k (g t) d", k=kvh)
  scores = jnp.einsum("bkqd,bkds->bkqs" if keys_transposed else "bkqd,bksd->bkqs", qg,
                      keys.astype(q.dtype), preferred_element_type=jnp.float32)
  scores = scores / math.sqrt(c.head_dim)
  # The same [T, S] mask for every group member. (Not einops.repeat: it lowers through
  # an 8-D reshape; this broadcast is the HLO the layout was timed with.)
  allowed = jnp.broadcast_to(mask[:, None, None], (b, 1, groups, t, s)).reshape(b, 1, groups * t, s)
  scores = jnp.where(allowed, scores, jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(scores, axis=-1).astype(q.dtype)
  out = jnp.einsum("bkqs,bksd->bkqd", probs, values.astype(q.dtype))
  return einops.rearrange(out, "b k (g t) d -> b t (k g) d", g=groups)


def attention(config: ModelConfig, p, x: jax.Array, cos, sin, mask, kv=None, cache_index=0):
  """Self-attention of ``x [B, T, D]``; returns ``(out [B, T, D], kv)``.

  q, k, v = x·W_q, x·W_k, x·W_v (+ biases for Qwen2), Qwen3 RMSNorm per head, RoPE
  on q and k. With ``kv = (k_buf, v_buf)`` (one layer of `KVCache`: ``[B, KV, Dh, S]``,
  ``[B, KV, S, Dh]``) the T new keys/values are written into slots
  ``[cache_index, cache_index + T)`` and the queries attend over all S slots
  (``mask [B, T, S]``); else over the T tokens.
  """
  c = config
  q = _project(c, p, "q", x)
  k = _project(c, p, "k", x)
  v = _project(c, p, "v", x)
  if c.qk_norm:
    q = rms_norm(q, p["q_norm"]["scale"], c.rms_norm_eps)
    k = rms_norm(k, p["k_norm"]["scale"], c.rms_norm_eps)
  q = apply_rope(q, cos, sin)
  k = apply_rope(k, cos, sin)
  v = jnp.swapaxes(v, 1, 2)  # [B, KV, T, Dh]
  if kv is None:
    out = attend(c, q, jnp.swapaxes(k, 1, 2), v, mask)
  else:
    k_buf, v_buf = kv
    k = einops.rearrange(k, "b t k d -> b k d t").astype(k_buf.dtype)
    k = jax.lax.dynamic_update_slice(k_buf, k, (0, 0, 0, cache_index))
    v = jax.lax.dynamic_update_slice(v_buf, v.astype(v_buf.dtype), (0, 0, cache_index, 0))
    kv = (k, v)
    out = attend(c, q, k, v, mask, keys_transposed=True)
  return _linear(p, "o", out, in_dims=2), kv


def mlp(config: ModelConfig, p, x: jax.Array) -> jax.Array:
  """SwiGLU (Shazeer, 2020): W_down (silu(W_gate x) ⊙ W_up x)."""
  del config
  return _linear(p, "down", jax.nn.silu(_linear(p, "gate", x)) * _linear(p, "up", x))


def block_apply(config: ModelConfig, p, x: jax.Array, cos, sin, mask, kv=None, cache_index=0):
  """One pre-norm decoder block on ``x [B, T, D]`` with one layer's parameters ``p``.

      h = x + Attn(RMSNorm(x)),   y = h + MLP(RMSNorm(h))

  The only implementation of the block: training, prefill and decode all call it.
  ``kv``/``cache_index``: see `attention`. Returns ``(y, kv)``.
  """
  c = config
  a, kv = attention(c, p["attn"], rms_norm(x, p["attn_norm"]["scale"], c.rms_norm_eps), cos, sin,
                    mask, kv, cache_index)
  x = x + a
  x = x + mlp(c, p["mlp"], rms_norm(x, p["mlp_norm"]["scale"], c.rms_norm_eps))
  return x, kv


def split_layers(layers) -> tuple:
  """The stacked ``params["layers"]`` (leading ``layers`` axis) as a tuple of per-layer trees."""
  if isinstance(layers, (tuple, list)):
    return tuple(layers)
  num_layers = jax.tree.leaves(layers)[0].shape[0]
  return tuple(jax.tree.map(lambda w, i=i: w[i], layers) for i in range(num_layers))


def apply_layers(config: ModelConfig, layers, x, cos, sin, mask, cache: Optional["KVCache"] = None,
                 cache_index=0):
  """Runs the ``num_layers`` blocks; returns ``(x, cache)``.

  ``layers``: the stacked ``params["layers"]``, or `split_layers` of it (a tuple of
  per-layer trees; split once outside a decode loop so no step slices the weights).
  Without a cache, ``config.scans_layers`` picks `jax.lax.scan` over the stacked weights
  (one compiled block) or an unrolled Python loop; ``config.remat`` checkpoints each
  block. With a cache the loop is unrolled over its per-layer buffers, so each block
  writes its own buffer in place (no slicing or re-stacking of an ``[L, ...]`` cache).
  """
  c = config
  if cache is not None:
    new_k, new_v = [], []
    for p, k_buf, v_buf in zip(split_layers(layers), cache.k, cache.v, strict=True):
      x, (k_buf, v_buf) = block_apply(c, p, x, cos, sin, mask, (k_buf, v_buf), cache_index)
      new_k.append(k_buf)
      new_v.append(v_buf)
    return x, KVCache(tuple(new_k), tuple(new_v))
  scanned = c.scans_layers and not isinstance(layers, (tuple, list))
  block = lambda p, x: block_apply(c, p, x, cos, sin, mask)[0]
  if c.remat:
    block = jax.checkpoint(block, prevent_cse=not scanned)
  if scanned:
    x, _ = jax.lax.scan(lambda x, p: (block(p, x), None), x, layers)
    return x, None
  for p in split_layers(layers):
    x = block(p, x)
  return x, None


def apply_model(config: ModelConfig, params, tokens, positions, mask, cache=None, cache_index=0):
  """Embedding -> `apply_layers` -> final RMSNorm: ``(hidden [B, T, D], cache)``."""
  c = config
  x = jnp.take(params["embedding"], tokens, axis=0)
  cos, sin = rope_cos_sin(c, positions)
  x, cache = apply_layers(c, params["layers"], x, cos, sin, mask, cache, cache_index)
  return rms_norm(x, params["final_norm"]["scale"], c.rms_norm_eps), cache


# ------------------------------------------------ parameter declaration (flax)
def _normal():
  return nn.initializers.normal(_INIT_STD)


class _Norm(nn.Module):
  """Declares ``{"scale": ones [dim]}`` (axis ``norm``)."""

  dim: int
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self):
    return {"scale": self.param("scale", nn.with_logical_partitioning(nn.initializers.ones,
                                                                      ("norm",)),
                                (self.dim,), self.param_dtype)}


class _AttentionParams(nn.Module):
  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self):
    c = self.config
    p = {}
    for name, heads, axis in (("q", c.num_heads, "heads"), ("k", c.num_kv_heads, "kv_heads"),
                              ("v", c.num_kv_heads, "kv_heads")):
      p[f"{name}_kernel"] = self.param(
          f"{name}_kernel", nn.with_logical_partitioning(_normal(), ("embed", axis, "head_dim")),
          (c.hidden_size, heads, c.head_dim), self.param_dtype)
      if c.qkv_bias:
        p[f"{name}_bias"] = self.param(
            f"{name}_bias", nn.with_logical_partitioning(nn.initializers.zeros, (axis, "head_dim")),
            (heads, c.head_dim), self.param_dtype)
    if c.qk_norm:
      p["q_norm"] = _Norm(c.head_dim, self.param_dtype, name="q_norm")()
      p["k_norm"] = _Norm(c.head_dim, self.param_dtype, name="k_norm")()
    p["o_kernel"] = self.param(
        "o_kernel", nn.with_logical_partitioning(_normal(), ("heads", "head_dim", "embed")),
        (c.num_heads, c.head_dim, c.hidden_size), self.param_dtype)
    return p


class _MLPParams(nn.Module):
  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self):
    c = self.config
    kernel = lambda name, shape, axes: self.param(
        name, nn.with_logical_partitioning(_normal(), axes), shape, self.param_dtype)
    return {"gate_kernel": kernel("gate_kernel", (c.hidden_size, c.intermediate_size),
                                  ("embed", "mlp")),
            "up_kernel": kernel("up_kernel", (c.hidden_size, c.intermediate_size),
                                ("embed", "mlp")),
            "down_kernel": kernel("down_kernel", (c.intermediate_size, c.hidden_size),
                                  ("mlp", "embed"))}


class _LayerParams(nn.Module):
  """Declares one decoder block's parameters and returns them (a scan body: ``carry -> carry, p``)."""

  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, carry):
    c, dt = self.config, self.param_dtype
    return carry, {"attn_norm": _Norm(c.hidden_size, dt, name="attn_norm")(),
                   "attn": _AttentionParams(c, dt, name="attn")(),
                   "mlp_norm": _Norm(c.hidden_size, dt, name="mlp_norm")(),
                   "mlp": _MLPParams(c, dt, name="mlp")()}


class DecoderLM(nn.Module):
  """Token embedding → decoder blocks → final RMSNorm (→ vocab head).

  Flax only declares the parameters (their initialisers and logical axis names; the
  per-layer ones stacked along a leading ``layers`` axis by `nn.scan`); the
  computation is the pure `apply_model`.
  """

  config: ModelConfig
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, tokens, positions, mask, cache=None, cache_index=0, compute_logits=False):
    c = self.config
    params = {"embedding": self.param(
        "embedding", nn.with_logical_partitioning(_normal(), ("vocab", "embed")),
        (c.vocab_size, c.hidden_size), self.param_dtype)}
    if not c.tie_word_embeddings:
      params["lm_head"] = self.param(
          "lm_head", nn.with_logical_partitioning(_normal(), ("embed", "vocab")),
          (c.hidden_size, c.vocab_size), self.param_dtype)
    _, params["layers"] = nn.scan(
        _LayerParams, variable_axes={"params": 0}, split_rngs={"params": True},
        length=c.num_layers, metadata_params={nn.PARTITION_NAME: "layers"},
    )(c, self.param_dtype, name="layers")(jnp.zeros(()))
    params["final_norm"] = _Norm(c.hidden_size, self.param_dtype, name="final_norm")()
    x, cache = apply_model(c, params, tokens, positions, mask, cache, cache_index)
    if compute_logits:
      return jnp.einsum("btd,dv->btv", x, unembed_weight(c, params).astype(x.dtype),
                        preferred_element_type=jnp.float32), cache
    return x, cache


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
    # NumPy, not jnp: inside a jit trace jnp ops on a closed-over array return tracers.
    values = np.asarray(tokens)
    hi, lo = int(values.max()), int(values.min())
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
  x, _ = apply_model(config, params, tokens, positions, _causal_mask(attention_mask))
  return x


def shared_prompt_hidden_states(config: ModelConfig, params, prompt_tokens, prompt_mask,
                                completion_tokens, completion_mask):
  """Final-norm hidden states of ``prompt ++ completion`` when G completions share each prompt.

  ``prompt_tokens, prompt_mask [R, P]`` (left-padded) hold each prompt once;
  ``completion_tokens, completion_mask [R·G, N]``: rows ``r·G .. r·G + G - 1`` continue
  prompt ``r``. Returns ``(prompt_hidden [R, P, D], completion_hidden [R·G, N, D])``,
  equal to `hidden_states` of the G-times repeated prompts concatenated with the
  completions (positions ``cumsum(mask) - 1`` over the whole sequence, causal mask),
  but the prompt's layers run on R rows instead of R·G: per layer the prompt block
  writes its keys/values into a ``P``-slot `KVCache` layer, which is repeated G times
  and extended by ``N`` slots, and the completion block attends over it through the
  same `block_apply` that decoding uses (``cache_index = P``). The gradient of every
  shared prompt activation is the sum over its G rows (autodiff through the repeat).
  """
  c = config
  prompt_tokens, completion_tokens = jnp.asarray(prompt_tokens), jnp.asarray(completion_tokens)
  _check_inputs(c, prompt_tokens, prompt_mask, None)
  _check_inputs(c, completion_tokens, completion_mask, None)
  (r, p), (b, n) = prompt_tokens.shape, completion_tokens.shape
  if r == 0 or b % r:
    raise ValueError(f"completion_tokens has {b} rows, not a multiple of the {r} prompt rows")
  g = b // r
  pm, cm = jnp.asarray(prompt_mask).astype(bool), jnp.asarray(completion_mask).astype(bool)
  prompt_len = jnp.repeat(jnp.sum(pm, axis=-1, dtype=jnp.int32), g)
  cos_p, sin_p = rope_cos_sin(c, default_positions(pm))
  completion_positions = prompt_len[:, None] + jnp.cumsum(cm.astype(jnp.int32), axis=-1) - 1
  cos_c, sin_c = rope_cos_sin(c, jnp.maximum(completion_positions, 0))
  mask_p = _causal_mask(pm)
  mask_c = jnp.concatenate([jnp.broadcast_to(jnp.repeat(pm, g, axis=0)[:, None], (b, n, p)),
                            _causal_mask(cm)], axis=-1)
  kvh, dh = c.num_kv_heads, c.head_dim

  def layer(lp, xp, xc):
    empty = (jnp.zeros((r, kvh, dh, p), xp.dtype), jnp.zeros((r, kvh, p, dh), xp.dtype))
    xp, (k, v) = block_apply(c, lp, xp, cos_p, sin_p, mask_p, empty, 0)
    k = jnp.pad(jnp.repeat(k, g, axis=0), ((0, 0), (0, 0), (0, 0), (0, n)))
    v = jnp.pad(jnp.repeat(v, g, axis=0), ((0, 0), (0, 0), (0, n), (0, 0)))
    xc, _ = block_apply(c, lp, xc, cos_c, sin_c, mask_c, (k, v), p)
    return xp, xc

  layers = params["layers"]
  scanned = c.scans_layers and not isinstance(layers, (tuple, list))
  if c.remat:
    layer = jax.checkpoint(layer, prevent_cse=not scanned)
  xp = jnp.take(params["embedding"], prompt_tokens, axis=0)
  xc = jnp.take(params["embedding"], completion_tokens, axis=0)
  if scanned:
    (xp, xc), _ = jax.lax.scan(lambda carry, lp: (layer(lp, *carry), None), (xp, xc), layers)
  else:
    for lp in split_layers(layers):
      xp, xc = layer(lp, xp, xc)
  norm = lambda x: rms_norm(x, params["final_norm"]["scale"], c.rms_norm_eps)
  return norm(xp), norm(xc)


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
  """Zeroed KV cache with S = ``max_length`` slots per row: per layer keys ``[B, KV, Dh, S]``
  and values ``[B, KV, S, Dh]`` (see `KVCache`)."""
  b, kv, s, d, n = batch_size, config.num_kv_heads, max_length, config.head_dim, config.num_layers
  return KVCache(tuple(jnp.zeros((b, kv, d, s), dtype) for _ in range(n)),
                 tuple(jnp.zeros((b, kv, s, d), dtype) for _ in range(n)))


def forward_with_cache(config: ModelConfig, params, tokens, positions, kv_mask, cache: KVCache,
                       cache_index):
  """Runs ``tokens [B, T]`` written into cache slots ``[cache_index, cache_index + T)``.

  ``kv_mask [B, S]`` marks the cache slots holding real tokens (S = cache length);
  a query in slot ``cache_index + t`` attends to valid slots ``s <= cache_index + t``.
  Returns ``(hidden [B, T, D], new_cache)``; used for prefill and for decoding (the
  same blocks as `hidden_states`). ``params["layers"]`` may be pre-split with
  `split_layers` (do it once outside a decode loop).
  """
  t = tokens.shape[1]
  s = cache.v[0].shape[2]
  query_slot = cache_index + jnp.arange(t)
  mask = (jnp.arange(s)[None, :] <= query_slot[:, None])[None] & kv_mask.astype(bool)[:, None, :]
  return apply_model(config, params, tokens, positions, mask, cache, cache_index)

"""Autoregressive generation with a preallocated KV cache, G samples per prompt.

For prompts ``x_b`` (left-padded) the sampler draws, for every prompt, G
completions ``y ~ q(· | x_b)`` token by token,

    y_t ~ q(· | x, y_<t) = softmax(filter(ℓ_t / T)),   ℓ_t = W_out h_t(x, y_<t),

and returns for each drawn token both ``log p(y_t | x, y_<t)`` under the model at
temperature 1 without filters (what an RL loss's importance ratio needs) and
``log q(y_t | ...)`` under the distribution it was actually drawn from.

Work is shared across the G samples: the prompt is run once (prefill, B rows)
and its KV cache is then repeated to the B·G decoding rows, so rows
``b·G … b·G + G − 1`` hold prompt b's samples. Decoding is one
`jax.lax.while_loop` over a preallocated cache of ``P + N`` slots that exits as
soon as every row has emitted a stop token; its state (the cache) is donated so
the loop updates it in place. Prefill and every decode step run the model's own
blocks (`models.forward_with_cache`: one `block_apply`, one `KVCache` layout of
per-layer buffers: keys ``[B, KV, Dh, S]``, values ``[B, KV, S, Dh]``). Prompt widths
are bucketed (left-padded to a power of two, at least 16) so a new prompt length
rarely recompiles.

The sampling settings (temperature, top-k, top-p, min-p; greedy = temperature 0)
are traced arguments of the compiled loop: changing them never recompiles.

``prefix_tokens`` forces the first tokens of a row's completion (PrefixRL,
hint scaffolding): forced tokens are emitted as given, still get their model
log-prob, have sampling log-prob 0 and are flagged in ``SampleOutput.forced``
so a loss can exclude them.
"""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional, Sequence

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.models import (K_CACHE_AXES, V_CACHE_AXES, KVCache, ModelConfig,
                              default_positions, forward_with_cache, init_cache, split_layers,
                              unembed_weight)
from jaxrl_llm.sampling.filters import (SamplingParams, row_uniforms, sample_with_uniform,
                                        validate_sampling_params)
from jaxrl_llm.sharding import SAMPLING_RULES, batch_sharding, logical_sharding

FINISH_STOP = 0  # the row emitted one of `stop_tokens`
FINISH_LENGTH = 1  # the row reached `max_new_tokens`
MIN_BUCKET = 16
# decode_phases=None: 4 phases once the KV cache (all layers, K and V) is at least this big
# and the loop runs >= 64 steps; else one. Below a CPU's last-level cache the whole-cache
# read is cheap (see `decode_phase_count`).
PHASED_DECODE_MIN_CACHE_BYTES = 64 << 20


class SampleOutput(NamedTuple):
  """Completions, ``R = B * num_samples`` rows (row r belongs to prompt r // num_samples).

  tokens:            [R, N] int32, pad id after the end of each completion.
  logprobs:          [R, N] float32, log p_model(token) at temperature 1, 0 where ~mask.
  temperature_logprobs: [R, N] float32, log softmax(z / T)[token] at the sampling
                     temperature T, unfiltered (T = 1 when greedy), 0 where ~mask: what
                     a trainer that takes log-probs at T (verl, TRL) recomputes, hence
                     the sampler side of the sampler/trainer mismatch and of TIS.
  sampling_logprobs: [R, N] float32, log q(token) under the filtered, temperature-scaled
                     distribution it was drawn from (0 for greedy and forced tokens).
  mask:              [R, N] bool, completion tokens (up to and including the stop token).
  forced:            [R, N] bool, tokens given by `prefix_tokens` rather than sampled.
  lengths:           [R] int32, number of completion tokens (= mask.sum(-1)).
  finish_reason:     [R] int32, FINISH_STOP or FINISH_LENGTH.
  prompt_index:      [R] int32, index of the prompt each row continues.
  """

  tokens: jax.Array
  logprobs: jax.Array
  temperature_logprobs: jax.Array
  sampling_logprobs: jax.Array
  mask: jax.Array
  forced: jax.Array
  lengths: jax.Array
  finish_reason: jax.Array
  prompt_index: jax.Array


class _Prefilled(NamedTuple):
  cache: KVCache  # L buffers [R, KV, S, Dh]
  hidden: jax.Array  # [R, D] final-norm hidden state of each prompt's last token
  next_position: jax.Array  # [R] position id of the first completion token
  kv_mask: jax.Array  # [R, S] valid cache slots (prompt tokens, then all completion slots)


def bucket_length(length: int, min_bucket: int = MIN_BUCKET) -> int:
  """Prompt width after bucketing: the next power of two, at least ``min_bucket``."""
  return max(min_bucket, 1 << max(int(length) - 1, 0).bit_length())


def _constrain(x, mesh, rules, logical):
  if mesh is None:
    return x
  return jax.lax.with_sharding_constraint(x, logical_sharding(logical, mesh, rules, x.shape))


def _constrain_cache(cache: KVCache, mesh, rules) -> KVCache:
  return KVCache(tuple(_constrain(k, mesh, rules, K_CACHE_AXES) for k in cache.k),
                 tuple(_constrain(v, mesh, rules, V_CACHE_AXES) for v in cache.v))


@functools.partial(jax.jit, static_argnames=("config", "num_samples", "max_new_tokens",
                                             "cache_dtype", "mesh", "rules"))
def _prefill(params, prompt_tokens, prompt_mask, *, config: ModelConfig, num_samples: int,
             max_new_tokens: int, cache_dtype, mesh=None, rules=SAMPLING_RULES) -> _Prefilled:
  """Runs the B prompts once, then repeats their cache to B·G rows."""
  b, p = prompt_tokens.shape
  slots = p + max_new_tokens
  positions = default_positions(prompt_mask)
  kv_mask = jnp.concatenate([prompt_mask.astype(bool), jnp.ones((b, max_new_tokens), bool)], 1)
  cache = _constrain_cache(init_cache(config, b, slots, cache_dtype), mesh, rules)
  hidden, cache = forward_with_cache(config, params, prompt_tokens, positions, kv_mask, cache, 0)
  repeat = lambda x, axis: jnp.repeat(x, num_samples, axis=axis)
  cache = _constrain_cache(jax.tree.map(lambda c: repeat(c, 0), cache), mesh, rules)
  next_position = jnp.sum(prompt_mask.astype(jnp.int32), axis=-1)
  return _Prefilled(cache, repeat(hidden[:, -1], 0), repeat(next_position, 0),
                    repeat(kv_mask, 0))


@functools.partial(jax.jit, static_argnames=("num_samples", "mesh", "rules"))
def _repeat_prefilled(prefilled: _Prefilled, *, num_samples: int, mesh=None,
                      rules=SAMPLING_RULES) -> _Prefilled:
  """The B prefilled rows repeated to B·C decoding rows (row b·C + c continues prompt b)."""
  rep = lambda x: jnp.repeat(x, num_samples, axis=0)
  return _Prefilled(_constrain_cache(jax.tree.map(rep, prefilled.cache), mesh, rules),
                    rep(prefilled.hidden), rep(prefilled.next_position), rep(prefilled.kv_mask))


def _interleave_chunks(parts, batch: int):
  """J chunk outputs ``[B·C, ...]`` (row b·C + c = sample j·C + c of prompt b) ->
  ``[B·J·C, ...]`` with row b·G + j·C + c, the one-shot row order."""
  x = jnp.stack(parts)  # [J, B*C, ...]
  j, rows = x.shape[:2]
  x = x.reshape((j, batch, rows // batch) + x.shape[2:])
  x = jnp.swapaxes(x, 0, 1)  # [B, J, C, ...]
  return x.reshape((batch * rows * j // batch,) + x.shape[3:])


class _LoopState(NamedTuple):
  step: jax.Array
  cache: KVCache
  hidden: jax.Array
  position: jax.Array
  done: jax.Array
  tokens: jax.Array
  logprobs: jax.Array
  temperature_logprobs: jax.Array
  sampling_logprobs: jax.Array
  mask: jax.Array


def decode_phase_count(decode_phases: Optional[int], *, cache_bytes: int,
                       max_new_tokens: int) -> int:
  """The decode loop's phase count: ``decode_phases`` when given (an int >= 1), else 4
  when the loop runs at least 64 steps over a cache of at least
  `PHASED_DECODE_MIN_CACHE_BYTES`, else 1.

  Every step reads the whole KV cache (all its slots; the unwritten ones are masked), so
  a decode step's memory traffic is the weights plus the cache. Measured on a 2-vCPU AMD
  EPYC (family 26), ``benchmarks/sampler_vs_hf.py``'s 127M-parameter Llama (16 rows, 64 +
  128 slots, a 226 MB cache against 508 MB of weights): 4 phases cut the mean cache read
  from 192 to 144 slots and the call from 4.37 to 3.90 s (best of 3; compile 5.0 -> 5.5 s);
  on its 1.1M-parameter row (a 21 MB cache) they gained nothing.
  """
  if decode_phases is not None:
    if isinstance(decode_phases, bool) or not isinstance(decode_phases, (int, np.integer)) \
        or decode_phases < 1:
      raise ValueError(f"decode_phases must be an int >= 1 or None (auto), got {decode_phases!r}")
    return int(decode_phases)
  big = cache_bytes >= PHASED_DECODE_MIN_CACHE_BYTES and max_new_tokens >= 64
  return 4 if big else 1


def decode_phase_ends(max_new_tokens: int, phases: int) -> tuple[int, ...]:
  """The step counts at which the decode loop's phases end: ``phases`` near-equal parts
  of ``max_new_tokens`` (at most one phase per step)."""
  phases = max(1, min(int(phases), max_new_tokens))
  return tuple(-(-max_new_tokens * (i + 1) // phases) for i in range(phases))


def _resize_cache(cache: KVCache, slots: int) -> KVCache:
  """The cache with ``slots`` slots: cut or zero-padded at the end of the slot axis."""
  def resize(x, axis):
    if x.shape[axis] >= slots:
      return jax.lax.slice_in_dim(x, 0, slots, axis=axis)
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, slots - x.shape[axis])
    return jnp.pad(x, pad)
  return KVCache(tuple(resize(k, 3) for k in cache.k), tuple(resize(v, 2) for v in cache.v))


@functools.partial(
    jax.jit, donate_argnames=("cache", "hidden", "position"),
    static_argnames=("config", "max_new_tokens", "stop_tokens", "pad_id", "prompt_width", "mesh",
                     "rules", "phases"))
def _decode(params, cache: KVCache, hidden, position, kv_mask, prefix, key,
            sampling: SamplingParams, row_ids=None, *, config: ModelConfig, max_new_tokens: int,
            stop_tokens: tuple[int, ...], pad_id: int, prompt_width: int, mesh=None,
            rules=SAMPLING_RULES, phases: int = 1):
  """The decode loop; returns the final loop state.

  ``sampling`` is traced (0-d arrays from `validate_sampling_params`). ``cache``,
  ``hidden`` and ``position`` are donated: the loop carries them and the returned
  state aliases their buffers, so the cache is updated in place (within each phase). ``row_ids`` (``[R]``
  int32 or None): row r's draw at step t uses the key ``fold_in(fold_in(key, t),
  row_ids[r])`` (one stream per row), else all rows share ``fold_in(key, t)``.

  ``phases`` n > 1: the steps run as n loops (`decode_phase_ends`); the loop ending at
  step e holds a cache of ``prompt_width + e`` slots (grown by zero slots between loops),
  so a step's attention reads the slots written so far plus at most one phase more,
  not all ``prompt_width + max_new_tokens``: decoding reads the whole cache at every
  step, which dominates a step once the cache outweighs the weights. The tokens and
  log-probs are those of one loop (the masked-out slots never count); each loop's body
  is compiled separately.
  """
  rows = hidden.shape[0]
  w_out = unembed_weight(config, params)
  # Per-layer weights split once, outside the loop, so no step slices the stacked ones.
  params = {**params, "layers": split_layers(params["layers"])}
  temperature = jnp.where(sampling.temperature > 0, sampling.temperature, 1.0)
  stops = jnp.asarray(stop_tokens if stop_tokens else (-1,), jnp.int32)

  def step_uniforms(t):
    step_key = jax.random.fold_in(key, t)
    if row_ids is not None:
      step_key = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, row_ids)
    return row_uniforms(step_key, (rows,))

  # Every step's uniforms [N, R] in one vectorised call before the loop (the same values
  # as drawing them in the body: the keys are the same): on CPU each threefry call in the
  # body would be a small rolled loop of its own, ~10% of a small model's step.
  uniforms = jax.vmap(step_uniforms)(jnp.arange(max_new_tokens))

  def cond(s: _LoopState, end):
    return (s.step < end) & ~jnp.all(s.done)

  def body(s: _LoopState, kv_mask):
    t = s.step
    logits = jnp.einsum("rd,dv->rv", s.hidden, w_out.astype(s.hidden.dtype),
                        preferred_element_type=jnp.float32)
    draw = sample_with_uniform(logits, jax.lax.dynamic_index_in_dim(uniforms, t, keepdims=False),
                               sampling)
    token, sampling_logprob = draw.token, draw.sampling_logprob
    if prefix is not None:
      forced_token = jax.lax.dynamic_index_in_dim(prefix, t, axis=1, keepdims=False)
      is_forced = forced_token >= 0
      token = jnp.where(is_forced, forced_token, token)
      sampling_logprob = jnp.where(is_forced, 0.0, sampling_logprob)
    picked = jnp.take_along_axis(logits, token[:, None], axis=-1)[:, 0]
    logprob = picked - jax.nn.logsumexp(logits, axis=-1)
    # At T = 1 (the common case) skip the second pass over the vocabulary.
    temperature_logprob = jax.lax.cond(
        temperature == 1.0, lambda: logprob,
        lambda: picked / temperature - jax.nn.logsumexp(logits / temperature, axis=-1))
    live = ~s.done
    token = jnp.where(live, token, pad_id)
    put = lambda buf, val: jax.lax.dynamic_update_index_in_dim(buf, val, t, axis=1)
    done = s.done | (live & jnp.any(token[:, None] == stops[None, :], axis=-1))
    hidden, cache = forward_with_cache(config, params, token[:, None], s.position[:, None],
                                       kv_mask, s.cache, prompt_width + t)
    return _LoopState(
        step=t + 1, cache=_constrain_cache(cache, mesh, rules), hidden=hidden[:, 0],
        position=s.position + 1, done=done, tokens=put(s.tokens, token),
        logprobs=put(s.logprobs, jnp.where(live, logprob, 0.0)),
        temperature_logprobs=put(s.temperature_logprobs,
                                 jnp.where(live, temperature_logprob, 0.0)),
        sampling_logprobs=put(s.sampling_logprobs, jnp.where(live, sampling_logprob, 0.0)),
        mask=put(s.mask, live))

  shape = (rows, max_new_tokens)
  state = _LoopState(
      step=jnp.zeros((), jnp.int32), cache=cache, hidden=hidden, position=position,
      done=jnp.zeros((rows,), bool),
      tokens=jnp.full(shape, pad_id, jnp.int32), logprobs=jnp.zeros(shape, jnp.float32),
      temperature_logprobs=jnp.zeros(shape, jnp.float32),
      sampling_logprobs=jnp.zeros(shape, jnp.float32), mask=jnp.zeros(shape, bool))
  ends = decode_phase_ends(max_new_tokens, phases)
  for end in ends:
    slots = prompt_width + end
    if len(ends) > 1:
      state = state._replace(cache=_constrain_cache(_resize_cache(state.cache, slots), mesh,
                                                    rules))
    state = jax.lax.while_loop(functools.partial(cond, end=end),
                               functools.partial(body, kv_mask=kv_mask[:, :slots]), state)
  return state


def _decode_in_chunks(params, tokens, mask, prefix, key, sampling, decode, *, num_samples: int,
                      sample_chunk: int, config, max_new_tokens: int, cache_dtype, mesh,
                      rules) -> _LoopState:
  """Prefill once, then G / C decode loops of B·C rows from copies of the prompts' cache;
  row ids (the per-row key streams) and forced prefixes are those of the one-shot rows."""
  batch = tokens.shape[0]
  base = _prefill(params, tokens, mask, config=config, num_samples=1,
                  max_new_tokens=max_new_tokens, cache_dtype=cache_dtype, mesh=mesh, rules=rules)
  finals = []
  for j in range(num_samples // sample_chunk):
    samples = j * sample_chunk + np.arange(sample_chunk)
    rows = (np.arange(batch)[:, None] * num_samples + samples[None]).reshape(-1)
    chunk = _repeat_prefilled(base, num_samples=sample_chunk, mesh=mesh, rules=rules)
    chunk_prefix = None if prefix is None else jnp.take(prefix, jnp.asarray(rows), axis=0)
    final = decode(params, chunk.cache, chunk.hidden, chunk.next_position, chunk.kv_mask,
                   chunk_prefix, key, sampling, jnp.asarray(rows, jnp.int32))
    finals.append(final._replace(cache=None, hidden=None, position=None))
  merged = {f: _interleave_chunks([getattr(x, f) for x in finals], batch)
            for f in ("done", "tokens", "logprobs", "temperature_logprobs", "sampling_logprobs",
                      "mask")}
  return _LoopState(step=None, cache=None, hidden=None, position=None, **merged)


def _as_int_array(name, x, ndim):
  x = np.asarray(x)
  if x.ndim != ndim:
    raise ValueError(f"{name} must have {ndim} dimensions, got shape {x.shape}")
  if x.size and not np.issubdtype(x.dtype, np.integer) and not np.issubdtype(x.dtype, np.bool_):
    raise ValueError(f"{name} must hold integers, got dtype {x.dtype}")
  return x


def _prepare_prefix(prefix_tokens, batch, num_samples, max_new_tokens, vocab_size):
  prefix = _as_int_array("prefix_tokens", prefix_tokens, 2).astype(np.int32)
  rows = batch * num_samples
  if prefix.shape[0] == batch and num_samples > 1:
    prefix = np.repeat(prefix, num_samples, axis=0)
  if prefix.shape[0] != rows:
    raise ValueError(f"prefix_tokens must have {batch} (one per prompt) or {rows} (one per "
                     f"sample) rows, got shape {prefix.shape}")
  if prefix.shape[1] > max_new_tokens:
    raise ValueError(f"prefix_tokens is {prefix.shape[1]} wide but max_new_tokens="
                     f"{max_new_tokens}")
  if np.any(prefix >= vocab_size):
    raise ValueError(f"prefix_tokens must be < vocab_size={vocab_size} (negative = no forced "
                     f"token), got max {prefix.max()}")
  forced = prefix >= 0
  if np.any(forced[:, 1:] & ~forced[:, :-1]):
    raise ValueError("prefix_tokens: forced tokens must form a prefix of each row (negative "
                     "entries only after the last forced token)")
  out = np.full((rows, max_new_tokens), -1, np.int32)
  out[:, :prefix.shape[1]] = prefix
  return jnp.asarray(out)


def generate(config: ModelConfig, params, prompt_tokens, prompt_mask, key: jax.Array, *,
             max_new_tokens: int, num_samples: int = 1, temperature=1.0,
             top_k=None, top_p=None, min_p=None, stop_tokens: Sequence[int] = (),
             prefix_tokens=None, pad_token_id: Optional[int] = None, cache_dtype=None,
             mesh=None, rules=SAMPLING_RULES, min_bucket: int = MIN_BUCKET,
             sample_chunk: Optional[int] = None,
             decode_phases: Optional[int] = None) -> SampleOutput:
  """Samples ``num_samples`` completions of ``max_new_tokens`` tokens per prompt.

  Args:
    config, params: the decoder LM (`jaxrl_llm.models`).
    prompt_tokens, prompt_mask: ``[B, P]`` left-padded prompts (mask 1 = real token);
      every prompt needs at least one real token.
    key: PRNG key; step t uses ``fold_in(key, t)`` (with ``sample_chunk``, row r uses
      ``fold_in(fold_in(key, t), r)``).
    max_new_tokens: N, completion length budget (static: changing it recompiles).
    num_samples: G completions per prompt; the prompt is prefilled once.
    temperature: 0 = greedy (argmax; filters are then irrelevant).
    top_k, top_p, min_p: filters (see `jaxrl_llm.sampling.filters`), applied in that order;
      None = off.
    The four settings are traced (Python numbers or 0-d arrays): new values reuse the
    compiled loop, greedy included.
    stop_tokens: ids that end a row (the stop token is part of the completion; a forced
      stop token ends the row too).
    prefix_tokens: optional ``[B or B*G, F]`` (F <= N) forced completion prefixes;
      negative entries (only after a row's last forced token) mean "sample".
    pad_token_id: id written after a row ends (default config.pad_token_id or 0).
    cache_dtype: KV-cache dtype (default: the embedding's dtype).
    mesh, rules: run with the cache laid out by the logical-axis ``rules`` on ``mesh``
      (params should already be placed, e.g. `sharding.shard_params(..., SAMPLING_RULES)`).
    min_bucket: smallest bucketed prompt width.
    sample_chunk: None (default): the G samples of every prompt are decoded in one
      loop of B·G rows, all rows drawing from the step key ``fold_in(key, t)``. An int
      C dividing G: the prompts are prefilled once and their cache is repeated to B·C
      rows for each of G / C decode loops (BroRL-style large groups with bounded
      memory), and every row draws from its own key ``fold_in(fold_in(key, t), r)``
      with r = b·G + g its row in the output, so the result is the same for every C
      (``sample_chunk=G`` is the one-call form of that stream). The two streams differ:
      ``sample_chunk=None`` keeps the default sampler's draws and cost.
    decode_phases: the decode loop runs as this many loops over growing caches, so a
      step's attention reads the slots written so far (plus at most one phase) instead
      of the whole cache; the output is the same for every value (each loop compiles
      separately). None (default): `decode_phase_count` chooses (4 for large caches and
      >= 64 steps, else 1).

  Returns:
    `SampleOutput` with ``B * num_samples`` rows.
  """
  tokens = _as_int_array("prompt_tokens", prompt_tokens, 2)
  mask = _as_int_array("prompt_mask", prompt_mask, 2)
  if mask.shape != tokens.shape:
    raise ValueError(f"prompt_mask has shape {mask.shape}, expected prompt_tokens' shape "
                     f"{tokens.shape}")
  batch, width = tokens.shape
  if batch == 0:
    raise ValueError("prompt_tokens is an empty batch (0 prompts)")
  if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 1:
    raise ValueError(f"max_new_tokens must be a positive int, got {max_new_tokens!r}")
  if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
    raise ValueError(f"num_samples must be a positive int, got {num_samples!r}")
  mask = mask.astype(bool)
  lengths = mask.sum(-1)
  if np.any(lengths == 0):
    raise ValueError(f"every prompt needs at least one real token; prompt_mask rows "
                     f"{np.flatnonzero(lengths == 0).tolist()} are empty")
  if np.any(mask[:, :-1] & ~mask[:, 1:]):
    raise ValueError("prompts must be left-padded: prompt_mask must be 0...0 1...1 in each row")
  context = config.max_position_embeddings
  if lengths.max() + max_new_tokens > context:
    raise ValueError(
        f"prompt length {int(lengths.max())} + max_new_tokens {max_new_tokens} exceeds the "
        f"model context max_position_embeddings={context}")
  if tokens.size and (tokens[mask].max(initial=0) >= config.vocab_size or tokens[mask].min(
      initial=0) < 0):
    raise ValueError(f"prompt_tokens must lie in [0, vocab_size={config.vocab_size})")
  stop_tokens = tuple(int(s) for s in stop_tokens)
  for s in stop_tokens:
    if not 0 <= s < config.vocab_size:
      raise ValueError(f"stop token {s} is outside [0, vocab_size={config.vocab_size})")
  sampling = validate_sampling_params(SamplingParams(temperature, top_k, top_p, min_p),
                                      config.vocab_size)
  pad_id = pad_token_id if pad_token_id is not None else (config.pad_token_id or 0)
  prefix = None
  if prefix_tokens is not None:
    prefix = _prepare_prefix(prefix_tokens, batch, num_samples, max_new_tokens,
                             config.vocab_size)
  if sample_chunk is not None and (isinstance(sample_chunk, bool) or not isinstance(
      sample_chunk, (int, np.integer)) or sample_chunk < 1 or num_samples % sample_chunk):
    raise ValueError(f"sample_chunk must be a positive int dividing num_samples={num_samples} "
                     f"(or None), got {sample_chunk!r}")
  if cache_dtype is None:
    cache_dtype = params["embedding"].dtype
  decode_rows = batch * (num_samples if sample_chunk is None else int(sample_chunk))
  cache_bytes = (2 * config.num_layers * decode_rows * config.num_kv_heads * config.head_dim
                 * (bucket_length(width, min_bucket) + max_new_tokens)
                 * jnp.dtype(cache_dtype).itemsize)
  decode_phases = decode_phase_count(decode_phases, cache_bytes=cache_bytes,
                                     max_new_tokens=max_new_tokens)

  # Bucket the prompt width (left-pad further) so nearby lengths share a compilation.
  padded = bucket_length(width, min_bucket)
  pad = padded - width
  tokens = np.pad(np.where(mask, tokens, pad_id), ((0, 0), (pad, 0)), constant_values=pad_id)
  mask = np.pad(mask, ((0, 0), (pad, 0)))
  tokens, mask = jnp.asarray(tokens, jnp.int32), jnp.asarray(mask)
  if mesh is not None:
    tokens = jax.device_put(tokens, batch_sharding(mesh, rules, 2, tokens.shape))
    mask = jax.device_put(mask, batch_sharding(mesh, rules, 2, mask.shape))

  decode = functools.partial(_decode, config=config, max_new_tokens=max_new_tokens,
                             stop_tokens=stop_tokens, pad_id=int(pad_id), prompt_width=padded,
                             mesh=mesh, rules=rules, phases=decode_phases)
  if sample_chunk is None:
    prefilled = _prefill(params, tokens, mask, config=config, num_samples=num_samples,
                         max_new_tokens=max_new_tokens, cache_dtype=jnp.dtype(cache_dtype),
                         mesh=mesh, rules=rules)
    final = decode(params, prefilled.cache, prefilled.hidden, prefilled.next_position,
                   prefilled.kv_mask, prefix, key, sampling)
  else:
    final = _decode_in_chunks(params, tokens, mask, prefix, key, sampling, decode,
                              num_samples=num_samples, sample_chunk=int(sample_chunk),
                              config=config, max_new_tokens=max_new_tokens,
                              cache_dtype=jnp.dtype(cache_dtype), mesh=mesh, rules=rules)
  rows = batch * num_samples
  forced = (jnp.zeros((rows, max_new_tokens), bool) if prefix is None
            else (prefix >= 0) & final.mask)
  lengths = jnp.sum(final.mask, axis=-1, dtype=jnp.int32)
  finish = jnp.where(final.done, FINISH_STOP, FINISH_LENGTH).astype(jnp.int32)
  out = SampleOutput(tokens=final.tokens, logprobs=final.logprobs,
                     temperature_logprobs=final.temperature_logprobs,
                     sampling_logprobs=final.sampling_logprobs, mask=final.mask, forced=forced,
                     lengths=lengths, finish_reason=finish,
                     prompt_index=jnp.arange(rows, dtype=jnp.int32) // num_samples)
  chex.assert_shape([out.tokens, out.logprobs, out.mask], (rows, max_new_tokens))
  return out

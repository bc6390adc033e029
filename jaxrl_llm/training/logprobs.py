"""Per-token log-probabilities of given tokens under a decoder LM (the trainer's forward).

This is the single place the training code turns parameters into log-probs. It
composes the model's final hidden states with either

* the dense head (``impl="dense"``): the ``[B*T, V]`` float32 logits, a
  log-softmax and JAX's own autodiff; or
* the fused log-prob kernel (:func:`kernels_pallas.fused_logprobs`, ``impl`` one of
  its backends), which never builds the logits and recomputes them tile by tile
  in its backward; routed to the vocab-parallel kernel when a mesh splits the
  vocabulary.

``impl="auto"`` takes the dense head when the logits fit in
``dense_logits_bytes`` (default :data:`DENSE_LOGITS_BYTES`, 64 MiB: one tile of the
chunked XLA kernel, so chunking would save no memory) and no mesh splits the
vocabulary, else the fused kernel. Measured on a 2-core CPU with the
``benchmarks/rl_step_vs_trl.py`` head (T = 10,112 tokens, D = 128, V = 512, with
entropy): forward 37 vs 88 ms, forward+backward 144 vs 181 ms CPU time, dense vs
fused (docs/results/rl_step_vs_trl_*.txt).

Relation to ``jaxrl_llm.models.token_logprobs``: that one is aligned with
``tokens`` (``[B, T]``, column 0 and padded positions set to 0) and can add a KL
to a reference model; ``sequence_logprobs`` returns the ``T - 1`` next-token
targets plus the hidden states a value head needs. Where a token and its
predecessor are both real, ``sequence_logprobs(...).logprobs[:, t - 1]`` equals
``token_logprobs(...).logprobs[:, t]``.
"""

from typing import NamedTuple, Optional

import chex
import jax
import jax.numpy as jnp

import kernels_pallas
from jaxrl_llm import models


class TokenLogprobs(NamedTuple):
  """Outputs for the ``T - 1`` next-token targets ``tokens[:, 1:]``.

  logprobs: ``[B, T-1]`` ``log pi(tokens[:, t+1] | tokens[:, :t+1])`` at ``temperature``.
  entropy:  ``[B, T-1]`` entropy of that next-token distribution, or None.
  hidden:   ``[B, T-1, D]`` final-norm hidden states that predict each target.
  mean_logprobs: ``[B, T-1]`` ``(1/V) sum_a log pi(a | tokens[:, :t+1])`` of that
    next-token distribution over the whole vocabulary (ROVER's value statistic), or None.
  """

  logprobs: jax.Array
  entropy: Optional[jax.Array]
  hidden: jax.Array
  mean_logprobs: Optional[jax.Array] = None


# Largest float32 logits [T, V] that impl="auto" materialises (bytes).
DENSE_LOGITS_BYTES = 64 * 1024 * 1024


def dense_logprobs(hidden: jax.Array, weight: jax.Array, targets: jax.Array, *,
                   temperature: float = 1.0, want_entropy: bool = False,
                   want_mean_logprob: bool = False):
  """``(logprobs [T], entropy [T] or None)`` of ``softmax(h W / tau)`` from dense logits.

  With ``z = h W / tau`` (float32, ``[T, V]``), ``log Z = logsumexp(z)``::

      logprobs_t     = z_{t, y_t} - log Z_t
      entropy_t      = log Z_t - sum_v p_tv z_tv,   p = exp(z - log Z)
      mean_logprob_t = (1/V) sum_v log p_tv = mean_v z_tv - log Z_t

  Differentiated by JAX's autodiff (an unused entropy costs no backward). With
  ``want_mean_logprob`` the result is the triple ``(logprobs, entropy, mean_logprob)``;
  without it the pair, as before.
  """
  chex.assert_rank([hidden, weight, targets], [2, 2, 1])
  z = jnp.dot(hidden, weight.astype(hidden.dtype), preferred_element_type=jnp.float32)
  z = z / temperature
  log_z = jax.nn.logsumexp(z, axis=-1)
  logprobs = jnp.take_along_axis(z, targets[:, None].astype(jnp.int32), axis=-1)[:, 0] - log_z
  entropy = None
  if want_entropy:
    p = jnp.exp(z - log_z[:, None])
    entropy = log_z - jnp.sum(p * z, axis=-1)
  if want_mean_logprob:
    return logprobs, entropy, jnp.mean(z, axis=-1) - log_z
  return logprobs, entropy


def resolve_logprob_impl(impl: str, num_tokens: int, vocab_size: int, *,
                         vocab_parallel: bool = False,
                         dense_logits_bytes: int = DENSE_LOGITS_BYTES) -> str:
  """``"dense"`` or a `kernels_pallas.fused_logprobs` backend for ``impl``.

  ``"auto"``: dense when ``4 * num_tokens * vocab_size <= dense_logits_bytes`` and
  the vocabulary is not split over a mesh, else the kernel's own ``"auto"``.
  """
  known = ("dense",) + kernels_pallas.IMPLS
  if impl not in known:
    raise ValueError(f"logprob impl {impl!r} is unknown; known: {', '.join(known)}")
  if not isinstance(dense_logits_bytes, int) or dense_logits_bytes < 0:
    raise ValueError(f"dense_logits_bytes must be an int >= 0, got {dense_logits_bytes!r}")
  if impl == "dense" and vocab_parallel:
    raise ValueError("logprob impl 'dense' cannot run with a mesh that splits the vocabulary; "
                     "use 'auto' or a kernel backend")
  if impl != "auto":
    return impl
  if not vocab_parallel and 4 * num_tokens * vocab_size <= dense_logits_bytes:
    return "dense"
  return "auto"


def _vocab_parallel_axes(mesh, vocab_size: int, num_tokens: int, vocab_axis: str):
  """``(vocab axis, token axes)`` when ``mesh`` splits the vocabulary, else None.

  Tokens are split over the batch axes of the training layout (``data``,
  ``fsdp``) when their count divides, else kept whole on every device.
  """
  if mesh is None or mesh.shape.get(vocab_axis, 1) <= 1 or vocab_size % mesh.shape[vocab_axis]:
    return None
  token_axes = tuple(a for a in ("data", "fsdp") if mesh.shape.get(a, 1) > 1)
  shards = 1
  for a in token_axes:
    shards *= mesh.shape[a]
  return vocab_axis, (token_axes if token_axes and num_tokens % shards == 0 else None)


def sequence_logprobs(config: models.ModelConfig, params, tokens: jax.Array,
                      attention_mask: jax.Array, *, temperature: float = 1.0,
                      want_entropy: bool = False, impl: str = "auto", mesh=None,
                      vocab_axis: str = "tensor",
                      dense_logits_bytes: int = DENSE_LOGITS_BYTES,
                      start: int = 0, want_mean_logprob: bool = False) -> TokenLogprobs:
  """``log softmax(h_t W / tau)[y_{t+1}]`` for positions ``t >= start`` of a left-padded batch.

  Positions come from ``cumsum(attention_mask) - 1`` (left padding is skipped),
  exactly as the sampler assigns them, so trainer and sampler log-probs agree.
  With a ``mesh`` whose ``vocab_axis`` splits the vocabulary, the head stays split:
  `kernels_pallas.fused_logprobs_vocab_sharded` combines per-shard statistics
  instead of gathering ``W`` onto every device. ``impl``/``dense_logits_bytes``: see
  :func:`resolve_logprob_impl` (``"dense"``, ``"auto"`` or a kernel backend).
  ``start`` (static): the first predicting position; outputs are ``[B, T - 1 - start]``
  (column ``j`` predicts token ``start + j + 1``) and the vocabulary head runs on those
  positions only (a completion's log-probs need no head over the prompt).
  ``want_mean_logprob``: also ``mean_logprobs``, the mean log-prob over the whole
  vocabulary of each predicting distribution (same columns as ``logprobs``).
  """
  chex.assert_rank([tokens, attention_mask], 2)
  chex.assert_equal_shape([tokens, attention_mask])
  b, t = tokens.shape
  if not isinstance(start, int) or not 0 <= start < t - 1:
    raise ValueError(f"start must be an int in [0, {t - 1}) for {t} tokens, got {start!r}")
  hidden = models.hidden_states(config, params, tokens, attention_mask)[:, start:-1]
  return _head_logprobs(config, params, hidden, tokens[:, start + 1:], temperature=temperature,
                        want_entropy=want_entropy, impl=impl, mesh=mesh, vocab_axis=vocab_axis,
                        dense_logits_bytes=dense_logits_bytes,
                        want_mean_logprob=want_mean_logprob)


def _head_logprobs(config, params, hidden, targets, *, temperature, want_entropy, impl, mesh,
                   vocab_axis, dense_logits_bytes, want_mean_logprob) -> TokenLogprobs:
  """The vocabulary head on ``hidden [B, n, D]`` for ``targets [B, n]`` (see
  `sequence_logprobs` for ``impl``, ``mesh`` and the outputs)."""
  b, n = targets.shape
  weight = models.unembed_weight(config, params)
  args = (hidden.reshape(b * n, -1), weight.astype(hidden.dtype), targets.reshape(-1))
  axes = _vocab_parallel_axes(mesh, weight.shape[1], b * n, vocab_axis)
  impl = resolve_logprob_impl(impl, b * n, weight.shape[1],
                              vocab_parallel=axes is not None,
                              dense_logits_bytes=dense_logits_bytes)
  kwargs = dict(temperature=temperature, want_entropy=want_entropy)
  if want_mean_logprob:  # only passed when asked, so existing callers see the same calls
    kwargs["want_mean_logprob"] = True
  mean_logprobs = None
  if impl == "dense":
    dense = dense_logprobs(*args, **kwargs)
    logprobs, entropy = dense[:2]
    mean_logprobs = dense[2] if want_mean_logprob else None
  else:
    if axes is None:
      out = kernels_pallas.fused_logprobs(*args, impl=impl, **kwargs)
    else:
      out = kernels_pallas.fused_logprobs_vocab_sharded(
          *args, mesh=mesh, vocab_axis=axes[0], token_axes=axes[1], impl=impl, **kwargs)
    logprobs, entropy, mean_logprobs = out.logprobs, out.entropy, out.mean_logprob
  reshape = lambda x: None if x is None else x.reshape(b, n)
  return TokenLogprobs(logprobs.reshape(b, n), reshape(entropy), hidden, reshape(mean_logprobs))


def completion_logprobs(config: models.ModelConfig, params, prompt_tokens: jax.Array,
                        prompt_mask: jax.Array, completion_tokens: jax.Array,
                        completion_mask: jax.Array, *, temperature: float = 1.0,
                        want_entropy: bool = False, impl: str = "auto", mesh=None,
                        vocab_axis: str = "tensor",
                        dense_logits_bytes: int = DENSE_LOGITS_BYTES,
                        want_mean_logprob: bool = False,
                        prompt_group_size: Optional[int] = None) -> TokenLogprobs:
  """Log-probs ``[B, N]`` of the completion tokens after left-padded prompts ``[B, P]``.

  The sequence is ``prompt ++ completion``; the completion's token ``n`` is
  predicted by the hidden state at position ``P - 1 + n``. Padding after a
  completion's end is masked out of attention but still gets a (meaningless)
  log-prob; callers multiply by ``completion_mask``. ``want_mean_logprob``: also
  ``mean_logprobs [B, N]``, column ``n`` the mean log-prob over the vocabulary of the
  distribution that predicts completion token ``n`` (state ``s_n``).

  ``prompt_group_size`` G (None or 1: off): every run of G consecutive rows carries
  the same prompt (tokens and mask), as a GRPO batch does (check it with
  :func:`prompts_shared`); the prompt's layers then run once per run
  (`models.shared_prompt_hidden_states`), so the forward and backward cost
  ``(B/G)·P + B·N`` tokens instead of ``B·(P + N)``; the outputs equal the ordinary
  ones to float32 rounding. Only the first row of each run is read. ``B`` not a
  multiple of G: the ordinary forward.
  """
  chex.assert_rank([prompt_tokens, prompt_mask, completion_tokens, completion_mask], 2)
  chex.assert_equal_shape([prompt_tokens, prompt_mask])
  chex.assert_equal_shape([completion_tokens, completion_mask])
  if prompt_group_size is not None and (not isinstance(prompt_group_size, int)
                                        or prompt_group_size < 1):
    raise ValueError(f"prompt_group_size must be None or a positive int, got "
                     f"{prompt_group_size!r}")
  (b, p), n = prompt_tokens.shape, completion_tokens.shape[1]
  head = dict(temperature=temperature, want_entropy=want_entropy, impl=impl, mesh=mesh,
              vocab_axis=vocab_axis, dense_logits_bytes=dense_logits_bytes,
              want_mean_logprob=want_mean_logprob)

  g = prompt_group_size or 1
  if g == 1 or b % g or n < 1:
    tokens = jnp.concatenate([prompt_tokens, completion_tokens], axis=1)
    mask = jnp.concatenate([prompt_mask.astype(bool), completion_mask.astype(bool)], axis=1)
    return sequence_logprobs(config, params, tokens, mask, start=p - 1, **head)
  prompt_hidden, completion_hidden = models.shared_prompt_hidden_states(
      config, params, prompt_tokens[::g], prompt_mask[::g], completion_tokens, completion_mask)
  # Completion token 0 is predicted by the prompt's last position, token j > 0 by j - 1.
  hidden = jnp.concatenate([jnp.repeat(prompt_hidden[:, -1:], g, axis=0),
                            completion_hidden[:, :-1]], axis=1)
  return _head_logprobs(config, params, hidden, completion_tokens, **head)


def prompts_shared(prompt_tokens: jax.Array, prompt_mask: jax.Array, group_size: int):
  """Scalar bool: every run of ``group_size`` consecutive rows has the same prompt tokens
  and mask (the precondition of ``completion_logprobs(prompt_group_size=group_size)``).
  False when the rows do not divide into such runs."""
  b = prompt_tokens.shape[0]
  if group_size < 1 or b % group_size:
    return jnp.asarray(False)
  runs = lambda x: x.reshape((b // group_size, group_size) + x.shape[1:])
  mask = prompt_mask.astype(bool)
  return (jnp.all(runs(prompt_tokens) == prompt_tokens[::group_size][:, None])
          & jnp.all(runs(mask) == mask[::group_size][:, None]))

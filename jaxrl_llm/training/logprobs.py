"""Per-token log-probabilities of given tokens under a decoder LM (the trainer's forward).

This is the single place the training code turns parameters into log-probs. It
composes the model's final hidden states with the fused log-prob kernel
(:func:`kernels_pallas.fused_logprobs`), which never builds the ``[B*T, V]`` logits,
and routes to the vocab-parallel kernel when a mesh splits the vocabulary.

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
  """

  logprobs: jax.Array
  entropy: Optional[jax.Array]
  hidden: jax.Array


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
                      vocab_axis: str = "tensor") -> TokenLogprobs:
  """``log softmax(h_t W / tau)[y_{t+1}]`` for every position of a left-padded batch.

  Positions come from ``cumsum(attention_mask) - 1`` (left padding is skipped),
  exactly as the sampler assigns them, so trainer and sampler log-probs agree.
  With a ``mesh`` whose ``vocab_axis`` splits the vocabulary, the head stays split:
  `kernels_pallas.fused_logprobs_vocab_sharded` combines per-shard statistics
  instead of gathering ``W`` onto every device.
  """
  chex.assert_rank([tokens, attention_mask], 2)
  chex.assert_equal_shape([tokens, attention_mask])
  b, t = tokens.shape
  hidden = models.hidden_states(config, params, tokens, attention_mask)[:, :-1]
  weight = models.unembed_weight(config, params)
  args = (hidden.reshape(b * (t - 1), -1), weight.astype(hidden.dtype),
          tokens[:, 1:].reshape(-1))
  kwargs = dict(temperature=temperature, want_entropy=want_entropy, impl=impl)
  axes = _vocab_parallel_axes(mesh, weight.shape[1], b * (t - 1), vocab_axis)
  if axes is None:
    out = kernels_pallas.fused_logprobs(*args, **kwargs)
  else:
    out = kernels_pallas.fused_logprobs_vocab_sharded(
        *args, mesh=mesh, vocab_axis=axes[0], token_axes=axes[1], **kwargs)
  entropy = None if out.entropy is None else out.entropy.reshape(b, t - 1)
  return TokenLogprobs(out.logprobs.reshape(b, t - 1), entropy, hidden)


def completion_logprobs(config: models.ModelConfig, params, prompt_tokens: jax.Array,
                        prompt_mask: jax.Array, completion_tokens: jax.Array,
                        completion_mask: jax.Array, *, temperature: float = 1.0,
                        want_entropy: bool = False, impl: str = "auto", mesh=None,
                        vocab_axis: str = "tensor") -> TokenLogprobs:
  """Log-probs ``[B, N]`` of the completion tokens after left-padded prompts ``[B, P]``.

  The sequence is ``prompt ++ completion``; the completion's token ``n`` is
  predicted by the hidden state at position ``P - 1 + n``. Padding after a
  completion's end is masked out of attention but still gets a (meaningless)
  log-prob; callers multiply by ``completion_mask``.
  """
  chex.assert_rank([prompt_tokens, prompt_mask, completion_tokens, completion_mask], 2)
  chex.assert_equal_shape([prompt_tokens, prompt_mask])
  chex.assert_equal_shape([completion_tokens, completion_mask])
  p = prompt_tokens.shape[1]
  tokens = jnp.concatenate([prompt_tokens, completion_tokens], axis=1)
  mask = jnp.concatenate([prompt_mask.astype(bool), completion_mask.astype(bool)], axis=1)
  out = sequence_logprobs(config, params, tokens, mask, temperature=temperature,
                          want_entropy=want_entropy, impl=impl, mesh=mesh,
                          vocab_axis=vocab_axis)
  sl = slice(p - 1, None)
  return TokenLogprobs(out.logprobs[:, sl], None if out.entropy is None else out.entropy[:, sl],
                       out.hidden[:, sl])

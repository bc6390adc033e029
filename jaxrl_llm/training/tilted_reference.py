"""RAPO's reward-tilted reference normaliser from the frozen reference model, in chunks.

Deng et al. 2025, "Unlocking Reasoning Capabilities in LLMs via Reinforcement
Learning Exploration", arXiv 2510.03865 (SECONDARY spec, see
:mod:`jaxrl_llm.losses.rapo`). Per completion token ``t`` of row ``i``, with
``z`` the reference logits at the sampling temperature ``T`` (``h_t W / T``)::

    lognorm_t = log sum_a pi_ref(a | s_t)^phi_i = logsumexp(phi_i z) - phi_i logsumexp(z)

It needs the whole vocabulary, so it is computed once per batch in ``prepare``
(the reference is frozen: no gradient, no VJP) by a ``lax.map`` over chunks of
``chunk_size`` tokens: only ``[chunk_size, V]`` logits exist at a time, never
``[B * N, V]``.
"""

import jax
import jax.numpy as jnp

from jaxrl_llm import models
from jaxrl_llm.losses import masked_mean, rapo

sg = jax.lax.stop_gradient

TILTED_LOGNORM_KEY = rapo.TILTED_LOGNORM_KEY


def chunked_tilted_lognorm(hidden: jax.Array, weight: jax.Array, phi: jax.Array, *,
                           temperature: float = 1.0, chunk_size: int = 1024) -> jax.Array:
  """``lognorm [M]`` of ``M`` hidden states ``[M, D]`` under the head ``W [D, V]``.

  Rows are padded to a multiple of ``chunk_size`` (the padding is dropped);
  logits are float32.
  """
  if hidden.ndim != 2 or weight.ndim != 2 or hidden.shape[1] != weight.shape[0]:
    raise ValueError(f"hidden [M, D] and weight [D, V] do not match: {hidden.shape}, "
                     f"{weight.shape}")
  if phi.shape != hidden.shape[:1]:
    raise ValueError(f"phi must have shape {hidden.shape[:1]}, got {phi.shape}")
  if not isinstance(chunk_size, int) or chunk_size < 1:
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
  if temperature <= 0:
    raise ValueError(f"temperature must be > 0, got {temperature}")
  m = hidden.shape[0]
  chunk = min(chunk_size, m)
  pad = (-m) % chunk
  h = jnp.pad(hidden, ((0, pad), (0, 0))).reshape(-1, chunk, hidden.shape[1])
  p = jnp.pad(phi.astype(jnp.float32), (0, pad)).reshape(-1, chunk)
  w = weight.astype(hidden.dtype)

  def one(args):
    hc, pc = args
    z = jnp.dot(hc, w, preferred_element_type=jnp.float32) / temperature
    return jax.nn.logsumexp(pc[:, None] * z, axis=-1) - pc * jax.nn.logsumexp(z, axis=-1)

  out = jax.lax.map(one, (h, p))
  return sg(out.reshape(-1)[:m])


def ref_tilted_lognorm(config: models.ModelConfig, ref_params, prompt_tokens: jax.Array,
                       prompt_mask: jax.Array, completion_tokens: jax.Array,
                       completion_mask: jax.Array, phi: jax.Array, *,
                       temperature: float = 1.0, chunk_size: int = 1024) -> jax.Array:
  """``lognorm [B, N]`` at every completion position of ``prompt ++ completion``.

  Column ``n`` is the distribution that predicts completion token ``n`` (the
  hidden state at ``P - 1 + n``), as in
  :func:`jaxrl_llm.training.logprobs.completion_logprobs`; ``phi`` is ``[B]``.
  """
  b, p = prompt_tokens.shape
  n = completion_tokens.shape[1]
  if phi.shape != (b,):
    raise ValueError(f"phi must have shape {(b,)}, got {phi.shape}")
  tokens = jnp.concatenate([prompt_tokens, completion_tokens], axis=1)
  mask = jnp.concatenate([prompt_mask.astype(bool), completion_mask.astype(bool)], axis=1)
  hidden = sg(models.hidden_states(config, ref_params, tokens, mask)[:, p - 1:-1])
  weight = sg(models.unembed_weight(config, ref_params))
  phis = jnp.broadcast_to(phi[:, None], (b, n)).reshape(-1)
  out = chunked_tilted_lognorm(hidden.reshape(b * n, -1), weight, phis,
                               temperature=temperature, chunk_size=chunk_size)
  return out.reshape(b, n)


def prepare_tilted_lognorm(config: models.ModelConfig, ref_params, batch, *,
                           temperature: float = 1.0, phi: str = "linear", phi_min: float = 0.5,
                           chunk_size: int = 1024):
  """``make_rl_step``'s prepare hook for ``extras["ref_tilted_lognorm"]``: ``([B, N], metrics)``.

  ``phi`` / ``phi_min`` are the RAPO loss's options (the trainer passes the loss's
  values, so the loss and this normaliser use the same exponent); ``chunk_size``
  tokens per chunk of the vocabulary head.
  """
  if ref_params is None:
    raise ValueError("the RAPO normaliser ref_tilted_lognorm needs ref_params (a frozen "
                     "reference model)")
  phis, _ = rapo.rapo_phi(jnp.asarray(batch.rewards, jnp.float32), phi=phi, phi_min=phi_min)
  out = ref_tilted_lognorm(config, ref_params, batch.prompt_tokens, batch.prompt_mask,
                           batch.completion_tokens, batch.completion_mask, phis,
                           temperature=temperature, chunk_size=chunk_size)
  mask = jnp.asarray(batch.loss_mask).astype(jnp.float32)
  return out, {"tilted_lognorm_mean": masked_mean(out, mask)}

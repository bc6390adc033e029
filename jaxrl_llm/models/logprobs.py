"""Per-token log-probs (and entropy / KL to a reference model) without ``[B, T, V]`` logits.

The decoder's final hidden states go straight into `kernels_pallas.fused_logprobs`,
which streams over the vocabulary in tiles (forward and backward), so the
memory of an RL update no longer scales with ``tokens x vocab``.
"""

from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp

import kernels_pallas
from jaxrl_llm.models.config import ModelConfig
from jaxrl_llm.models.transformer import hidden_states, unembed_weight


def token_logprobs(config: ModelConfig, params, tokens, mask=None, *, positions=None,
                   temperature: float = 1.0, ref_config: Optional[ModelConfig] = None,
                   ref_params: Any = None, want_entropy: bool = False,
                   want_kl: Optional[str] = None, impl: str = "auto",
                   block_v: Optional[int] = None) -> kernels_pallas.FusedOutput:
  """Log-prob of every token given its prefix, aligned with ``tokens``.

  ``out.logprobs[b, t] = log softmax(z_{b,t-1} / temperature)[tokens[b, t]]`` where
  ``z_{b,t-1}`` are the logits after ``tokens[b, :t]``. Column 0 (no prefix) and
  every position whose token or predecessor is padding (``mask == 0``) are 0.
  ``entropy[b, t]`` is the entropy of that same next-token distribution;
  ``kl[b, t]`` compares it with the reference model's (``want_kl="k3"``: the
  sampled-token estimator ``e^r - 1 - r``, ``r = log q - log p``; ``"full"``: the
  exact ``sum_v p log(p/q)``). The reference model gets no gradient.

  Args:
    config, params: the policy (`jaxrl_llm.models`).
    tokens: ``[B, T]`` int ids (prompt + completion), left-padded.
    mask: ``[B, T]`` 1 for real tokens (default: all ones).
    positions: ``[B, T]`` position ids (default ``cumsum(mask) - 1``).
    temperature: divides the logits (the sampler's temperature).
    ref_config, ref_params: the frozen reference model, needed for ``want_kl``.
    want_entropy, want_kl: extra outputs (``None`` in the result when not asked).
    impl, block_v: passed to `kernels_pallas.fused_logprobs` (``"auto"`` picks the
      Pallas kernel of the platform, the chunked XLA path on CPU).

  Returns:
    `kernels_pallas.FusedOutput` of ``[B, T]`` float32 arrays.
  """
  tokens = jnp.asarray(tokens)
  b, t = tokens.shape
  mask = jnp.ones((b, t), jnp.int32) if mask is None else jnp.asarray(mask)
  if want_kl is not None and ref_params is None:
    raise ValueError(f"token_logprobs: want_kl={want_kl!r} needs ref_params (the reference model)")
  h = hidden_states(config, params, tokens, mask, positions)
  flat = lambda x: x[:, :-1].reshape(b * (t - 1), x.shape[-1])
  kwargs = dict(temperature=temperature, want_entropy=want_entropy, impl=impl, block_v=block_v)
  if ref_params is not None:
    ref_config = config if ref_config is None else ref_config
    ref_h = jax.lax.stop_gradient(hidden_states(ref_config, ref_params, tokens, mask, positions))
    kwargs.update(ref_hidden=flat(ref_h),
                  ref_weight=jax.lax.stop_gradient(unembed_weight(ref_config, ref_params)),
                  want_kl=want_kl)
  out = kernels_pallas.fused_logprobs(flat(h), unembed_weight(config, params),
                                      tokens[:, 1:].reshape(-1), **kwargs)
  valid = (mask[:, 1:] * mask[:, :-1]).astype(jnp.float32)

  def align(x):
    if x is None:
      return None
    x = x.reshape(b, t - 1).astype(jnp.float32) * valid
    return jnp.pad(x, ((0, 0), (1, 0)))

  return kernels_pallas.FusedOutput(*(align(x) for x in out))

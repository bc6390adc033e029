"""A-LoL: offline, sequence-level advantage policy gradient on a fixed dataset.

Baheti et al., "Leftover Lunch: Advantage-based Offline Reinforcement Learning for
Language Models", arXiv 2305.14718 (ICLR 2024). The whole response is one action; the
reference policy ``pi_ref`` (the SFT model) gives the baseline ``V_ref(x)`` and the
advantage ``A(x, y) = R(x, y) - V_ref(x)`` is computed once, before training
(``jaxrl_llm.training.a_lol``). Training examples with ``A < 0`` are dropped and the rest
are sampled with probability ``p_i ∝ A_i^+`` (:func:`positive_advantage_sampler`).

With ``nll[i, t] = -lp[i, t]`` on the response tokens (mask ``m``, EOS included) and
``A^+ = max(A, 0)``, the four variants (:data:`A_LOL_VARIANTS`) are, per sequence ``i``::

    a_lol:     L_i = A_i^+ * clip(sg[exp(sum_t lp - sum_t lp_ref)], 1-eps, 1+eps) * sum_t nll[i,t]
    a_lol_seq: L_i = A_i^+ * sum_t clip(sg[exp(lp[i,t] - lp_ref[i,t])], 1-eps, 1+eps) * nll[i,t]
    a_lol_kl:  L_i = A_i^+ * sum_t nll[i,t] + beta * (sum_t lp[i,t] - sum_t lp_ref[i,t])
    ref_free:  L_i = A_i * sum_t nll[i,t]                     (A not clipped at 0)

and the loss is ``mean_i L_i``: :func:`a_lol_loss` returns ``total = sum_i L_i``,
``count = B``. Sums (not means) over tokens, as the official code
(``abaheti95/LoL-RL`` @9f8d816, ``lolrl_qlora_llama_hh.py``). Defaults: ``eps = 0.9``
(ratio clamped to ``[0.1, 1.9]``), ``beta = 0``; the paper's A-LoL KL runs use
``beta > 0`` without a ratio clip.
"""

from __future__ import annotations

import types
from typing import Callable

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import masked_mean
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient

# mode -> unnormalised sampling weight of each example from its advantage
SAMPLER_MODES: types.MappingProxyType[str, Callable] = types.MappingProxyType({
    "good_priority": lambda adv: jnp.maximum(adv, 0.0),
    "good_random": lambda adv: (adv > 0).astype(adv.dtype),
})


def _seq_log_ratio(lp, lp_ref, m):
  """``sum_t m (lp - lp_ref)`` per sequence; padded garbage never enters ``exp``."""
  return jnp.sum(jnp.where(m > 0, lp - lp_ref, 0.0), axis=-1)


def _variant_a_lol(lp, lp_ref, adv, m, nll, *, clip_eps, kl_beta):
  """Sequence-level ratio ``pi(y)/pi_ref(y)``, detached and clipped."""
  del kl_beta
  ratio = jnp.exp(sg(_seq_log_ratio(lp, lp_ref, m)))
  clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
  per_seq = jnp.maximum(adv, 0.0) * clipped * jnp.sum(nll, axis=-1)
  return per_seq, {"ratio_mean": jnp.mean(ratio),
                   "ratio_clip_frac": jnp.mean((ratio != clipped).astype(lp.dtype))}


def _variant_a_lol_seq(lp, lp_ref, adv, m, nll, *, clip_eps, kl_beta):
  """Per-token ratios ``pi(y_t)/pi_ref(y_t)``, detached and clipped."""
  del kl_beta
  ratio = jnp.exp(sg(jnp.where(m > 0, lp - lp_ref, 0.0)))
  clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps)
  per_seq = jnp.maximum(adv, 0.0) * jnp.sum(clipped * nll, axis=-1)
  return per_seq, {"ratio_mean": masked_mean(ratio, m),
                   "ratio_clip_frac": masked_mean((ratio != clipped).astype(lp.dtype), m)}


def _variant_a_lol_kl(lp, lp_ref, adv, m, nll, *, clip_eps, kl_beta):
  """No ratio; a differentiated sequence log-ratio penalty ``beta (log pi(y) - log pi_ref(y))``."""
  del clip_eps
  seq_kl = _seq_log_ratio(lp, lp_ref, m)
  per_seq = jnp.maximum(adv, 0.0) * jnp.sum(nll, axis=-1) + kl_beta * seq_kl
  return per_seq, {"seq_log_ratio_mean": jnp.mean(seq_kl)}


def _variant_ref_free(lp, lp_ref, adv, m, nll, *, clip_eps, kl_beta):
  """Advantage-weighted NLL, negative advantages kept."""
  del lp, lp_ref, m, clip_eps, kl_beta
  return adv * jnp.sum(nll, axis=-1), {}


# name -> fn(lp, lp_ref, adv [B], m, nll [B, N], *, clip_eps, kl_beta) -> (L_i [B], metrics)
A_LOL_VARIANTS: types.MappingProxyType[str, Callable] = types.MappingProxyType({
    "a_lol": _variant_a_lol,
    "a_lol_seq": _variant_a_lol_seq,
    "a_lol_kl": _variant_a_lol_kl,
    "ref_free": _variant_ref_free,
})


def a_lol_loss(logprobs: jax.Array, ref_logprobs: jax.Array, advantages: jax.Array,
               mask: jax.Array, *, variant: str = "a_lol", clip_eps: float = 0.9,
               kl_beta: float = 0.0) -> LossOutput:
  """A-LoL sequence-level offline policy-gradient loss (one of :data:`A_LOL_VARIANTS`).

  With ``nll = -lp`` on masked tokens and ``A^+ = max(A, 0)``::

      a_lol:     L_i = A_i^+ clip(sg[pi(y_i)/pi_ref(y_i)], 1-eps, 1+eps) sum_t nll[i,t]
      a_lol_seq: L_i = A_i^+ sum_t clip(sg[pi(y_it)/pi_ref(y_it)], 1-eps, 1+eps) nll[i,t]
      a_lol_kl:  L_i = A_i^+ sum_t nll[i,t] + beta (sum_t lp[i,t] - sum_t lp_ref[i,t])
      ref_free:  L_i = A_i sum_t nll[i,t]
      loss = (1/B) sum_i L_i

  Baheti et al., "Leftover Lunch: Advantage-based Offline Reinforcement Learning for
  Language Models", arXiv 2305.14718.

  Args:
    logprobs: ``[B, N]`` current-policy log-probs of the response tokens (differentiated).
    ref_logprobs: ``[B, N]`` frozen reference log-probs (constant).
    advantages: ``[B]`` sequence advantages ``R - V_ref(x)``, computed once before training.
    mask: ``[B, N]`` response tokens (EOS included).
    variant: a key of :data:`A_LOL_VARIANTS`.
    clip_eps: ratio clip ``eps`` in ``[0, 1)`` (``a_lol``, ``a_lol_seq``).
    kl_beta: weight ``beta >= 0`` of the sequence log-ratio (``a_lol_kl``).

  Returns:
    ``LossOutput(total = sum_i L_i, count = B, metrics)``; metrics: ``adv_mean``,
    ``adv_positive_frac``, ``seq_nll_mean`` and the variant's ratio statistics.
  """
  _checks.check_choice(variant, tuple(A_LOL_VARIANTS), "variant")
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  shape = logprobs.shape
  _checks.check_shape(ref_logprobs, shape, "ref_logprobs")
  _checks.check_shape(mask, shape, "mask")
  _checks.check_shape(advantages, shape[:1], "advantages")
  if not 0.0 <= clip_eps < 1.0:
    raise ValueError(f"clip_eps must be in [0, 1), got {clip_eps}")
  if kl_beta < 0.0:
    raise ValueError(f"kl_beta must be >= 0, got {kl_beta}")
  dtype = jnp.promote_types(logprobs.dtype, jnp.float32)
  lp = logprobs.astype(dtype)
  lp_ref = sg(jnp.asarray(ref_logprobs).astype(dtype))
  adv = sg(jnp.asarray(advantages).astype(dtype))
  m = jnp.asarray(mask).astype(dtype)
  nll = jnp.where(m > 0, -lp, 0.0) * m
  per_seq, metrics = A_LOL_VARIANTS[variant](lp, lp_ref, adv, m, nll, clip_eps=clip_eps,
                                             kl_beta=kl_beta)
  metrics = dict(metrics, adv_mean=jnp.mean(adv),
                 adv_positive_frac=jnp.mean((adv > 0).astype(dtype)),
                 seq_nll_mean=jnp.mean(jnp.sum(nll, axis=-1)))
  return LossOutput(jnp.sum(per_seq), jnp.asarray(shape[0], dtype),
                    {k: sg(v) for k, v in metrics.items()})


def positive_advantage_sampler(advantages: jax.Array, key: jax.Array, batch_size: int, *,
                               mode: str = "good_priority"):
  """Indices of a training batch drawn from the examples with a positive advantage.

  ``good_priority``: ``p_i = A_i^+ / sum_j A_j^+``; ``good_random``: uniform over
  ``{i : A_i > 0}``; draws are with replacement. Examples with ``A <= 0`` are never
  drawn (the "leftover lunch" filter). The paper scales the number of training steps
  by the positive fraction ``|{A > 0}| / n`` (returned as a metric).
  Baheti et al., arXiv 2305.14718, Sec. 2 (A-LoL "priority sampling").

  Args:
    advantages: ``[n]`` advantages of the whole training set.
    key: PRNG key.
    batch_size: how many indices to draw.
    mode: ``"good_priority"`` or ``"good_random"``.

  Returns:
    ``(indices [batch_size] int32, {"positive_frac", "num_positive"})``.

  Raises:
    ValueError: bad shapes or options; with concrete advantages, no positive one.
  """
  _checks.check_choice(mode, tuple(SAMPLER_MODES), "mode")
  _checks.check_rank(advantages, 1, "advantages")
  _checks.check_floating(advantages, "advantages")
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
  adv = jnp.asarray(advantages).astype(jnp.float32)
  positive = adv > 0
  num_positive = jnp.sum(positive)
  if not isinstance(num_positive, jax.core.Tracer) and int(num_positive) == 0:
    raise ValueError("advantages has no positive entry: A-LoL drops every example with A <= 0, "
                     "so there is nothing to sample")
  weight = SAMPLER_MODES[mode](adv)
  p = weight / jnp.sum(weight)
  idx = jax.random.choice(key, adv.shape[0], (batch_size,), replace=True, p=p)
  return idx.astype(jnp.int32), {"positive_frac": jnp.mean(positive.astype(jnp.float32)),
                                 "num_positive": num_positive}

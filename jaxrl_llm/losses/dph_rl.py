"""DPH-RL: PPO on exploration prompts plus an f-divergence on rehearsed base samples,
and f-divergences as the RL step's divergence term on policy samples.

Li et al. 2025, "The Choice of Divergence: A Neglected Key to Mitigating Diversity
Collapse in Reinforcement Learning with Verifiable Reward", arXiv 2509.07430
(official code: seamoke/DPH-RL, ``dp_actor.py::update_policy`` with ``data_type == 2``,
``core_algos.py::{js_low_var, alpha_divergence_f, kl_penalty}``).

A DPH-RL batch has two kinds of rows: RL rows (sampled from the current policy on the
prompts the base model does not always solve, D_exp) and rehearsal rows (one stored
correct completion of the base model pi_0 per prompt it always solves, D_pef, with
pi_0's per-token log-probs). See :mod:`jaxrl_llm.data.rehearsal` for the split and
storage and ``training.rehearsal`` for the batch augmenter that appends the rows.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks, divergences, policy
from jaxrl_llm.losses.aggregation import masked_mean, masked_sum
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient

MIX_MODES = ("tokens", "means")


def rehearsal_divergence(logprobs: jax.Array, base_logprobs: jax.Array, *,
                         divergence: str = "forward_kl", alpha: float = 0.2,
                         log_ratio_clamp: float = 20.0,
                         f_clamp: Optional[float] = None) -> jax.Array:
  """Per-token ``f(u_t)``, ``u_t = pi_theta(y_t | .) / pi_0(y_t | .)``, on tokens ``y ~ pi_0``.

  ``log u_t = clip(lp_t - lp0_t, -log_ratio_clamp, log_ratio_clamp)`` and ``f`` is a
  generator of :func:`jaxrl_llm.losses.f_generator` (``E_{pi_0}[f(u)] = D_f``):

  * ``forward_kl``: ``u - log u - 1`` (k3 / ``low_var_kl``; estimates ``KL(pi_0 || pi_theta)``)
  * ``js``: ``u log u - (u + 1) log((u + 1) / 2)`` (DPH-RL's ``js_low_var``: twice the
    Jensen-Shannon generator)
  * ``alpha``: ``(u^{1-a} - (1-a) u - a) / (a (a - 1))``, ``a = alpha`` (``alpha_divergence_f``)
  * ``reverse_kl``, ``chi2``, ``tv``: the other generators of ``f_generator``.

  ``f_clamp``: the result is clipped to ``[-f_clamp, f_clamp]``. ``None`` (default) = the
  official behaviour: ``10`` for ``forward_kl`` (verl's ``kl_penalty`` ``low_var_kl``
  clamp, which DPH-RL's forward mode calls), no clamp for the other generators. A clamp
  zeroes the gradient where it binds.
  """
  _checks.check_floating(logprobs, "logprobs")
  _checks.check_shape(base_logprobs, jnp.shape(logprobs), "base_logprobs")
  if f_clamp is not None and f_clamp <= 0:
    raise ValueError(f"f_clamp must be positive or None, got {f_clamp}")
  f = divergences.f_divergence(logprobs, base_logprobs.astype(logprobs.dtype), divergence,
                               alpha=alpha, log_ratio_clamp=log_ratio_clamp)
  clamp = (10.0 if divergence == "forward_kl" else None) if f_clamp is None else f_clamp
  return f if clamp is None else jnp.clip(f, -clamp, clamp)


def dph_rl_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                mask: jax.Array, *, extras, divergence: str = "forward_kl", eta: float = 0.01,
                alpha: float = 0.2, clip_low: float = 0.2, clip_high: float = 0.28,
                dual_clip: Optional[float] = None, log_ratio_clamp: float = 20.0,
                f_clamp: Optional[float] = None, mix: str = "tokens",
                is_weights: Optional[jax.Array] = None) -> LossOutput:
  """DPH-RL: clipped PG on RL rows + ``eta`` times an f-divergence on rehearsal rows.

  With ``R`` the rehearsal rows (``extras["is_rehearsal"]``), ``m`` the loss mask,
  ``m_rl = m * (1 - R)``, ``m_re = m * R``, ``l_t`` the PPO clipped surrogate
  (:func:`jaxrl_llm.losses.ppo_policy_loss`, clip ``1 - clip_low .. 1 + clip_high``)
  and ``f_t`` :func:`rehearsal_divergence` against ``lp0 = extras["base_logprobs"]``::

      mix="tokens" (default):  L = (sum_rl l_t m_rl + eta * sum_re f_t m_re) / (N_rl + N_re)
      mix="means":             L = mean_rl(l_t) + eta * mean_re(f_t)

  ``N_rl``, ``N_re`` are the token counts. The official code (dp_actor.py) runs
  homogeneous micro-batches (all RL or all rehearsal), each contributing its token
  mean (PG, or ``eta * mean f``) divided by the number of micro-batches per
  mini-batch; i.e. a weighted sum of the two token means with weights equal to each
  kind's share of micro-batches. ``"tokens"`` is that weighting with shares counted
  in tokens instead of micro-batches (the same when rows have equal length), and is
  an exact ``sum / count`` under gradient accumulation: ``total`` is the numerator
  and ``count = N_rl + N_re``. ``"means"`` is the plain sum of the two token means of
  the local batch (``total = L * count``); it equals the official combination with
  equal micro-batch shares and is exact only without gradient accumulation. The
  advantages of rehearsal rows are ignored (zero), and RL rows get no divergence
  term (DPH-RL's forward / JS modes use no reference KL on RL rows).

  Args:
    logprobs, old_logprobs: ``[B, N]`` current and behaviour log-probs.
    advantages: ``[B]`` or ``[B, N]`` (e.g. GRPO); only RL rows use them.
    mask: ``[B, N]`` loss mask.
    extras: mapping with ``is_rehearsal`` ``[B]`` bool and ``base_logprobs`` ``[B, N]``
      (pi_0's log-probs of the rehearsal tokens at the sampling temperature; 0 on RL rows).
    divergence: a generator name of :func:`jaxrl_llm.losses.f_generator`
      (DPH-RL: ``forward_kl`` or ``js``; ``alpha`` with ``alpha``).
    eta: weight of the rehearsal term (DPH-RL's ``sft_loss_coeff``: forward 0.01-0.05,
      JS 0.05-0.2 in the README; scripts default 0.01).
    alpha: alpha of the alpha-divergence.
    clip_low, clip_high, dual_clip: PPO clip (DAPO clip-higher 0.2 / 0.28 as DPH-RL).
    log_ratio_clamp, f_clamp: see :func:`rehearsal_divergence`.
    mix: ``"tokens"`` or ``"means"`` (above).
    is_weights: optional constant importance weights for the RL rows' PG term.

  Returns:
    LossOutput; metrics: the PPO metrics of the RL rows, ``rl_pg_loss`` (token mean),
    ``rehearsal_divergence`` (token mean of ``f``), ``rehearsal_log_ratio`` (mean
    ``lp - lp0``), ``rehearsal_token_frac``.
  """
  _checks.check_choice(mix, MIX_MODES, "mix")
  if eta < 0:
    raise ValueError(f"eta must be >= 0, got {eta}")
  _checks.check_rank(logprobs, 2, "logprobs")
  b, n = logprobs.shape
  for key in ("is_rehearsal", "base_logprobs"):
    if key not in extras:
      raise ValueError(f"dph_rl_loss needs extras[{key!r}] (the 'rehearsal' batch augmenter "
                       f"provides it); got keys {sorted(extras)}")
  is_rehearsal = jnp.asarray(extras["is_rehearsal"])
  _checks.check_shape(is_rehearsal, (b,), "extras['is_rehearsal']")
  if is_rehearsal.dtype != jnp.bool_:
    raise ValueError(f"extras['is_rehearsal'] must be bool, got {is_rehearsal.dtype}")
  base_logprobs = jnp.asarray(extras["base_logprobs"])
  _checks.check_shape(base_logprobs, (b, n), "extras['base_logprobs']")
  _checks.check_shape(mask, (b, n), "mask")
  m = jnp.asarray(mask).astype(jnp.float32)
  re = is_rehearsal.astype(jnp.float32)[:, None]
  m_rl, m_re = m * (1.0 - re), m * re
  adv = _checks.per_sequence_to_tokens(advantages, (b, n), "advantages") * (1.0 - re)
  pg = policy.ppo_policy_loss(logprobs, old_logprobs, adv, m_rl, clip_low=clip_low,
                              clip_high=clip_high, dual_clip=dual_clip,
                              log_ratio_clamp=log_ratio_clamp, agg_mode="token-mean",
                              is_weights=is_weights)
  f = rehearsal_divergence(logprobs, jnp.where(m_re > 0, base_logprobs, 0.0),
                           divergence=divergence, alpha=alpha,
                           log_ratio_clamp=log_ratio_clamp, f_clamp=f_clamp)
  # Off the rehearsal mask f is replaced by 0 before summing (no NaN/inf can leak).
  f_sum = masked_sum(jnp.where(m_re > 0, f, 0.0), m_re)
  n_rl, n_re = jnp.sum(m_rl), jnp.sum(m_re)
  count = n_rl + n_re
  if mix == "tokens":
    total = pg.total + eta * f_sum
  else:
    safe = lambda x: jnp.where(x > 0, x, 1.0)  # noqa: E731
    total = (pg.total / safe(n_rl) + eta * f_sum / safe(n_re)) * count
  metrics = dict(pg.metrics)
  metrics.update({
      "rl_pg_loss": sg(pg.total / jnp.where(n_rl > 0, n_rl, 1.0)),
      "rehearsal_divergence": sg(masked_mean(jnp.where(m_re > 0, f, 0.0), m_re)),
      "rehearsal_log_ratio": sg(masked_mean(jnp.where(m_re > 0, logprobs - base_logprobs,
                                                      0.0), m_re)),
      "rehearsal_token_frac": sg(n_re / jnp.where(count > 0, count, 1.0)),
  })
  return LossOutput(total, count, metrics)


# ---- f-divergences on policy samples (the RL step's divergence term) ---------------------


def parse_f_divergence(name: str) -> tuple[str, float]:
  """``"f:<kind>"`` or ``"f:alpha=<a>"`` -> ``(kind, alpha)`` (alpha defaults to 0.2)."""
  if not name.startswith("f:"):
    raise ValueError(f"an f-divergence name starts with 'f:', got {name!r}")
  body = name[2:]
  kind, alpha = body, 0.2
  if "=" in body:
    kind, value = body.split("=", 1)
    if kind != "alpha":
      raise ValueError(f"only f:alpha takes a parameter ('f:alpha=0.5'), got {name!r}")
    try:
      alpha = float(value)
    except ValueError:
      raise ValueError(f"alpha in {name!r} is not a number") from None
  _checks.check_choice(kind, divergences.F_DIVERGENCES, "f-divergence kind")
  if kind == "alpha" and alpha in (0.0, 1.0):
    raise ValueError(f"alpha must not be 0 or 1 (use f:forward_kl / f:reverse_kl), got {name!r}")
  return kind, alpha


def f_divergence_policy_samples(logprobs: jax.Array, ref_logprobs: jax.Array, kind: str, *,
                                alpha: float = 0.2,
                                log_ratio_clamp: float = 20.0) -> jax.Array:
  """Per-token estimate of ``D_f(pi_theta || pi_ref)`` on tokens sampled from ``pi_theta``.

  With ``u = pi_theta / pi_ref`` (``log u = clip(lp - lp_ref, ±log_ratio_clamp)``) and a
  generator ``f`` of :func:`jaxrl_llm.losses.f_generator` (``D_f = E_ref[f(u)]``), the
  change of measure ``E_ref[g] = E_theta[g pi_ref / pi_theta]`` gives::

      D_f(pi_theta || pi_ref) = E_ref[f(u)] = E_theta[f(u) / u]

  so the per-token value is ``f(u) / u = f(u) exp(-log u)``. Examples: ``reverse_kl``
  (``f = u log u - u + 1``) gives ``log u - 1 + 1/u``, Schulman's k3 of ``KL(pi_theta ||
  pi_ref)``; ``forward_kl`` (``f = u - 1 - log u``) gives ``r log r - r + 1`` with ``r =
  1/u``, an estimate of ``KL(pi_ref || pi_theta)``; ``js`` gives twice the JS divergence.
  Generators of :func:`f_generator` are non-negative, so is every per-token value. As
  with k3 in verl, the loss differentiates the per-token value at fixed samples.
  """
  _checks.check_shape(ref_logprobs, jnp.shape(logprobs), "ref_logprobs")
  f = divergences.f_generator(kind, alpha)
  log_u = jnp.clip(logprobs - ref_logprobs, -log_ratio_clamp, log_ratio_clamp)
  return f(jnp.exp(log_u), log_u) * jnp.exp(-log_u)

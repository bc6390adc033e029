"""Policy-gradient objectives for LLMs: PPO-clip, GSPO, CISPO, REINFORCE / GPG.

Every loss takes per-token log-probabilities ``[B, T]`` of the sampled tokens
under the current policy (``logprobs``, differentiated) and the behaviour policy
(``old_logprobs``, constant), advantages ``[B]`` (one per sequence) or
``[B, T]``, and a ``mask`` ``[B, T]``; it returns a :class:`LossOutput` whose
``total / count`` is the loss to minimise under the chosen aggregation mode
(:func:`jaxrl_llm.losses.aggregate`). Optional ``is_weights`` ``[B]`` or
``[B, T]`` (e.g. :func:`truncated_importance_weights`) multiply the per-token
loss, as verl's ``rollout_is_weights`` do; they are not differentiated.

Metrics are token means over the mask (0 if the batch is all masked).
Low-precision (bf16/fp16) inputs are computed in float32; gradients flow back
in the input dtype.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import aggregate, masked_mean
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient


def _upcast(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _prepare(logprobs, old_logprobs, advantages, mask, is_weights):
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  shape = logprobs.shape
  if old_logprobs is not None:
    _checks.check_shape(old_logprobs, shape, "old_logprobs")
  logprobs = _upcast(logprobs)
  _checks.check_shape(mask, shape, "mask")
  adv = _checks.per_sequence_to_tokens(advantages, shape, "advantages").astype(logprobs.dtype)
  m = jnp.asarray(mask).astype(logprobs.dtype)
  w = None
  if is_weights is not None:
    w = sg(_checks.per_sequence_to_tokens(is_weights, shape, "is_weights").astype(logprobs.dtype))
  old = None if old_logprobs is None else _upcast(old_logprobs).astype(logprobs.dtype)
  return logprobs, old, adv, m, w


def _finish(per_token, m, w, agg_mode, horizon, metrics) -> LossOutput:
  if w is not None:
    per_token = per_token * w
  total, count = aggregate(per_token, m, agg_mode, horizon=horizon)
  return LossOutput(total, count, {k: sg(v) for k, v in metrics.items()})


def _ratio_stats(ratio, m, prefix="ratio"):
  has_any = jnp.sum(m) > 0
  big = jnp.finfo(ratio.dtype).max
  return {
      f"{prefix}_mean": masked_mean(ratio, m),
      f"{prefix}_max": jnp.where(has_any, jnp.max(jnp.where(m > 0, ratio, -big)), 0.0),
      f"{prefix}_min": jnp.where(has_any, jnp.min(jnp.where(m > 0, ratio, big)), 0.0),
  }


def pg_clip_metrics(ratio: jax.Array, log_ratio: jax.Array, advantages: jax.Array,
                    mask: jax.Array, *, low: float, high: float, sign_aware: bool = True,
                    ratio_prefix: Optional[str] = "ratio") -> tuple[jax.Array, dict]:
  """Clip diagnostics shared by the ratio-based policy losses: ``(clipped, metrics)``.

  With ratio bounds ``[low, high]`` (PPO: ``[1 - eps_low, 1 + eps_high]``) and
  ``A`` the advantages broadcast to ``[B, T]``::

      sign_aware:     low side  = (A < 0) & (r < low),   high side = (A > 0) & (r > high)
      not sign_aware: low side  = r < low,               high side = r > high

  The sign-aware sides are exactly the tokens whose PPO-clip term is the clipped
  one (``-A clip(r) > -A r``, verl's ``pg_clipfrac``), i.e. whose gradient the clip
  removes; the plain sides suit a clipped weight (CISPO). This is a diagnostic
  helper, not a loss (no citation of its own); everything is stop-gradient.

  Args:
    ratio: ``[B, T]`` the ratio the loss clips (token or broadcast sequence ratio).
    log_ratio: ``[B, T]`` ``lp - lp_old`` for ``approx_kl`` (mean of ``-log_ratio``,
      verl's ``ppo_kl``).
    advantages: ``[B]`` or ``[B, T]``.
    mask: ``[B, T]`` tokens that count.
    low, high: ratio bounds (``-inf`` / ``inf`` for a one-sided or no clip).
    sign_aware: whether a side needs the advantage sign that makes it bind.
    ratio_prefix: prefix of the ``*_mean/max/min`` ratio statistics; None omits them.

  Returns:
    ``clipped`` ``[B, T]`` float (1 on clipped counted tokens) and metrics
    ``clip_frac`` (either side), ``clip_frac_low``, ``clip_frac_high``,
    ``approx_kl`` and ``<ratio_prefix>_mean/max/min``: token means over the mask
    (0 if the batch is all masked).
  """
  _checks.check_rank(ratio, 2, "ratio")
  shape = ratio.shape
  _checks.check_shape(log_ratio, shape, "log_ratio")
  _checks.check_shape(mask, shape, "mask")
  ratio, log_ratio = sg(_upcast(ratio)), sg(_upcast(log_ratio))
  adv = sg(_checks.per_sequence_to_tokens(advantages, shape, "advantages").astype(ratio.dtype))
  m = jnp.asarray(mask).astype(ratio.dtype)
  is_low, is_high = ratio < low, ratio > high
  if sign_aware:
    is_low, is_high = is_low & (adv < 0), is_high & (adv > 0)
  is_low, is_high = is_low.astype(m.dtype) * m, is_high.astype(m.dtype) * m
  clipped = jnp.maximum(is_low, is_high)
  metrics = {
      "clip_frac": masked_mean(clipped, m),
      "clip_frac_low": masked_mean(is_low, m),
      "clip_frac_high": masked_mean(is_high, m),
      "approx_kl": masked_mean(-log_ratio, m),
  }
  if ratio_prefix is not None:
    metrics.update(_ratio_stats(ratio, m, prefix=ratio_prefix))
  return clipped, metrics


def _check_clip(clip_low, clip_high, name_low="clip_low", name_high="clip_high"):
  if clip_low is not None and not 0.0 <= clip_low < 1.0:
    raise ValueError(f"{name_low} must be in [0, 1), got {clip_low}")
  if clip_high is not None and clip_high < 0.0:
    raise ValueError(f"{name_high} must be >= 0, got {clip_high}")


def _log_ratio(logprobs, old_logprobs, m, clamp):
  # Zero outside the mask first, so padded garbage (e.g. -inf) cannot turn into
  # NaN gradients through exp().
  log_ratio = jnp.where(m > 0, logprobs - old_logprobs, 0.0)
  if clamp is not None:
    log_ratio = jnp.clip(log_ratio, -clamp, clamp)
  return log_ratio


def ppo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                    mask: jax.Array, *, clip_low: float = 0.2,
                    clip_high: Optional[float] = None, dual_clip: Optional[float] = None,
                    log_ratio_clamp: Optional[float] = 20.0, agg_mode: str = "token-mean",
                    horizon: Optional[float] = None,
                    is_weights: Optional[jax.Array] = None) -> LossOutput:
  """PPO clipped surrogate with asymmetric clip and optional dual clip.

  Per token, with ``r = exp(clamp(lp - lp_old, -C, C))``::

      L = max(-A r, -A clip(r, 1 - clip_low, 1 + clip_high))
      L = min(L, -A c)   where A < 0            (dual clip, only if c = dual_clip)

  PPO: Schulman et al. 2017, "Proximal Policy Optimization Algorithms".
  ``clip_high > clip_low`` is DAPO's clip-higher (Yu et al. 2025, "DAPO: An
  Open-Source LLM Reinforcement Learning System at Scale"); the dual clip bounds
  the loss of negative-advantage tokens with a huge ratio (Ye et al. 2020,
  "Mastering Complex Control in MOBA Games with Deep RL", arXiv 1912.09729).

  Same as verl 0.9.1 ``vanilla`` with ``dual_clip=3.0`` (verl always applies
  its ``clip_ratio_c``, default 3.0) and ``log_ratio_clamp=20``; same as TRL
  1.16 ``dapo``/``bnpo`` with ``dual_clip=None`` (TRL's ``delta`` is ``dual_clip``),
  up to TRL's unclamped log-ratio.

  Args:
    logprobs: ``[B, T]`` current-policy log-probs of the sampled tokens.
    old_logprobs: ``[B, T]`` behaviour-policy log-probs (constant).
    advantages: ``[B]`` or ``[B, T]``.
    mask: ``[B, T]`` tokens that count.
    clip_low: ``eps_low``; the ratio is clipped below at ``1 - clip_low``.
    clip_high: ``eps_high``; defaults to ``clip_low``.
    dual_clip: ``c > 1``; None disables the dual clip.
    log_ratio_clamp: clamp of the log-ratio before ``exp`` (None disables).
    agg_mode: aggregation mode, see :func:`aggregate`.
    horizon: constant length for ``seq-mean-token-sum-norm``.
    is_weights: optional constant per-token/sequence weights.

  Returns:
    LossOutput with metrics ``clip_frac`` (either side clipped; verl
    ``pg_clipfrac``), ``clip_frac_low``, ``clip_frac_high``, ``dual_clip_frac``
    (verl ``pg_clipfrac_lower``), ``approx_kl`` (mean of ``lp_old - lp``, verl
    ``ppo_kl``), ``ratio_mean/max/min``.
  """
  clip_high = clip_low if clip_high is None else clip_high
  _check_clip(clip_low, clip_high)
  if dual_clip is not None and dual_clip <= 1.0:
    raise ValueError(f"dual_clip must be > 1, got {dual_clip}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  per_token = jnp.maximum(unclipped, clipped)
  _, metrics = pg_clip_metrics(ratio, log_ratio, adv, m, low=1.0 - clip_low,
                               high=1.0 + clip_high)
  if dual_clip is not None:
    dual = -adv * dual_clip
    metrics["dual_clip_frac"] = masked_mean(((adv < 0) & (per_token > dual)).astype(m.dtype), m)
    per_token = jnp.where(adv < 0, jnp.minimum(per_token, dual), per_token)
  else:
    metrics["dual_clip_frac"] = jnp.zeros((), m.dtype)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def sequence_log_ratio(logprobs: jax.Array, old_logprobs: jax.Array, mask: jax.Array) -> jax.Array:
  """Length-normalised sequence log-ratio ``(1/|y_i|) sum_t m_it (lp_it - lp_old_it)``, ``[B]``.

  Fully masked rows give 0 (the length is clamped to at least 1).
  """
  m = jnp.asarray(mask).astype(logprobs.dtype)
  diff = jnp.where(m > 0, logprobs - old_logprobs, 0.0) * m
  return jnp.sum(diff, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)


def gspo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                     mask: jax.Array, *, clip_low: float = 3e-4,
                     clip_high: Optional[float] = 4e-4, log_ratio_clamp: Optional[float] = 10.0,
                     agg_mode: str = "seq-mean-token-mean", horizon: Optional[float] = None,
                     is_weights: Optional[jax.Array] = None) -> LossOutput:
  """GSPO: sequence-level importance ratio with a per-token gradient (GSPO-token).

  Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv 2507.18071::

      log s_i  = (1/|y_i|) sum_t (lp_it - lp_old_it)
      s_it     = sg[s_i] * exp(lp_it - sg[lp_it])      (value s_i, gradient s_i * grad lp_it)
      L_it     = max(-A_it s_it, -A_it clip(s_it, 1 - eps_low, 1 + eps_high))

  With ``agg_mode="seq-mean-token-mean"`` (the paper's and OpenRLHF's objective;
  verl <= 0.8 forced it) the gradient is
  ``-(1/K) sum_i s_i A_i (1/|y_i|) sum_t grad lp_it`` over unclipped sequences.
  The log of ``s_it`` is clamped at ``log_ratio_clamp`` from above as in verl
  (the clamp zeroes the gradient). verl 0.9.1 aggregates with its
  ``loss_agg_mode`` (token-mean by default); pass ``agg_mode="token-mean"`` to match.
  The defaults ``eps_low = 3e-4, eps_high = 4e-4`` are the paper's.

  Metrics: ``clip_frac``, ``clip_frac_low``, ``clip_frac_high`` (token means),
  ``approx_kl``, ``seq_ratio_mean/max/min`` (over non-empty sequences).
  """
  clip_high = clip_low if clip_high is None else clip_high
  _check_clip(clip_low, clip_high)
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  seq_log_ratio = sequence_log_ratio(logprobs, old_logprobs, m)   # [B]
  token_log_ratio = jnp.where(m > 0, logprobs - sg(logprobs), 0.0) + sg(seq_log_ratio)[:, None]
  if log_ratio_clamp is not None:
    token_log_ratio = jnp.minimum(token_log_ratio, log_ratio_clamp)
  ratio = jnp.exp(token_log_ratio)
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  per_token = jnp.maximum(unclipped, clipped)
  row_valid = (jnp.sum(m, axis=-1) > 0).astype(m.dtype)
  _, metrics = pg_clip_metrics(ratio, jnp.where(m > 0, logprobs - old_logprobs, 0.0), adv, m,
                               low=1.0 - clip_low, high=1.0 + clip_high, ratio_prefix=None)
  metrics.update(_ratio_stats(jnp.exp(seq_log_ratio), row_valid, prefix="seq_ratio"))
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def cispo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                      mask: jax.Array, *, clip_low: Optional[float] = None,
                      clip_high: Optional[float] = 4.0, log_ratio_clamp: Optional[float] = 20.0,
                      agg_mode: str = "token-mean", horizon: Optional[float] = None,
                      is_weights: Optional[jax.Array] = None) -> LossOutput:
  """CISPO: clipped, detached importance weight times REINFORCE.

  MiniMax 2025, "MiniMax-M1: Scaling Test-Time Compute Efficiently with
  Lightning Attention", arXiv 2506.13585::

      L_it = -sg[clip(r_it, 1 - eps_low, 1 + eps_high)] * A_it * lp_it

  Every token keeps a gradient (the weight is clipped, not the objective).
  ``clip_low=None`` leaves the weight unbounded below (the paper's choice and
  TRL's one-sided ``clamp(max=epsilon_high)``: TRL ``epsilon_high=5`` is
  ``clip_high=4``); ``clip_low=0.2, clip_high=0.28`` is verl's two-sided ``cispo``.

  Metrics: ``clip_frac`` (weight clipped on either side), ``clip_frac_low``,
  ``clip_frac_high`` (ratio below / above the bounds, whatever the advantage sign),
  ``approx_kl``, ``ratio_*``.
  """
  if clip_low is not None and not 0.0 <= clip_low < 1.0:
    raise ValueError(f"clip_low must be in [0, 1) or None, got {clip_low}")
  if clip_high is not None and clip_high < 0.0:
    raise ValueError(f"clip_high must be >= 0 or None, got {clip_high}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  low = -jnp.inf if clip_low is None else 1.0 - clip_low
  high = jnp.inf if clip_high is None else 1.0 + clip_high
  weight = sg(jnp.clip(ratio, low, high))
  per_token = -weight * adv * logprobs
  _, metrics = pg_clip_metrics(ratio, log_ratio, adv, m, low=low, high=high, sign_aware=False)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def reinforce_loss(logprobs: jax.Array, old_logprobs: Optional[jax.Array],
                   advantages: jax.Array, mask: jax.Array, *, agg_mode: str = "token-mean",
                   horizon: Optional[float] = None,
                   is_weights: Optional[jax.Array] = None) -> LossOutput:
  """REINFORCE / GPG policy gradient: ``L_it = -A_it * lp_it`` (times ``is_weights``).

  Williams 1992, "Simple statistical gradient-following algorithms for
  connectionist reinforcement learning"; with GPG advantages
  (:func:`jaxrl_llm.losses.advantages.gpg_advantages`) this is GPG (Chu et al.
  2025, "GPG: A Simple and Strong Reinforcement Learning Baseline for Model
  Reasoning", arXiv 2504.02546) and verl's ``gpg`` loss. ``old_logprobs`` only
  feeds the ``approx_kl`` metric and may be None; the objective is on-policy
  (use ``is_weights`` for an off-policy correction).
  """
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  per_token = -adv * logprobs
  metrics = {}
  if old_logprobs is not None:
    metrics["approx_kl"] = masked_mean(old_logprobs - logprobs, m)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


gpg_policy_loss = reinforce_loss


def sapo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                     mask: jax.Array, *, tau_pos: float = 1.0, tau_neg: float = 1.05,
                     log_ratio_clamp: Optional[float] = 20.0,
                     agg_mode: str = "seq-mean-token-mean", horizon: Optional[float] = None,
                     is_weights: Optional[jax.Array] = None) -> LossOutput:
  """SAPO: a soft, temperature-controlled sigmoid gate in place of the hard clip.

  Gao et al. 2025, "Soft Adaptive Policy Optimization", arXiv 2511.20347. Per
  token, with ``r = exp(clamp(lp - lp_old, -C, C))``::

      tau  = tau_pos  if A > 0  else tau_neg
      L_it = -A_it * sigmoid(tau (r_it - 1)) * 4 / tau

  At ``r = 1`` the gradient equals the ratio's (``4 sigmoid' = 1``); away from the
  behaviour policy it decays smoothly, faster for negative advantages
  (``tau_neg > tau_pos``). Same as verl 0.9.1 ``sapo`` (which forces
  ``seq-mean-token-mean``, hence the default ``agg_mode``; other modes are allowed
  here) and TRL 1.16 ``loss_type="sapo"`` up to TRL's unclamped log-ratio and its
  aggregation (the mean of the row token-means over all ``B`` rows, fully masked
  rows included as 0: ``seq-mean-token-mean`` when no row is empty).
  Defaults are the paper's ``tau_pos = 1.0, tau_neg = 1.05`` (verl, TRL).

  Metrics: ``approx_kl``, ``ratio_*``, ``clip_frac*`` (always 0: nothing is
  clipped; kept so every ratio loss logs the same keys), ``gate_weight_mean``
  (token mean of ``4 sigmoid(x)(1 - sigmoid(x))``, ``x = tau (r - 1)``: the gate's
  factor on the ratio gradient, 1 on-policy).
  """
  if tau_pos <= 0 or tau_neg <= 0:
    raise ValueError(f"tau_pos and tau_neg must be > 0, got {tau_pos}, {tau_neg}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  tau = jnp.where(adv > 0, tau_pos, tau_neg).astype(logprobs.dtype)
  gate = jax.nn.sigmoid(tau * (ratio - 1.0))
  per_token = -adv * gate * (4.0 / tau)
  _, metrics = pg_clip_metrics(ratio, log_ratio, adv, m, low=-jnp.inf, high=jnp.inf)
  metrics["gate_weight_mean"] = masked_mean(4.0 * gate * (1.0 - gate), m)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def gmpo_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                     mask: jax.Array, *, clip_low: float = 0.4, clip_high: Optional[float] = None,
                     log_ratio_clamp: Optional[float] = None,
                     is_weights: Optional[jax.Array] = None) -> LossOutput:
  """GMPO: the geometric mean of the token ratios, clipped per token in log space.

  Zhao et al. 2025, "Geometric-Mean Policy Optimization", arXiv 2507.20673
  (verl ``geo_mean``). With ``lr = lp - lp_old``, ``n_i = sum_t m_it``::

      lr_c   = clip(lr, -eps_low, eps_high)
      lr*    = sgn(A) min(sgn(A) lr, sgn(A) lr_c)      (A > 0: upper clip, A < 0: lower)
      rho_i  = exp( sum_t m_it lr*_it / (n_i + 1e-8) )
      Abar_i = sum_t m_it A_it / (n_i + 1e-8)
      L      = (1/B) sum_i -Abar_i rho_i                (all B rows, empty rows count 0)

  so ``total = sum_i -Abar_i rho_i`` and ``count = B`` (verl takes ``torch.mean``
  over rows and ignores ``loss_agg_mode``; there is no ``agg_mode`` here).
  ``is_weights`` are averaged per sequence over the mask, as verl does.

  SECONDARY: the defaults ``eps_low = eps_high = 0.4`` (clip range
  ``(e^-0.4, e^0.4)``) are the paper's wider clip as I recall it, not read in a
  stored copy; verl's ActorConfig default would be 0.2. ``log_ratio_clamp=None``
  matches verl (its clamp is commented out).

  Metrics: ``clip_frac*`` (sign-aware, token level: ``A > 0 & lr > eps_high``,
  ``A < 0 & lr < -eps_low``; verl's ``pg_clipfrac`` counts either side for
  ``A > 0``), ``approx_kl``, ``ratio_*`` (token ratios), ``seq_ratio_*`` (``rho``
  over non-empty rows).
  """
  clip_high = clip_low if clip_high is None else clip_high
  if clip_low < 0 or clip_high < 0:
    raise ValueError(f"clip_low and clip_high must be >= 0, got {clip_low}, {clip_high}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  sgn = jnp.sign(adv)
  clipped_lr = jnp.clip(log_ratio, -clip_low, clip_high)
  lr_star = sgn * jnp.minimum(sgn * log_ratio, sgn * clipped_lr)
  n = jnp.sum(m, axis=-1)
  rho = jnp.exp(jnp.sum(lr_star * m, axis=-1) / (n + 1e-8))
  abar = jnp.sum(adv * m, axis=-1) / (n + 1e-8)
  per_row = -abar * rho
  if w is not None:
    per_row = per_row * jnp.sum(w * m, axis=-1) / (n + 1e-8)
  _, metrics = pg_clip_metrics(jnp.exp(log_ratio), log_ratio, adv, m, low=jnp.exp(-clip_low),
                               high=jnp.exp(clip_high))
  metrics.update(_ratio_stats(rho, (n > 0).astype(m.dtype), prefix="seq_ratio"))
  return LossOutput(jnp.sum(per_row), jnp.asarray(per_row.shape[0], per_row.dtype),
                    {k: sg(v) for k, v in metrics.items()})


def _count_of_ratio(ratio, num_tokens):
  """``floor(ratio * N)`` in float32 with a 1e-6 relative slack, so decimal ratios that
  float32 rounds down (0.7 -> 0.6999999) count as the float64 product would."""
  return jnp.floor(ratio * num_tokens * (1.0 + 1e-6))


def _covariance(adv, logprobs, m):
  """``(A - mean A)(lp - mean lp)`` with token means over the mask (batch level), constant."""
  adv, logprobs = sg(adv), sg(logprobs)
  return (adv - masked_mean(adv, m)) * (jnp.where(m > 0, logprobs, 0.0)
                                         - masked_mean(logprobs, m))


def _rank_desc(scores):
  """Rank of each element of ``scores`` (any shape) in descending order, ties by position."""
  flat = scores.reshape(-1)
  order = jnp.argsort(-flat, stable=True)
  return jnp.zeros(flat.shape, jnp.int32).at[order].set(
      jnp.arange(flat.shape[0], dtype=jnp.int32)).reshape(scores.shape)


def clip_cov_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                         mask: jax.Array, *, step=0, clip_low: float = 0.2,
                         clip_high: Optional[float] = None, clip_cov_ratio: float = 2e-4,
                         clip_cov_lb: float = 1.0, clip_cov_ub: float = 5.0, seed: int = 0,
                         log_ratio_clamp: Optional[float] = None, agg_mode: str = "token-mean",
                         horizon: Optional[float] = None,
                         is_weights: Optional[jax.Array] = None) -> LossOutput:
  """Clip-Cov: PPO-clip, with the loss of a few high-covariance tokens removed.

  Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for
  Reasoning Language Models", arXiv 2505.22617 (verl ``clip_cov``). Per token::

      L1 = -A r,   L2 = -A clip(r, 1 - eps_low, 1 + eps_high)      (no dual clip)
      cov_it = (A_it - mean A)(lp_it - mean lp)                  (token means over the batch)
      candidates: counted tokens with L2 <= L1 (not clipped) and lb < cov < ub
      S = a uniformly random subset of min(k, #candidates) candidates,
          k = max(floor(clip_cov_ratio * N), 1),  N = counted tokens
      L_it = max(L1, L2) * (0 if (i, t) in S else 1)

  Randomness: verl draws ``S`` with ``torch.randperm`` (unseeded). Here ``S`` is a
  deterministic function of ``(seed, step)``: the key is
  ``fold_in(key(seed), step)`` with ``step`` the optimiser step the trainer
  passes (registered input ``"step"``); each micro-batch of one step reuses it.
  ``k`` is computed in float32 (see :func:`_count_of_ratio`). The defaults are
  verl's (``clip_cov_ratio=2e-4, lb=1, ub=5``, clip 0.2); the log-ratio is not
  clamped, as in verl (``log_ratio_clamp`` adds one).

  Metrics: ``clip_frac*`` (the PPO clip), ``cov_clip_frac`` (token fraction in
  ``S``; verl's ``pg_clipfrac``), ``approx_kl``, ``ratio_*``.
  """
  clip_high = clip_low if clip_high is None else clip_high
  _check_clip(clip_low, clip_high)
  if not clip_cov_ratio > 0:
    raise ValueError(f"clip_cov_ratio must be > 0, got {clip_cov_ratio}")
  if not clip_cov_lb < clip_cov_ub:
    raise ValueError(f"clip_cov_lb must be < clip_cov_ub, got {clip_cov_lb}, {clip_cov_ub}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  unclipped = -adv * ratio
  clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  clip_mask, metrics = pg_clip_metrics(ratio, log_ratio, adv, m, low=1.0 - clip_low,
                                       high=1.0 + clip_high)
  cov = _covariance(adv, logprobs, m)
  candidate = (m > 0) & (clip_mask == 0) & (cov > clip_cov_lb) & (cov < clip_cov_ub)
  key = jax.random.fold_in(jax.random.key(seed), jnp.asarray(step, jnp.int32))
  priority = jnp.where(candidate, jax.random.uniform(key, m.shape), -1.0)
  k = jnp.maximum(_count_of_ratio(clip_cov_ratio, jnp.sum(m)), 1.0)
  selected = candidate & (_rank_desc(priority) < k)
  corr = 1.0 - selected.astype(m.dtype)
  per_token = jnp.maximum(unclipped, clipped) * corr
  metrics["cov_clip_frac"] = masked_mean(1.0 - corr, m)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)


def kl_cov_policy_loss(logprobs: jax.Array, old_logprobs: jax.Array, advantages: jax.Array,
                       mask: jax.Array, *, kl_cov_ratio: float = 2e-4, ppo_kl_coef: float = 0.1,
                       log_ratio_clamp: Optional[float] = None, agg_mode: str = "token-mean",
                       horizon: Optional[float] = None,
                       is_weights: Optional[jax.Array] = None) -> LossOutput:
  """KL-Cov: unclipped ratio loss, with a ``|log r|`` penalty on the top-covariance tokens.

  Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for
  Reasoning Language Models", arXiv 2505.22617 (verl ``kl_cov``). Per token::

      cov_it = (A_it - mean A)(lp_it - mean lp)          (token means over the batch)
      S      = the k counted tokens of largest cov,  k = max(1, floor(N kl_cov_ratio))
      L_it   = -A_it r_it + ppo_kl_coef |lp_it - lp_old_it| [(i, t) in S]

  Deterministic; ties in ``cov`` go to the earlier position (row-major), where
  ``torch.topk`` leaves the order unspecified. An all-masked batch selects
  nothing. ``k`` is computed in float32 (see :func:`_count_of_ratio`). Defaults:
  verl's config (``kl_cov_ratio=2e-4, ppo_kl_coef=0.1``; its code falls back to
  1.0 only when the option is None); no log-ratio clamp, as in verl.

  Metrics: ``kl_cov_frac`` (token fraction in ``S``), ``abs_kl`` (token mean of
  ``|lr|``, verl's ``ppo_kl`` here), ``approx_kl``, ``ratio_*``, ``clip_frac*``
  (always 0).
  """
  if not kl_cov_ratio > 0:
    raise ValueError(f"kl_cov_ratio must be > 0, got {kl_cov_ratio}")
  logprobs, old_logprobs, adv, m, w = _prepare(
      logprobs, old_logprobs, advantages, mask, is_weights)
  log_ratio = _log_ratio(logprobs, old_logprobs, m, log_ratio_clamp)
  ratio = jnp.exp(log_ratio)
  cov = jnp.where(m > 0, _covariance(adv, logprobs, m), -jnp.inf)
  k = jnp.maximum(_count_of_ratio(kl_cov_ratio, jnp.sum(m)), 1.0)
  selected = ((m > 0) & (_rank_desc(cov) < k)).astype(m.dtype)
  abs_kl = jnp.abs(log_ratio)
  per_token = -adv * ratio + ppo_kl_coef * abs_kl * selected
  _, metrics = pg_clip_metrics(ratio, log_ratio, adv, m, low=-jnp.inf, high=jnp.inf)
  metrics["kl_cov_frac"] = masked_mean(selected, m)
  metrics["abs_kl"] = masked_mean(abs_kl, m)
  return _finish(per_token, m, w, agg_mode, horizon, metrics)

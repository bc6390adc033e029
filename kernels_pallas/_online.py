"""Shared tile math of the fused log-prob / entropy / KL op (pure ``jnp``).

Every backend (chunked XLA, Pallas Mosaic TPU, Pallas Triton GPU) calls these
functions on one ``[rows, cols]`` logits tile, so the online-softmax algebra is
written once. Everything here is element-wise or a row reduction, which lowers
on both Mosaic and Triton.

Notation, per token (row) with policy logits ``z = (h W) / tau`` and reference
logits ``b = (h_ref W_ref) / tau``; ``y`` is the target id::

    lse   = log sum_v exp z_v                logp  = z_y - lse
    H     = -sum_v p_v log p_v               p     = softmax(z)
    lse_b = log sum_v exp b_v                logq  = b_y - lse_b
    KL    = sum_v p_v (log p_v - log q_v)    ("full", exact over the vocabulary)
    k3    = exp(r) - 1 - r, r = logq - logp  ("k3", Schulman 2020, "Approximating
                                              KL divergence", unbiased for KL(p||q)
                                              when y ~ p)
    mlp   = (1/V) sum_v log p_v = s / V - lse,  s = sum_v z_v
                                             (mean log-prob over the vocabulary;
                                              ROVER, arXiv 2509.24981)

Online accumulation over vocabulary tiles (Milakov & Gimelshein 2018, "Online
normalizer calculation for softmax"): each row keeps a running max ``m`` and
sums rescaled by ``alpha = exp(m_old - m_new)`` when the max moves::

    l = sum e^{z-m}      t = sum e^{z-m} (z-m)      u = sum e^{z-m} (z-b)

so ``lse = m + log l``, ``H = log l - t / l`` and ``KL = u / l - lse + lse_b``.
The plain sum ``s = sum z`` needs no rescaling. ``V`` is the number of real
vocabulary columns: padded / masked columns enter neither ``s`` nor ``V``.
Keeping ``t`` relative to the running max keeps the entropy accurate when
``lse`` is large. Updating ``t`` when the max moves from ``m`` to ``m'``:
``t' = alpha (t + (m - m') l) + sum_tile e^{z-m'} (z-m')``.

Backward, given an arbitrary per-token cotangent ``(g_logp, g_H, g_KL)``, the
gradient with respect to the tile logits is (``onehot = [v == y]``)::

    dz_v = c1 (onehot_v - p_v) - g_H p_v (log p_v + H)
           + g_KL p_v (log p_v - log q_v - KL)                  (full KL only)
           + g_M (1/V - p_v)                                    (mean log-prob only)
    c1   = g_logp - g_KL expm1(r)                 (k3)  or  g_logp   (otherwise)

and ``d(hW)/... = dz / tau``. The reference model is a constant (no gradient).
"""

from typing import Optional

import jax
import jax.numpy as jnp

# A finite stand-in for -inf: exp(NEG_INF - m) underflows to exactly 0 and
# NEG_INF - NEG_INF stays finite, which -inf would turn into NaN.
NEG_INF = -1e30

# Columns of the per-token statistics the forward saves (the only residuals).
LSE, LOGP, ENTROPY, KL, REF_LOGP, REF_LSE, MEAN_LOGP = range(7)
NUM_STATS = 7
# Columns of the per-row cotangent coefficients in the packed array the backward
# kernels read: c1 (see module docstring), g_H, g_KL and g_M (mean log-prob).
C1, G_ENTROPY, G_KL, G_MEAN = 8, 9, 10, 11
# Width of the packed per-row array: stats in columns 0..6, cotangents in 8..11.
MIN_ROW_WIDTH = 16

KL_MODES = (None, "k3", "full")


def accumulator_dtype(dtype) -> jnp.dtype:
  """float32 for bf16/f16/f32 inputs, float64 for float64 inputs."""
  return jnp.promote_types(dtype, jnp.float32)


def column(rows: jax.Array, k: int) -> jax.Array:
  """Column ``k`` of a ``[r, w]`` array as ``[r, 1]``, by a masked row sum.

  A masked reduction instead of ``rows[:, k:k+1]`` because Triton cannot slice
  values and Mosaic prefers whole-lane-tile operations.
  """
  lane = jax.lax.broadcasted_iota(jnp.int32, rows.shape, 1)
  return jnp.sum(jnp.where(lane == k, rows, 0), axis=1, keepdims=True)


def pack_columns(cols: dict, num_rows: int, width: int, dtype) -> jax.Array:
  """Inverse of :func:`column`: ``{k: [r, 1]}`` -> ``[r, width]`` (others 0)."""
  lane = jax.lax.broadcasted_iota(jnp.int32, (num_rows, width), 1)
  out = jnp.zeros((num_rows, width), dtype)
  for k, v in cols.items():
    out = jnp.where(lane == k, v.astype(dtype), out)
  return out


def init_state(num_rows: int, dtype, *, want_entropy: bool, kl_mode: Optional[str],
               want_mean_logprob: bool = False) -> dict:
  """Empty online accumulators, each ``[rows, 1]``."""
  shape = (num_rows, 1)
  state = {"m": jnp.full(shape, NEG_INF, dtype), "l": jnp.zeros(shape, dtype),
           "y": jnp.zeros(shape, dtype)}
  if want_entropy:
    state["t"] = jnp.zeros(shape, dtype)
  if want_mean_logprob:
    state["s"] = jnp.zeros(shape, dtype)
  if kl_mode is not None:
    state.update(mb=jnp.full(shape, NEG_INF, dtype), lb=jnp.zeros(shape, dtype),
                 yb=jnp.zeros(shape, dtype))
  if kl_mode == "full":
    state["u"] = jnp.zeros(shape, dtype)
  return state


def online_update(state: dict, z: jax.Array, b: Optional[jax.Array], valid: jax.Array,
                  onehot: jax.Array) -> dict:
  """Folds one logits tile into the accumulators.

  Args:
    state: accumulators from :func:`init_state` (keys decide what is tracked).
    z: ``[r, c]`` policy logits tile (already divided by the temperature).
    b: ``[r, c]`` reference logits tile, or None when no KL is tracked.
    valid: ``[r, c]`` or ``[1, c]`` bool, False for padding / already-seen columns.
    onehot: ``[r, c]`` bool, True at the target column; None to leave the target
      logits ``y``/``yb`` to the caller (the XLA path gathers them once).
  """
  z = jnp.where(valid, z, NEG_INF)
  m_new = jnp.maximum(state["m"], jnp.max(z, axis=1, keepdims=True))
  alpha = jnp.exp(state["m"] - m_new)
  e = jnp.where(valid, jnp.exp(z - m_new), 0)
  new = dict(state)
  new["m"] = m_new
  new["l"] = alpha * state["l"] + jnp.sum(e, axis=1, keepdims=True)
  if onehot is not None:
    onehot = jnp.logical_and(onehot, valid)
    new["y"] = state["y"] + jnp.sum(jnp.where(onehot, z, 0), axis=1, keepdims=True)
  if "t" in state:
    new["t"] = (alpha * (state["t"] + (state["m"] - m_new) * state["l"])
                + jnp.sum(jnp.where(valid, e * (z - m_new), 0), axis=1, keepdims=True))
  if "s" in state:
    new["s"] = state["s"] + jnp.sum(jnp.where(valid, z, 0), axis=1, keepdims=True)
  if "mb" in state:
    b = jnp.where(valid, b, NEG_INF)
    mb_new = jnp.maximum(state["mb"], jnp.max(b, axis=1, keepdims=True))
    eb = jnp.where(valid, jnp.exp(b - mb_new), 0)
    new["mb"] = mb_new
    new["lb"] = jnp.exp(state["mb"] - mb_new) * state["lb"] + jnp.sum(eb, axis=1, keepdims=True)
    if onehot is not None:
      new["yb"] = state["yb"] + jnp.sum(jnp.where(onehot, b, 0), axis=1, keepdims=True)
  if "u" in state:
    new["u"] = alpha * state["u"] + jnp.sum(jnp.where(valid, e * (z - b), 0), axis=1,
                                            keepdims=True)
  return new


def finalize(state: dict, kl_mode: Optional[str], vocab_size: Optional[int] = None) -> dict:
  """Accumulators -> ``{column index: [r, 1]}`` per-token statistics.

  The ``KL`` column is the full KL for ``kl_mode="full"`` and 0 otherwise (``k3``
  is a per-token function of LOGP and REF_LOGP, see :func:`k3_from_logprobs`).
  ``vocab_size`` (the real ``V``) is needed when the mean log-prob is tracked.
  """
  log_l = jnp.log(state["l"])
  lse = state["m"] + log_l
  logp = state["y"] - lse
  zero = jnp.zeros_like(lse)
  stats = {LSE: lse, LOGP: logp, ENTROPY: zero, KL: zero, REF_LOGP: zero, REF_LSE: zero,
           MEAN_LOGP: zero}
  if "t" in state:
    stats[ENTROPY] = log_l - state["t"] / state["l"]
  if "s" in state:
    if vocab_size is None:
      raise ValueError("finalize: vocab_size is needed for the mean log-prob")
    stats[MEAN_LOGP] = state["s"] * (1.0 / vocab_size) - lse
  if kl_mode is not None:
    lse_b = state["mb"] + jnp.log(state["lb"])
    logq = state["yb"] - lse_b
    stats[REF_LSE] = lse_b
    stats[REF_LOGP] = logq
    if kl_mode == "full":
      stats[KL] = state["u"] / state["l"] - lse + lse_b
  return stats


def k3_from_logprobs(logp: jax.Array, logq: jax.Array) -> jax.Array:
  """``k3 = exp(r) - 1 - r`` with ``r = logq - logp`` (per-token, outside the kernels)."""
  r = logq - logp
  return jnp.expm1(r) - r


def c1_coefficient(logp, logq, g_logp, g_kl, kl_mode: Optional[str]) -> jax.Array:
  """Per-token weight of ``(onehot - p)`` in ``dz``: ``g_logp - g_KL expm1(r)`` for k3."""
  if kl_mode == "k3":
    return g_logp - g_kl * jnp.expm1(logq - logp)
  return g_logp


def dlogits(z: jax.Array, b: Optional[jax.Array], valid: jax.Array, onehot: jax.Array,
            rows: jax.Array, *, want_entropy: bool, kl_mode: Optional[str],
            inv_vocab: Optional[float] = None) -> jax.Array:
  """Gradient of ``sum_t g_t . outputs_t`` with respect to the tile logits ``z``.

  Args:
    z, b, valid, onehot: as in :func:`online_update` (``b`` only for full KL).
    rows: ``[r, w]`` packed per-row array: statistics in columns ``LSE..MEAN_LOGP``
      and the cotangent coefficients in ``C1, G_ENTROPY, G_KL, G_MEAN``.
    inv_vocab: ``1 / V`` (real vocabulary size) when the mean log-prob has a
      cotangent (adds ``g_M (1/V - p_v)``), None otherwise.

    onehot: as in :func:`online_update`; None leaves out the ``c1 onehot`` term
      (the XLA path adds it once, outside the vocabulary loop).

  Returns:
    ``[r, c]`` ``dz``, zero where ``valid`` is False.
  """
  lse = column(rows, LSE)
  logp_all = jnp.where(valid, z, NEG_INF) - lse  # log p_v for the whole tile
  p = jnp.where(valid, jnp.exp(logp_all), 0)
  if onehot is None:
    g = -column(rows, C1) * p
  else:
    g = column(rows, C1) * (jnp.logical_and(onehot, valid).astype(z.dtype) - p)
  if want_entropy:
    g = g - column(rows, G_ENTROPY) * p * (logp_all + column(rows, ENTROPY))
  if kl_mode == "full":
    logq_all = jnp.where(valid, b, NEG_INF) - column(rows, REF_LSE)
    g = g + column(rows, G_KL) * p * (logp_all - logq_all - column(rows, KL))
  if inv_vocab is not None:
    g = g + column(rows, G_MEAN) * (inv_vocab - p)
  return jnp.where(valid, g, 0)

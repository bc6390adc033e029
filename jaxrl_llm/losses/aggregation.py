"""Masked reductions and loss aggregation modes over ``[B, T]`` token arrays.

The aggregation modes are those of verl's ``agg_loss`` (verl 0.9.1,
``verl/trainer/ppo/core_algos.py``); ``aggregate`` returns them as a
``(total, count)`` pair such that ``total / count`` equals verl's value on the
same inputs (local micro-batch, ``dp_size = 1``); ``token-sum-norm-rows`` is
TRL's Dr. GRPO normaliser, which verl lacks. Deliberate differences, all
for robustness:

* values outside the mask never leak in (``where(mask, values, 0)``): verl's
  ``seq-mean-*`` modes multiply by the mask, so a NaN at a padded position
  poisons them;
* an all-masked batch gives ``count == 0`` and ``safe_mean(total, count) == 0``
  where verl returns NaN.
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks

AGGREGATION_MODES = (
    "token-mean",
    "token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
    "token-sum-norm-rows",
)


def _float_mask(mask, dtype):
  return jnp.asarray(mask).astype(dtype)


def masked_sum(values: jax.Array, mask: jax.Array, axis=None) -> jax.Array:
  """``sum(where(mask, values, 0) * mask)``: masked-out NaN/inf are ignored."""
  m = _float_mask(mask, values.dtype)
  return jnp.sum(jnp.where(m != 0, values, 0) * m, axis=axis)


def safe_mean(total: jax.Array, count: jax.Array) -> jax.Array:
  """``total / count``, and 0 (not NaN) where ``count == 0``.

  When ``count == 0`` every aggregation in this module also has ``total == 0``,
  so dividing by ``max(count, 1)`` gives 0 with a finite (zero) gradient.
  """
  count = jnp.asarray(count)
  return total / jnp.where(count > 0, count, jnp.ones_like(count))


def masked_mean(values: jax.Array, mask: jax.Array, axis=None) -> jax.Array:
  """Masked mean; 0 where nothing is counted (verl adds ``1e-8`` instead)."""
  m = _float_mask(mask, values.dtype)
  return safe_mean(masked_sum(values, m, axis=axis), jnp.sum(m, axis=axis))


def masked_var(values: jax.Array, mask: jax.Array, unbiased: bool = True) -> jax.Array:
  """Variance over all masked elements of the batch.

  ``var = masked_mean((v - mean)^2) * n / (n - 1)`` with Bessel's correction when
  ``unbiased`` (verl's ``masked_var``). verl raises for ``n <= 1``; to stay
  jit-safe this returns the uncorrected (zero) variance there instead.
  """
  mean = masked_mean(values, mask)
  var = masked_mean(jnp.square(values - mean), mask)
  if unbiased:
    n = jnp.sum(_float_mask(mask, values.dtype))
    var = var * jnp.where(n > 1, n / jnp.maximum(n - 1, 1), 1.0)
  return var


def masked_whiten(values: jax.Array, mask: jax.Array, shift_mean: bool = True,
                  eps: float = 1e-8) -> jax.Array:
  """Batch whitening over the masked elements: ``(v - mean) / sqrt(var_unbiased + eps)``.

  Same statistics as verl's ``masked_whiten``; with ``shift_mean=False`` the mean
  is added back. The output is not re-masked (callers multiply by the mask).
  """
  mean = masked_mean(values, mask)
  var = masked_var(values, mask, unbiased=True)
  whitened = (values - mean) * jax.lax.rsqrt(var + eps)
  if not shift_mean:
    whitened = whitened + mean
  return whitened


def aggregate(values: jax.Array, mask: jax.Array, mode: str = "token-mean", *,
              horizon: Optional[float] = None) -> tuple[jax.Array, jax.Array]:
  """Reduces a per-token loss ``[B, T]`` to ``(total, count)``; the loss is ``total / count``.

  With ``S_i = sum_t v_it m_it``, ``n_i = sum_t m_it``, ``K = #{i : n_i > 0}``:

  =========================  ===========================================  =========
  mode                       total                                        count
  =========================  ===========================================  =========
  token-mean                 ``sum_i S_i``                                ``sum_i n_i``
  token-sum                  ``sum_i S_i``                                ``1[sum_i n_i > 0]``
  seq-mean-token-mean        ``sum_{i: n_i>0} S_i / n_i``                 ``K``
  seq-mean-token-sum         ``sum_i S_i``                                ``K``
  seq-mean-token-sum-norm    ``sum_i S_i / horizon``                      ``K``
  token-sum-norm-rows        ``sum_i S_i / horizon``                      ``B``
  =========================  ===========================================  =========

  ``seq-mean-token-sum-norm`` is Dr. GRPO's constant-length normaliser (Liu et al.
  2025, "Understanding R1-Zero-Like Training"); ``horizon`` defaults to ``T``
  (verl's ``loss_scale_factor``). ``token-sum-norm-rows`` is TRL's version of it
  (TRL 1.16 ``loss_type="dr_grpo"``: ``sum loss * m / (B * max_completion_length)``,
  i.e. ``horizon = max_completion_length``): it divides by all ``B`` rows, fully
  masked ones included, where verl divides by the ``K`` non-empty rows; it is not
  one of verl's modes. Fully masked rows are excluded from the other sequence
  means; an all-masked batch gives ``total == count == 0`` (``token-sum-norm-rows``:
  ``total == 0, count == B``, so the mean is 0 as well).

  Args:
    values: ``[B, T]`` per-token values.
    mask: ``[B, T]`` bool or 0/1 mask of counted tokens.
    mode: one of ``AGGREGATION_MODES``.
    horizon: constant length for ``seq-mean-token-sum-norm`` and ``token-sum-norm-rows``.

  Returns:
    ``(total, count)`` scalars in ``promote_types(values.dtype, float32)``.
  """
  _checks.check_choice(mode, AGGREGATION_MODES, "aggregation mode")
  _checks.check_rank(values, 2, "values")
  _checks.check_shape(mask, values.shape, "mask")
  _checks.check_floating(values, "values")
  values = values.astype(jnp.promote_types(values.dtype, jnp.float32))
  m = _float_mask(mask, values.dtype)
  row_sum = masked_sum(values, m, axis=-1)   # S_i
  row_count = jnp.sum(m, axis=-1)            # n_i
  nonempty = (row_count > 0).astype(values.dtype)
  if mode == "token-mean":
    return jnp.sum(row_sum), jnp.sum(row_count)
  if mode == "token-sum":
    return jnp.sum(row_sum), (jnp.sum(row_count) > 0).astype(values.dtype)
  num_rows = jnp.sum(nonempty)               # K
  if mode == "seq-mean-token-mean":
    return jnp.sum(safe_mean(row_sum, row_count)), num_rows
  if mode == "seq-mean-token-sum":
    return jnp.sum(row_sum), num_rows
  # seq-mean-token-sum-norm, token-sum-norm-rows
  if horizon is None:
    horizon = values.shape[-1]
  if not isinstance(horizon, jax.Array) and horizon <= 0:
    raise ValueError(f"horizon must be positive, got {horizon}")
  if mode == "token-sum-norm-rows":
    return jnp.sum(row_sum) / horizon, jnp.asarray(values.shape[0], values.dtype)
  return jnp.sum(row_sum) / horizon, num_rows

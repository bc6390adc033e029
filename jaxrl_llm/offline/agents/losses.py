"""Loss pieces shared by the offline agents, one pure function per idea.

Every function here is elementwise or reduces over one named axis; the agents
take the batch mean themselves, so the pieces compose under masking or
weighting without hidden conventions.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp


def expectile_weight(diff: jax.Array, expectile: float) -> jax.Array:
  """Asymmetric weight of the expectile regression loss.

  `w(u) = |τ − 1(u < 0)|`, i.e. τ where u ≥ 0 and 1 − τ where u < 0.

  Kostrikov, Nair, Levine, "Offline Reinforcement Learning with Implicit
  Q-Learning", ICLR 2022, Eq. (5).

  Args:
    diff: u = target − prediction, any shape.
    expectile: τ in (0, 1).
  """
  if not 0.0 < expectile < 1.0:
    raise ValueError(f"expectile must lie in (0, 1), got {expectile}")
  return jnp.where(diff < 0, 1.0 - expectile, expectile)


def expectile_loss(diff: jax.Array, expectile: float) -> jax.Array:
  """Elementwise expectile loss `L_2^τ(u) = |τ − 1(u < 0)| · u²` (IQL Eq. 5).

  With u = Q̄(s, a) − V(s), minimising E[L_2^τ(u)] over V gives the
  τ-expectile of Q̄ under the behaviour policy's actions.
  """
  return expectile_weight(diff, expectile) * jnp.square(diff)


def huber_delta_from_sigma(sigma: float) -> float:
  """RIQL's parameterisation of the Huber threshold: `δ = 1 / σ²`.

  Yang et al., "Towards Robust Offline Reinforcement Learning under Diverse
  Data Corruption" (RIQL), ICLR 2024, Sec. 4.2. σ = 0.1 gives δ = 100 (≈ scaled
  L2); σ = 3 gives δ ≈ 0.11 (≈ L1).
  """
  if sigma <= 0:
    raise ValueError(f"huber sigma must be positive, got {sigma}")
  return 1.0 / (sigma * sigma)


def huber_loss(diff: jax.Array, delta: float) -> jax.Array:
  """Elementwise Huber loss with threshold δ, gradient bounded by 1.

  `H_δ(x) = x² / (2δ)` if |x| < δ, else `|x| − δ/2`  (RIQL Eq. 7).

  Note the 1/δ scaling of the quadratic branch: the loss is continuous with a
  continuous derivative at |x| = δ, where both branches equal δ/2.
  """
  if delta <= 0:
    raise ValueError(f"huber delta must be positive, got {delta}")
  abs_diff = jnp.abs(diff)
  return jnp.where(abs_diff < delta, 0.5 * jnp.square(diff) / delta,
                   abs_diff - 0.5 * delta)


def ensemble_quantile(q_values: jax.Array, quantile: float) -> jax.Array:
  """α-quantile over the ensemble axis (axis 0) with linear interpolation.

  `Q_α(s, a) = Quantile_α({Q_k(s, a)}_{k=1..K})`, RIQL Eq. (6). With the K
  values sorted, q_(0) ≤ … ≤ q_(K−1), and h = α·(K − 1), the result is
  `q_(⌊h⌋) + (h − ⌊h⌋)·(q_(⌊h⌋+1) − q_(⌊h⌋))` (the "linear" rule of
  `numpy.quantile` / `torch.quantile`). α = 0 is the ensemble minimum.

  Args:
    q_values: [K, ...] ensemble of Q estimates.
    quantile: α in [0, 1].
  """
  if not 0.0 <= quantile <= 1.0:
    raise ValueError(f"quantile must lie in [0, 1], got {quantile}")
  chex.assert_rank(q_values, {1, 2, 3})
  return jnp.quantile(q_values, quantile, axis=0, method="linear")


def awr_weights(advantages: jax.Array, inverse_temperature: float,
                max_weight: float = 100.0) -> jax.Array:
  """Clipped exponentiated-advantage weights of advantage-weighted regression.

  `w = min(exp(β · A), w_max)` with no gradient through w (IQL Eq. 7; Peng et
  al., "Advantage-Weighted Regression", 2019). β is IQL's `temperature`, which
  acts as an inverse temperature; IQL uses w_max = 100.
  """
  weights = jnp.minimum(jnp.exp(inverse_temperature * advantages), max_weight)
  return jax.lax.stop_gradient(weights)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array,
                      actions: jax.Array) -> jax.Array:
  """Log-density of a diagonal Gaussian, summed over the last (action) axis.

  `log N(a; μ, σ²) = Σ_i [ −(a_i − μ_i)² / (2σ_i²) − log σ_i − ½ log 2π ]`.
  """
  chex.assert_equal_shape([mean, actions])
  log_std = jnp.broadcast_to(log_std, mean.shape)
  z = (actions - mean) * jnp.exp(-log_std)
  return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * jnp.log(2.0 * jnp.pi),
                 axis=-1)


def polyak_update(target_params, online_params, rate: float):
  """Soft target update `θ̄ ← (1 − ρ) θ̄ + ρ θ` on matching pytrees."""
  return jax.tree.map(lambda t, o: (1.0 - rate) * t + rate * o,
                      target_params, online_params)


def td_target(rewards: jax.Array, masks: jax.Array, next_values: jax.Array,
              discount: float) -> jax.Array:
  """One-step bootstrapped target `y = r + γ · m · V(s')`, m = 1 − terminal."""
  chex.assert_equal_shape([rewards, masks, next_values])
  return rewards + discount * masks * next_values

"""Loss pieces against hand-computed values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline.agents import losses


def test_expectile_weight_and_loss_hand_values():
  u = jnp.array([-2.0, 0.0, 3.0])
  # τ = 0.7: weight 1 − τ = 0.3 below zero, τ = 0.7 at and above zero.
  np.testing.assert_allclose(losses.expectile_weight(u, 0.7), [0.3, 0.7, 0.7],
                             rtol=1e-6)
  # 0.3·4 = 1.2, 0, 0.7·9 = 6.3
  np.testing.assert_allclose(losses.expectile_loss(u, 0.7), [1.2, 0.0, 6.3],
                             rtol=1e-6)


def test_expectile_loss_at_half_is_half_squared_error():
  u = jnp.array([-1.5, 2.0])
  np.testing.assert_allclose(losses.expectile_loss(u, 0.5), [1.125, 2.0])


@pytest.mark.parametrize("tau", [0.0, 1.0, 1.3])
def test_expectile_rejects_bad_tau(tau):
  with pytest.raises(ValueError, match="expectile"):
    losses.expectile_weight(jnp.zeros(2), tau)


def test_huber_hand_values():
  x = jnp.array([0.5, -2.0, 1.0, 0.0])
  # δ = 1: 0.5²/2 = 0.125; |−2| − 0.5 = 1.5; at |x| = δ the linear branch: 1 − 0.5
  np.testing.assert_allclose(losses.huber_loss(x, 1.0), [0.125, 1.5, 0.5, 0.0])
  # σ = 0.5 → δ = 1/0.25 = 4: 3²/(2·4) = 1.125; |−5| − 2 = 3
  delta = losses.huber_delta_from_sigma(0.5)
  assert delta == pytest.approx(4.0)
  np.testing.assert_allclose(losses.huber_loss(jnp.array([3.0, -5.0]), delta),
                             [1.125, 3.0])
  assert losses.huber_delta_from_sigma(0.1) == pytest.approx(100.0)


def test_huber_gradient_is_bounded_by_one():
  grad = jax.grad(lambda x: jnp.sum(losses.huber_loss(x, 1.0 / 9.0)))
  g = grad(jnp.array([10.0, -10.0, 0.05]))
  # Linear branch: ±1; quadratic branch: x/δ = 0.05·9 = 0.45.
  np.testing.assert_allclose(g, [1.0, -1.0, 0.45], rtol=1e-5)


def test_huber_rejects_bad_parameters():
  with pytest.raises(ValueError, match="sigma"):
    losses.huber_delta_from_sigma(0.0)
  with pytest.raises(ValueError, match="delta"):
    losses.huber_loss(jnp.zeros(2), -1.0)


def test_ensemble_quantile_hand_values():
  # K = 5 critics, one sample; sorted values 1, 1, 3, 4, 5; h = α·(K − 1).
  q = jnp.array([[3.0], [1.0], [4.0], [1.0], [5.0]])
  cases = {
      0.0: 1.0,  # minimum
      0.1: 1.0,  # h = 0.4, between 1 and 1
      0.25: 1.0,  # h = 1
      0.5: 3.0,  # h = 2
      0.6: 3.4,  # h = 2.4: 3 + 0.4·(4 − 3)
      0.9: 4.6,  # h = 3.6: 4 + 0.6·(5 − 4)
      1.0: 5.0,  # maximum
  }
  for alpha, expected in cases.items():
    np.testing.assert_allclose(losses.ensemble_quantile(q, alpha), [expected],
                               rtol=1e-6, err_msg=f"alpha={alpha}")
  # K = 3, two samples: [2, 0, 1] and [−1, −3, 5]; α = 0.25 → h = 0.5.
  q3 = jnp.array([[2.0, -1.0], [0.0, -3.0], [1.0, 5.0]])
  np.testing.assert_allclose(losses.ensemble_quantile(q3, 0.25), [0.5, -2.0])


def test_ensemble_quantile_rejects_bad_alpha():
  with pytest.raises(ValueError, match="quantile"):
    losses.ensemble_quantile(jnp.zeros((3, 2)), 1.5)


def test_awr_weights_hand_values_and_no_gradient():
  adv = jnp.array([0.0, 1.0, 10.0, -1.0])
  w = losses.awr_weights(adv, 3.0, 100.0)
  # exp(0) = 1; exp(3); exp(30) clipped to 100; exp(−3)
  np.testing.assert_allclose(w, [1.0, math.exp(3.0), 100.0, math.exp(-3.0)],
                             rtol=1e-6)
  g = jax.grad(lambda a: jnp.sum(losses.awr_weights(a, 3.0)))(adv)
  np.testing.assert_array_equal(g, np.zeros(4))


def test_gaussian_log_prob_hand_values():
  log2pi = math.log(2.0 * math.pi)
  # Standard normal in 2 dims at (1, 0): −½·1 − 2·½·log 2π
  lp = losses.gaussian_log_prob(jnp.zeros((1, 2)), jnp.zeros((1, 2)),
                                jnp.array([[1.0, 0.0]]))
  np.testing.assert_allclose(lp, [-0.5 - log2pi], rtol=1e-6)
  # σ = 2, μ = 1, a = 5: z = 2 → −2 − log 2 − ½ log 2π
  lp = losses.gaussian_log_prob(jnp.array([[1.0]]), jnp.array([math.log(2.0)]),
                                jnp.array([[5.0]]))
  np.testing.assert_allclose(lp, [-2.0 - math.log(2.0) - 0.5 * log2pi],
                             rtol=1e-6)


def test_polyak_and_td_target():
  out = losses.polyak_update({"w": jnp.array([1.0, 2.0])},
                             {"w": jnp.array([3.0, 6.0])}, 0.25)
  np.testing.assert_allclose(out["w"], [1.5, 3.0])
  y = losses.td_target(jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0]),
                       jnp.array([10.0, 10.0]), 0.9)
  np.testing.assert_allclose(y, [10.0, 2.0])

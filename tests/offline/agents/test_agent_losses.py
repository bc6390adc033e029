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


def test_huber_standard_hand_values_and_gradient():
  # δ = 20: ½·3² = 4.5; 20·(30 − 10) = 400; 20·(25 − 10) = 300; both branches
  # give ½·20² = 200 at |x| = δ.
  x = jnp.array([3.0, -30.0, 25.0, 20.0])
  np.testing.assert_allclose(losses.huber_loss_standard(x, 20.0), [4.5, 400.0, 300.0, 200.0])
  # Gradient clip(x, −δ, δ): 3, −20, 20.
  g = jax.grad(lambda v: jnp.sum(losses.huber_loss_standard(v, 20.0)))(x[:3])
  np.testing.assert_allclose(g, [3.0, -20.0, 20.0])
  with pytest.raises(ValueError, match="delta"):
    losses.huber_loss_standard(x, 0.0)


def test_chi_square_conjugate_hand_values_and_gradient():
  # x + x²/4: −6 + 9 = 3; −2 + 1 = −1 → 0; 0.5 + 0.0625 = 0.5625; 2 + 1 = 3.
  x = jnp.array([-6.0, -2.0, 0.5, 2.0])
  np.testing.assert_allclose(losses.chi_square_conjugate(x), [3.0, 0.0, 0.5625, 3.0])
  # d/dx = 1 + x/2 where x + x²/4 > 0, else 0: −2, 0, 1.25, 2.
  g = jax.grad(lambda v: jnp.sum(losses.chi_square_conjugate(v)))(x)
  np.testing.assert_allclose(g, [-2.0, 0.0, 1.25, 2.0])


def test_total_variation_conjugate_hand_values_and_gradient():
  x = jnp.array([-1.0, 0.5, 3.0])
  np.testing.assert_allclose(losses.total_variation_conjugate(x), [0.0, 0.5, 3.0])
  g = jax.grad(lambda v: jnp.sum(losses.total_variation_conjugate(v)))(x)
  np.testing.assert_allclose(g, [0.0, 1.0, 1.0])


def test_gumbel_loss_hand_values_and_gradient():
  # λ = 2: z = x/2 = [−2, 0, 1]; M = max(1, −1) = 1; L = e^{−M}(e^z − z − 1).
  x = jnp.array([-4.0, 0.0, 2.0])
  e = math.e
  expected = [(math.exp(-2.0) + 1.0) / e, 0.0, (e - 2.0) / e]  # 0.41767, 0, 0.26424
  np.testing.assert_allclose(losses.gumbel_loss(x, 2.0, max_clip=7.0), expected, rtol=1e-6)
  # M is stop-gradient: dL_i/dx_i = (e^{z_i − M} − e^{−M}) / λ.
  g = jax.grad(lambda v: jnp.sum(losses.gumbel_loss(v, 2.0, 7.0)))(x)
  np.testing.assert_allclose(g, [(math.exp(-3.0) - 1 / e) / 2, (1 / e - 1 / e) / 2,
                                 (1.0 - 1 / e) / 2], rtol=1e-5, atol=1e-7)


def test_gumbel_loss_clip_and_max_floor():
  # max_clip = 1 clips z = 3 to 1 (no gradient there); M = 1.
  out = losses.gumbel_loss(jnp.array([3.0, 0.0]), 1.0, max_clip=1.0)
  np.testing.assert_allclose(out, [1.0 - 2.0 / math.e, 0.0], rtol=1e-6, atol=1e-7)
  g = jax.grad(lambda v: jnp.sum(losses.gumbel_loss(v, 1.0, 1.0)))(jnp.array([3.0, 0.0]))
  assert float(g[0]) == 0.0
  # All z below −1: M is floored at −1, L = e^{z+1} − z·e − e; z = −5 gives e^{−4} + 4e.
  out = losses.gumbel_loss(jnp.array([-5.0, -3.0]), 1.0)
  np.testing.assert_allclose(out, [math.exp(-4.0) + 4 * math.e, math.exp(-2.0) + 2 * math.e],
                             rtol=1e-6)
  with pytest.raises(ValueError, match="temperature"):
    losses.gumbel_loss(jnp.zeros(2), 0.0)


def test_dual_value_loss_hand_values_and_gradient_in_v():
  q = jnp.array([2.0, -2.0])
  # λ = 0.8, χ²: x = 2 → 0.8·3 − 0.2·2 = 2.0; x = −2 → 0.8·0 + 0.2·2 = 0.4.
  loss = lambda v, f, lam: losses.dual_value_loss(q - v, f, lam)
  np.testing.assert_allclose(loss(jnp.zeros(2), "chi-square", 0.8), [2.0, 0.4], rtol=1e-6)
  # dL/dV = −dL/dx = −(0.8·(1 + x/2)·1[f* > 0] − 0.2): x = 2 → −1.4; x = −2 → 0.2.
  g = jax.grad(lambda v: jnp.sum(loss(v, "chi-square", 0.8)))(jnp.zeros(2))
  np.testing.assert_allclose(g, [-1.4, 0.2], rtol=1e-6)
  # TV, λ = 0.5: x = 2 → 0.5·2 − 0.5·2 = 0; x = −2 → 0 + 0.5·2 = 1.
  np.testing.assert_allclose(loss(jnp.zeros(2), "total-variation", 0.5), [0.0, 1.0])
  g = jax.grad(lambda v: jnp.sum(loss(v, "total-variation", 0.5)))(jnp.zeros(2))
  np.testing.assert_allclose(g, [0.0, 0.5])
  # reverse-KL is the Gumbel loss with λ as its temperature (any case of the name).
  np.testing.assert_allclose(loss(jnp.zeros(2), "reverse-KL", 2.0),
                             losses.gumbel_loss(q, 2.0), rtol=1e-6)
  with pytest.raises(ValueError, match="chi-square, total-variation, reverse-kl"):
    losses.dual_value_loss(q, "hellinger", 1.0)


def test_chi_square_dual_v_is_an_implicit_maximiser():
  """With λ = 1, E[max(x + x²/4, 0)] over x = q − v is 0 exactly when every
  q − v lies in [−4, 0]: v = max q (up to min q + 4) is a minimiser, while
  the mean or an expectile below the max is not."""
  q = jnp.array([0.0, 1.0, 2.5])
  risk = lambda v: float(jnp.mean(losses.dual_value_loss(q - v, "chi-square", 1.0)))
  assert risk(2.5) == 0.0 and risk(3.5) == 0.0
  assert risk(float(jnp.mean(q))) > 0.1 and risk(2.0) > 0.0 and risk(5.0) > 0.0

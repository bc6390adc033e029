import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from . import reference_numpy as ref

LP = jnp.array([-1.0, -2.0, 0.0, 25.0, -0.5])
REF = jnp.array([-1.5, -1.0, 25.0, 0.0, -0.5])
# x = lp - ref = [0.5, -1, -25, 25, 0]


def test_k1_abs_k2_hand_values():
  np.testing.assert_allclose(losses.kl_divergence(LP, REF, "k1"), [0.5, -1.0, -25.0, 25.0, 0.0])
  np.testing.assert_allclose(losses.kl_divergence(LP, REF, "abs"), [0.5, 1.0, 25.0, 25.0, 0.0])
  np.testing.assert_allclose(losses.kl_divergence(LP, REF, "mse"), [0.125, 0.5, 312.5, 312.5, 0.0])


def test_k3_hand_values_with_clamps():
  got = losses.kl_divergence(LP, REF, "k3")
  # d = ref - lp: -0.5 -> e^-0.5 + 0.5 - 1; 1 -> e - 2; 25 -> clamp d to 20, value huge -> 10;
  # -25 -> d = -20 -> e^-20 + 19 -> clamp 10; 0 -> 0.
  expected = [math.exp(-0.5) - 0.5, math.e - 2.0, 10.0, 10.0, 0.0]
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
  grad = jax.grad(lambda lp: jnp.sum(losses.kl_divergence(lp, REF, "low_var_kl")))(LP)
  # d/dlp (e^{ref-lp} - (ref-lp) - 1) = 1 - e^{ref-lp}; zero where clamped.
  np.testing.assert_allclose(grad, [1 - math.exp(-0.5), 1 - math.e, 0.0, 0.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("base", ["k1", "abs", "k3"])
def test_straight_through_has_base_value_and_k2_gradient(base):
  np.testing.assert_allclose(losses.kl_divergence(LP, REF, base + "+"),
                             losses.kl_divergence(LP, REF, base), rtol=1e-6)
  grad = jax.grad(lambda lp: jnp.sum(losses.kl_divergence(lp, REF, base + "+")))(LP)
  np.testing.assert_allclose(grad, np.asarray(LP - REF), rtol=1e-6)   # k2's gradient: lp - ref


@pytest.mark.parametrize("kind", ["k1", "k2", "k3"])
def test_kl_matches_verl(kind):
  rng = np.random.default_rng(0)
  lp = rng.normal(-2, 1, size=(3, 4))
  rf = lp + rng.normal(0, 2, size=(3, 4))
  rf[0, 0] = lp[0, 0] + 30.0
  rf[1, 1] = lp[1, 1] - 30.0
  np.testing.assert_allclose(
      losses.kl_divergence(jnp.asarray(lp, jnp.float32), jnp.asarray(rf, jnp.float32), kind),
      ref.verl_kl(lp, rf, kind), rtol=1e-5, atol=1e-5)


def test_kl_from_logits_and_entropy():
  logits = jnp.array([[0.0, 1.0, 2.0], [3.0, 3.0, 3.0]])
  ref_logits = jnp.array([[2.0, 1.0, 0.0], [0.0, 0.0, 100.0]])
  p = np.exp([0., 1., 2.]) / np.exp([0., 1., 2.]).sum()
  q = p[::-1]
  expected0 = float(np.sum(p * np.log(p / q)))
  got = losses.kl_from_logits(logits, ref_logits)
  np.testing.assert_allclose(got[0], expected0, rtol=1e-5)
  # uniform p against q ~ one-hot at index 2: KL = log(1/3) - (1/3) sum_v log q_v.
  log_q = np.array([-100.0, -100.0, 0.0]) - np.log1p(2 * np.exp(-100.0))
  np.testing.assert_allclose(got[1], math.log(1 / 3) - log_q.mean(), rtol=1e-5)
  ent = losses.entropy_from_logits(jnp.array([[0.0, 0.0, 0.0, 0.0], [100.0, 0.0, 0.0, 0.0]]))
  np.testing.assert_allclose(ent, [math.log(4.0), 0.0], atol=1e-6)
  # temperature 2 on logits [0, 2 ln 3] gives probabilities 1/4, 3/4.
  ent_t = losses.entropy_from_logits(jnp.array([0.0, 2 * math.log(3.0)]), temperature=2.0)
  np.testing.assert_allclose(ent_t, -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)), rtol=1e-5)


def test_f_generators_hand_values_at_u_equal_2():
  lp, lq = jnp.array([math.log(2.0)]), jnp.array([0.0])
  expected = {
      "forward_kl": 2 - 1 - math.log(2),
      "reverse_kl": 2 * math.log(2) - 1,
      "js": 2 * math.log(2) - 3 * math.log(1.5),
      "chi2": 1.0,
      "tv": 0.5,
      "alpha": (2 ** 0.8 - 0.8 * 2 - 0.2) / (0.2 * -0.8),
  }
  for kind, value in expected.items():
    np.testing.assert_allclose(losses.f_divergence(lp, lq, kind), [value], rtol=1e-5, err_msg=kind)
    np.testing.assert_allclose(losses.f_divergence(lq, lq, kind), [0.0], atol=1e-7, err_msg=kind)


def test_f_divergence_expectation_equals_exact_divergence():
  # E_{y ~ q}[f(p(y)/q(y))] summed over a full vocabulary equals the closed-form divergence.
  p = np.array([0.5, 0.3, 0.2])
  q = np.array([0.2, 0.3, 0.5])
  lp, lq = jnp.log(jnp.asarray(p)), jnp.log(jnp.asarray(q))
  m = (p + q) / 2
  exact = {
      "forward_kl": np.sum(q * np.log(q / p)),
      "reverse_kl": np.sum(p * np.log(p / q)),
      "js": np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m)),   # 2 * JS
      "chi2": np.sum((p - q) ** 2 / q),
      "tv": 0.5 * np.sum(np.abs(p - q)),
  }
  for kind, value in exact.items():
    est = float(jnp.sum(jnp.asarray(q) * losses.f_divergence(lp, lq, kind)))
    np.testing.assert_allclose(est, value, rtol=1e-5, err_msg=kind)
  # Forward-KL estimators: on policy samples (weights p) and on reference samples (weights q).
  on_policy = jnp.sum(jnp.asarray(p) * losses.forward_kl_estimate(lp, lq, samples_from="policy"))
  np.testing.assert_allclose(on_policy, exact["forward_kl"], rtol=1e-5)
  on_ref = jnp.sum(jnp.asarray(q) * losses.forward_kl_estimate(lp, lq, samples_from="reference"))
  np.testing.assert_allclose(on_ref, exact["forward_kl"], rtol=1e-5)


def test_clipped_value_loss_hand_values():
  v = jnp.array([[1.0, 0.0, 2.0]])
  old_v = jnp.array([[0.0, 0.0, 2.0]])
  ret = jnp.array([[2.0, 1.0, 0.0]])
  out = losses.clipped_value_loss(v, old_v, ret, jnp.array([[1.0, 1.0, 0.0]]), clip=0.5)
  # t0: unclipped (1-2)^2 = 1, clipped (0.5-2)^2 = 2.25 -> 2.25; t1: 1 and 1 -> 1.
  np.testing.assert_allclose([out.total, out.count], [0.5 * (2.25 + 1.0), 2.0], rtol=1e-6)
  np.testing.assert_allclose(out.metrics["vf_clipfrac"], 0.5)


def test_divergence_bad_inputs():
  with pytest.raises(ValueError, match="k1"):
    losses.kl_divergence(LP, REF, "k4")
  with pytest.raises(ValueError, match="same shape"):
    losses.kl_divergence(LP, REF[:2], "k1")
  with pytest.raises(ValueError, match="f-divergence"):
    losses.f_divergence(LP, REF, "hellinger")
  with pytest.raises(ValueError, match="temperature"):
    losses.entropy_from_logits(jnp.zeros((2, 3)), temperature=0.0)

"""DPH-RL loss and f-divergences on policy samples: hand-computed values and gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.losses import dph_rl

LOG_HALF, LOG_QUARTER = math.log(0.5), math.log(0.25)  # u = 0.5 / 0.25 = 2 below


# ---- per-token generators at u = 2 (worked by hand) ----------------------------------------
# forward_kl: u - log u - 1 = 2 - 0.693147 - 1                      = 0.306853
# js:         u log u - (u+1) log((u+1)/2) = 1.386294 - 3 log 1.5   = 0.169899
# alpha 0.2:  (2^0.8 - 0.8*2 - 0.2) / (0.2 * -0.8) = (1.741101 - 1.8) / -0.16 = 0.368119
@pytest.mark.parametrize("kind,want", [("forward_kl", 0.306853), ("js", 0.169899),
                                       ("alpha", 0.368119)])
def test_rehearsal_divergence_hand_values(kind, want):
  lp = jnp.full((1, 2), LOG_HALF)
  lp0 = jnp.full((1, 2), LOG_QUARTER)
  f = dph_rl.rehearsal_divergence(lp, lp0, divergence=kind, alpha=0.2)
  np.testing.assert_allclose(np.asarray(f), want, atol=2e-6)


def test_forward_kl_clamps_like_official():
  # log u = -30 is clipped to -20: f = e^-20 + 20 - 1 = 19.0 -> clipped to 10; zero gradient.
  lp = jnp.array([[-30.0, 0.0]])
  lp0 = jnp.array([[0.0, 0.0]])
  f = dph_rl.rehearsal_divergence(lp, lp0)
  np.testing.assert_allclose(np.asarray(f), [[10.0, 0.0]], atol=1e-6)
  g = jax.grad(lambda x: jnp.sum(dph_rl.rehearsal_divergence(x, lp0)))(lp)
  np.testing.assert_allclose(np.asarray(g), [[0.0, 0.0]], atol=1e-6)
  # JS is not clamped by default (official js_low_var has no clamp): f(e^-20) ~ log 2.
  fj = dph_rl.rehearsal_divergence(lp, lp0, divergence="js")
  assert abs(float(fj[0, 0]) - math.log(2.0)) < 1e-6
  # An explicit clamp applies to any generator.
  fc = dph_rl.rehearsal_divergence(lp, lp0, divergence="js", f_clamp=0.5)
  assert abs(float(fc[0, 0]) - 0.5) < 1e-7


def _batch():
  """Rows 0, 1 RL (advantages 1 and -0.5; row 1's second token masked), row 2 rehearsal
  (u = 2 at both tokens; its advantage 7 must be ignored)."""
  lp = jnp.array([[-1.0, -2.0], [-0.5, -0.7], [LOG_HALF, LOG_HALF]])
  old = lp  # ratio 1: the clipped surrogate is -A per token, d/dlp = -A
  adv = jnp.array([1.0, -0.5, 7.0])
  mask = jnp.array([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
  extras = {"is_rehearsal": jnp.array([False, False, True]),
            "base_logprobs": jnp.array([[0.0, 0.0], [0.0, 0.0], [LOG_QUARTER, LOG_QUARTER]])}
  return lp, old, adv, mask, extras


def test_dph_rl_loss_tokens_mix_hand_value():
  lp, old, adv, mask, extras = _batch()
  out = dph_rl.dph_rl_loss(lp, old, adv, mask, extras=extras, eta=0.1)
  # RL: -1 - 1 + 0.5 = -1.5 over 3 tokens; rehearsal: 0.1 * 2 * 0.306853 = 0.0613706.
  np.testing.assert_allclose(float(out.total), -1.5 + 0.0613706, atol=1e-5)
  assert float(out.count) == 5.0
  np.testing.assert_allclose(float(out.metrics["rehearsal_divergence"]), 0.306853, atol=1e-5)
  np.testing.assert_allclose(float(out.metrics["rl_pg_loss"]), -0.5, atol=1e-6)
  np.testing.assert_allclose(float(out.metrics["rehearsal_token_frac"]), 0.4, atol=1e-6)
  np.testing.assert_allclose(float(out.metrics["rehearsal_log_ratio"]), math.log(2), atol=1e-6)
  assert "clip_frac" in out.metrics


def test_dph_rl_loss_means_mix_hand_value():
  lp, old, adv, mask, extras = _batch()
  out = dph_rl.dph_rl_loss(lp, old, adv, mask, extras=extras, eta=0.1, mix="means")
  # (-1.5 / 3 + 0.1 * 0.306853) * 5 = (-0.5 + 0.0306853) * 5 = -2.3465735
  np.testing.assert_allclose(float(out.total), -2.3465735, atol=1e-5)
  assert float(out.count) == 5.0


@pytest.mark.parametrize("kind,reh_grad", [
    # d/dlp f(u) = u f'(u): forward_kl u (1 - 1/u) = u - 1 = 1;
    # js u (log u + 1 - log((u+1)/2) - 1) = u log(2u/(u+1)) = 2 log(4/3) = 0.575364
    ("forward_kl", 1.0), ("js", 0.575364)])
def test_dph_rl_loss_gradient_hand(kind, reh_grad):
  lp, old, adv, mask, extras = _batch()
  eta = 0.1
  g = jax.grad(lambda x: dph_rl.dph_rl_loss(x, old, adv, mask, extras=extras, eta=eta,
                                            divergence=kind).total)(lp)
  want = np.array([[-1.0, -1.0], [0.5, 0.0], [eta * reh_grad, eta * reh_grad]])
  np.testing.assert_allclose(np.asarray(g), want, atol=1e-5)


def test_dph_rl_loss_gradient_finite_difference_numpy():
  """Gradient vs central differences of an independent NumPy transcription (JS, clipped ratios)."""
  rng = np.random.default_rng(0)
  b, n = 4, 3
  lp = rng.normal(-1.0, 0.3, (b, n))
  old = lp + rng.normal(0.0, 0.3, (b, n))
  lp0 = lp + rng.normal(0.0, 0.5, (b, n))
  adv = rng.normal(size=(b,))
  mask = (rng.random((b, n)) > 0.2).astype(np.float64)
  reh = np.array([False, True, False, True])
  eta, lo, hi = 0.2, 0.2, 0.28

  def numpy_loss(x):
    m_re = mask * reh[:, None]
    m_rl = mask - m_re
    r = np.exp(x - old)
    a = adv[:, None]
    pg = np.maximum(-a * r, -a * np.clip(r, 1 - lo, 1 + hi))
    u = np.exp(x - lp0)
    f = u * np.log(u) - (u + 1) * np.log((u + 1) / 2)
    return (np.sum(pg * m_rl) + eta * np.sum(f * m_re)) / np.sum(mask)

  extras = {"is_rehearsal": jnp.asarray(reh), "base_logprobs": jnp.asarray(lp0, jnp.float32)}
  loss = lambda x: (lambda o: o.total / o.count)(dph_rl.dph_rl_loss(  # noqa: E731
      x, jnp.asarray(old, jnp.float32), jnp.asarray(adv, jnp.float32),
      jnp.asarray(mask, jnp.float32), extras=extras, divergence="js", eta=eta))
  np.testing.assert_allclose(float(loss(jnp.asarray(lp, jnp.float32))), numpy_loss(lp), atol=1e-5)
  g = np.asarray(jax.grad(loss)(jnp.asarray(lp, jnp.float32)))
  h = 1e-5
  fd = np.zeros_like(lp)
  for i in range(b):
    for j in range(n):
      e = np.zeros_like(lp)
      e[i, j] = h
      fd[i, j] = (numpy_loss(lp + e) - numpy_loss(lp - e)) / (2 * h)
  np.testing.assert_allclose(g, fd, atol=1e-4)


def test_dph_rl_loss_no_rehearsal_rows_is_ppo():
  from jaxrl_llm.losses import ppo_policy_loss
  lp, old, adv, mask, extras = _batch()
  extras = {"is_rehearsal": jnp.zeros((3,), bool), "base_logprobs": jnp.zeros((3, 2))}
  out = dph_rl.dph_rl_loss(lp, old - 0.1, adv, mask, extras=extras)
  ref = ppo_policy_loss(lp, old - 0.1, adv, mask, clip_low=0.2, clip_high=0.28)
  np.testing.assert_allclose(float(out.total), float(ref.total), atol=1e-6)
  assert float(out.count) == float(ref.count)


def test_dph_rl_loss_errors_name_the_argument():
  lp, old, adv, mask, extras = _batch()
  with pytest.raises(ValueError, match="base_logprobs"):
    dph_rl.dph_rl_loss(lp, old, adv, mask, extras={"is_rehearsal": extras["is_rehearsal"]})
  with pytest.raises(ValueError, match="is_rehearsal"):
    dph_rl.dph_rl_loss(lp, old, adv, mask, extras={**extras, "is_rehearsal": jnp.zeros((3,))})
  with pytest.raises(ValueError, match="base_logprobs"):
    dph_rl.dph_rl_loss(lp, old, adv, mask, extras={**extras, "base_logprobs": jnp.zeros((3, 3))})
  with pytest.raises(ValueError, match="mix"):
    dph_rl.dph_rl_loss(lp, old, adv, mask, extras=extras, mix="bogus")
  with pytest.raises(ValueError, match="eta"):
    dph_rl.dph_rl_loss(lp, old, adv, mask, extras=extras, eta=-1.0)
  with pytest.raises(ValueError, match="f-divergence kind"):
    dph_rl.dph_rl_loss(lp, old, adv, mask, extras=extras, divergence="hellinger")


# ---- f-divergences on policy samples -------------------------------------------------------


def test_policy_sample_estimator_hand_values():
  lp = jnp.array([LOG_HALF])
  ref = jnp.array([LOG_QUARTER])  # u = 2, r = 1/u = 0.5
  # reverse_kl: f(u)/u = log u - 1 + 1/u = 0.693147 - 0.5 = 0.193147 (= k3 of KL(pi || ref))
  rev = dph_rl.f_divergence_policy_samples(lp, ref, "reverse_kl")
  np.testing.assert_allclose(float(rev[0]), 0.193147, atol=1e-6)
  # forward_kl: r log r - r + 1 = -0.346574 + 0.5 = 0.153426
  fwd = dph_rl.f_divergence_policy_samples(lp, ref, "forward_kl")
  np.testing.assert_allclose(float(fwd[0]), 0.153426, atol=1e-6)


def _numpy_divergences(p, q, alpha):
  """Exact D_f(p || q) from the textbook definitions (independent of the generators)."""
  m = 0.5 * (p + q)
  return {
      "forward_kl": np.sum(q * np.log(q / p)),
      "reverse_kl": np.sum(p * np.log(p / q)),
      "js": np.sum(p * np.log(p / m)) + np.sum(q * np.log(q / m)),  # 2 JS (js_low_var)
      "chi2": np.sum((p - q) ** 2 / q),
      "tv": 0.5 * np.sum(np.abs(p - q)),
      "alpha": (np.sum(p ** (1 - alpha) * q ** alpha) - 1) / (alpha * (alpha - 1)),
  }


@pytest.mark.parametrize("kind", ["forward_kl", "reverse_kl", "js", "chi2", "tv", "alpha"])
def test_policy_sample_estimator_is_unbiased(kind):
  """E_{a ~ p}[f(u)/u] over a small categorical equals the exact D_f(p || q)."""
  p = np.array([0.5, 0.3, 0.15, 0.05])
  q = np.array([0.2, 0.3, 0.1, 0.4])
  est = dph_rl.f_divergence_policy_samples(jnp.log(jnp.asarray(p, jnp.float32)),
                                           jnp.log(jnp.asarray(q, jnp.float32)), kind, alpha=0.3)
  exact = _numpy_divergences(p, q, 0.3)[kind]
  np.testing.assert_allclose(float(np.sum(p * np.asarray(est))), exact, rtol=1e-5, atol=1e-6)


def test_parse_f_divergence():
  assert dph_rl.parse_f_divergence("f:js") == ("js", 0.2)
  assert dph_rl.parse_f_divergence("f:alpha") == ("alpha", 0.2)
  assert dph_rl.parse_f_divergence("f:alpha=0.5") == ("alpha", 0.5)
  with pytest.raises(ValueError, match="f-divergence kind"):
    dph_rl.parse_f_divergence("f:hellinger")
  with pytest.raises(ValueError, match="only f:alpha"):
    dph_rl.parse_f_divergence("f:js=0.5")
  with pytest.raises(ValueError, match="must not be 0 or 1"):
    dph_rl.parse_f_divergence("f:alpha=1")
  with pytest.raises(ValueError, match="not a number"):
    dph_rl.parse_f_divergence("f:alpha=x")

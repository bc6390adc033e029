"""RAPO (arXiv 2510.03865, SECONDARY spec): hand rows, NumPy transcription, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.losses import rapo


def test_phi_hand_values():
  phi, m = rapo.rapo_phi(jnp.array([0.0, 0.5, 1.0, 2.0, -1.0]), phi="linear", phi_min=0.5)
  np.testing.assert_allclose(phi, [0.5, 0.75, 1.0, 1.0, 0.5])
  np.testing.assert_allclose(m["phi_mean"], 3.75 / 5)
  phi, _ = rapo.rapo_phi(jnp.array([0.0, 1.0]), phi="none")
  np.testing.assert_allclose(phi, [1.0, 1.0])
  with pytest.raises(ValueError, match="phi_min"):
    rapo.rapo_phi(jnp.zeros(2), phi_min=1.5)
  with pytest.raises(ValueError, match="phi"):
    rapo.rapo_phi(jnp.zeros(2), phi="exp")


def test_tilted_lognorm_hand_values():
  # pi_ref = (1/4, 3/4): sum_a pi^0.5 = 1/2 + sqrt(3)/2; phi = 1 -> 0; phi = 0 -> log V.
  z = jnp.array([[0.0, math.log(3.0)]] * 3) + 5.0   # a shift of the logits changes nothing
  got = rapo.tilted_lognorm_from_logits(z, jnp.array([0.5, 1.0, 0.0]))
  np.testing.assert_allclose(got, [math.log(0.5 + math.sqrt(3) / 2), 0.0, math.log(2.0)],
                             atol=1e-6)


def _case():
  # One row of two tokens plus a second row of one token (second column masked out).
  lp = np.array([[-1.0, -2.0], [-0.5, -7.0]])
  ref = np.array([[-1.5, -1.0], [-0.2, -3.0]])
  lognorm = np.array([[0.2, 0.1], [0.05, 0.3]])
  rewards = np.array([0.5, 1.0])        # phi = 0.75, 1.0 (phi_min 0.5)
  adv = np.array([[1.0, 1.0], [-2.0, 0.0]])
  mask = np.array([[1.0, 1.0], [1.0, 0.0]])
  return lp, ref, lognorm, rewards, adv, mask


def _hand_penalties():
  # log pihat = phi lp_ref - lognorm; log u = log pihat - lp; k = u log u - u + 1.
  lu = [0.75 * -1.5 - 0.2 - (-1.0), 0.75 * -1.0 - 0.1 - (-2.0), 1.0 * -0.2 - 0.05 - (-0.5)]
  u = [math.exp(x) for x in lu]
  k = [ui * li - ui + 1 for ui, li in zip(u, lu)]
  return lu, u, k


def _rapo(lp, ref, lognorm, rewards, adv, mask, **kw):
  return rapo.rapo_loss(lp, jax.lax.stop_gradient(lp), jnp.asarray(adv), jnp.asarray(mask),
                        ref_logprobs=jnp.asarray(ref), rewards=jnp.asarray(rewards),
                        extras={"ref_tilted_lognorm": jnp.asarray(lognorm)}, **kw)


def test_rapo_loss_hand_total():
  lp, ref, lognorm, rewards, adv, mask = _case()
  lu, u, k = _hand_penalties()
  out = _rapo(jnp.asarray(lp), ref, lognorm, rewards, adv, mask, alpha=0.1, phi_min=0.5)
  # ratio 1: PPO total = -(1 + 1 - 2) = 0; penalty total = 0.1 * sum k; count 3 tokens.
  assert float(out.count) == 3.0
  np.testing.assert_allclose(out.total, 0.1 * sum(k), rtol=1e-5)
  np.testing.assert_allclose(out.metrics["forward_kl"], sum(k) / 3, rtol=1e-5)
  np.testing.assert_allclose(out.metrics["phi_mean"], 0.875)
  np.testing.assert_allclose(out.metrics["tilted_log_ratio_mean"], sum(lu) / 3, rtol=1e-5)


def test_rapo_loss_gradient_hand_derived():
  lp, ref, lognorm, rewards, adv, mask = _case()
  lu, u, _ = _hand_penalties()
  g = jax.grad(lambda x: (lambda o: o.total / o.count)(
      _rapo(x, ref, lognorm, rewards, adv, mask, alpha=0.1, phi_min=0.5)))(jnp.asarray(lp))
  # d/dlp [-A r] = -A at r = 1; d/dlp [u log u - u + 1] = -u log u (du/dlp = -u).
  want = np.array([[-1.0 - 0.1 * u[0] * lu[0], -1.0 - 0.1 * u[1] * lu[1]],
                   [2.0 - 0.1 * u[2] * lu[2], 0.0]]) / 3
  np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)


def test_rapo_penalty_numpy_transcription_and_finite_difference():
  rng = np.random.default_rng(1)
  b, n, v = 3, 4, 6
  ref_logits = rng.normal(size=(b, n, v))
  ref_lsm = ref_logits - np.log(np.exp(ref_logits).sum(-1, keepdims=True))
  tokens = rng.integers(0, v, (b, n))
  ref = np.take_along_axis(ref_lsm, tokens[..., None], -1)[..., 0]
  rewards = np.array([0.0, 0.3, 1.0])
  phi = 0.2 + 0.8 * rewards
  lognorm = np.log((np.exp(ref_lsm) ** phi[:, None, None]).sum(-1))
  np.testing.assert_allclose(rapo.tilted_lognorm_from_logits(jnp.asarray(ref_logits),
                                                             jnp.asarray(phi)[:, None]),
                             lognorm, rtol=1e-5, atol=1e-6)
  lp = rng.normal(-1.5, 0.5, (b, n))
  mask = np.ones((b, n))
  mask[2, 3] = 0
  zeros = np.zeros((b, n))

  def numpy_penalty(x):
    total = 0.0
    for i in range(b):
      for t in range(n):
        if mask[i, t]:
          log_u = phi[i] * ref[i, t] - lognorm[i, t] - x[i, t]
          total += math.exp(log_u) * log_u - math.exp(log_u) + 1
    return 0.5 * total / mask.sum()

  def loss(x):
    o = _rapo(x, ref, lognorm, rewards, zeros, mask, alpha=0.5, phi_min=0.2)
    return o.total / o.count

  np.testing.assert_allclose(float(loss(jnp.asarray(lp, jnp.float32))), numpy_penalty(lp),
                             rtol=1e-5)
  g = np.asarray(jax.grad(loss)(jnp.asarray(lp, jnp.float32)))
  eps = 1e-5
  for (i, t) in [(0, 0), (1, 2), (2, 1), (2, 3)]:
    d = np.zeros_like(lp)
    d[i, t] = eps
    fd = (numpy_penalty(lp + d) - numpy_penalty(lp - d)) / (2 * eps)
    np.testing.assert_allclose(g[i, t], fd, rtol=1e-3, atol=1e-6)


def test_phi_none_is_plain_forward_kl():
  lp, ref, _, rewards, adv, mask = _case()
  out = _rapo(jnp.asarray(lp), ref, np.zeros_like(ref), rewards, adv, mask, alpha=1.0,
              phi="none")
  lu = (ref - lp) * mask
  k = (np.exp(lu) * lu - np.exp(lu) + 1) * mask
  np.testing.assert_allclose(out.total, k.sum(), rtol=1e-5)


def test_rapo_loss_needs_extras():
  lp, ref, _, rewards, adv, mask = _case()
  with pytest.raises(ValueError, match="ref_tilted_lognorm"):
    rapo.rapo_loss(jnp.asarray(lp), jnp.asarray(lp), jnp.asarray(adv), jnp.asarray(mask),
                   ref_logprobs=jnp.asarray(ref), rewards=jnp.asarray(rewards), extras={})
  with pytest.raises(ValueError, match="ref_tilted_lognorm"):
    _rapo(jnp.asarray(lp), ref, np.zeros((2, 3)), rewards, adv, mask)

"""Guide-GRPO policy loss (losses/guide.py) by hand: the masked 0.9-quantile with linear
interpolation, the loss value, its gradient on off-policy tokens
(-A gamma r / (r + gamma)^2 / N), and on-policy tokens equal to the PPO loss."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from jaxrl_llm.losses import guide

# Jitted (one compiled program per case instead of many eager ops); options static.
_STATIC = ("clip_low", "clip_high", "gamma_strategy", "gamma_value", "gamma_min",
           "log_ratio_clamp", "agg_mode", "horizon")
_guide_loss = jax.jit(guide.guide_loss, static_argnames=_STATIC)
_quantile = jax.jit(guide.masked_quantile, static_argnames=("q",))


def test_masked_quantile_by_hand():
  # Selected values 0.5, 1, 2, 4, 3 (sorted 0.5, 1, 2, 3, 4); 100 and -7 are masked out.
  x = jnp.asarray([[0.5, 1.0, 100.0], [2.0, 4.0, 3.0], [-7.0, 0.0, 0.0]])
  m = jnp.asarray([[1, 1, 0], [1, 1, 1], [0, 0, 0]])
  # q = 0.9: h = 0.9 * 4 = 3.6 -> s[3] + 0.6 (s[4] - s[3]) = 3 + 0.6 * 1 = 3.6.
  assert float(_quantile(x, m, 0.9)) == pytest.approx(3.6, abs=1e-6)
  # q = 0.5: h = 2 -> s[2] = 2.
  assert float(_quantile(x, m, 0.5)) == pytest.approx(2.0, abs=1e-6)
  # Four values 1, 2, 3, 10: h = 0.9 * 3 = 2.7 -> 3 + 0.7 * 7 = 7.9.
  y = jnp.asarray([10.0, 1.0, 3.0, 2.0, 50.0])
  sel = jnp.asarray([1, 1, 1, 1, 0])
  assert float(_quantile(y, sel, 0.9)) == pytest.approx(7.9, abs=1e-5)
  # One value: the value itself; none: 0.
  assert float(_quantile(y, jnp.asarray([0, 0, 1, 0, 0]), 0.9)) == 3.0
  assert float(_quantile(y, jnp.zeros(5), 0.9)) == 0.0
  with pytest.raises(ValueError, match="quantile q"):
    guide.masked_quantile(y, sel, 1.5)


def _case():
  """Row 0 on-policy (ratios 1.5, 0.9, 1.0 against old_logprobs); rows 1-2 hinted
  (ratios 0.5, 2 | 4, 3, 1 against sampler_logprobs; row 1's last token is padding
  with ratio 100). old_logprobs on the hinted rows equal lp (ratio 1): if the loss
  read them there, gamma would be 1."""
  lp = jnp.asarray([[-1.0, -2.0, -0.5], [-1.2, -0.7, -3.0], [-0.4, -1.1, -2.2]])
  r = np.asarray([[1.5, 0.9, 1.0], [0.5, 2.0, 100.0], [4.0, 3.0, 1.0]])
  old_on = np.asarray(lp) - np.log(r)
  old = jnp.asarray(np.where(np.arange(3)[:, None] == 0, old_on, np.asarray(lp)), jnp.float32)
  sampler = jnp.asarray(np.where(np.arange(3)[:, None] > 0, old_on, -9.0), jnp.float32)
  mask = jnp.asarray([[1, 1, 1], [1, 1, 0], [1, 1, 1]], jnp.float32)
  adv = jnp.asarray([1.0, 1.5, -0.5])
  off = jnp.asarray([False, True, True])
  return lp, old, sampler, mask, adv, off


def test_guide_loss_value_and_gamma_by_hand():
  lp, old, sampler, mask, adv, off = _case()
  out = _guide_loss(lp, old, adv, mask, is_off_policy=off, sampler_logprobs=sampler)
  g = 3.6  # 0.9-quantile of the off-policy ratios 0.5, 2, 4, 3, 1 (padding excluded)
  # On-policy, A = 1: max(-r, -clip(r, 0.8, 1.2)) = -1.2, -0.9, -1.0.
  on = -1.2 - 0.9 - 1.0
  off_row1 = -1.5 * (0.5 / (0.5 + g) + 2.0 / (2.0 + g))
  off_row2 = 0.5 * (4.0 / (4.0 + g) + 3.0 / (3.0 + g) + 1.0 / (1.0 + g))
  assert float(out.count) == 8.0  # token-mean over the 8 masked tokens
  assert float(out.total) == pytest.approx(on + off_row1 + off_row2, rel=1e-5)
  assert float(out.metrics["gamma"]) == pytest.approx(g, rel=1e-5)
  assert float(out.metrics["off_token_frac"]) == pytest.approx(5 / 8)
  assert float(out.metrics["clip_frac"]) == pytest.approx(1 / 3)  # the 1.5 token
  assert float(out.metrics["off_ratio_mean"]) == pytest.approx((0.5 + 2 + 4 + 3 + 1) / 5,
                                                               rel=1e-5)


def test_guide_gradient_on_off_policy_tokens_by_hand():
  lp, old, sampler, mask, adv, off = _case()

  def loss(x):
    o = guide.guide_loss(x, old, adv, mask, is_off_policy=off, sampler_logprobs=sampler)
    return o.total / o.count

  grad = np.asarray(jax.jit(jax.grad(loss))(lp))
  g, n = 3.6, 8.0
  d = lambda a, r: -a * g * r / (r + g) ** 2 / n
  # Off-policy: dL/dlp = -A gamma r / (r + gamma)^2 / N (gamma detached).
  np.testing.assert_allclose(grad[1, :2], [d(1.5, 0.5), d(1.5, 2.0)], rtol=1e-5)
  np.testing.assert_allclose(grad[2], [d(-0.5, 4.0), d(-0.5, 3.0), d(-0.5, 1.0)], rtol=1e-5)
  # e.g. r = 2, A = 1.5: -1.5 * 3.6 * 2 / 5.6^2 / 8 = -0.0430485
  assert grad[1, 1] == pytest.approx(-0.0430485, rel=1e-5)
  assert grad[1, 2] == 0.0  # padding
  # On-policy, A = 1: the clipped token (r = 1.5 > 1.2) has no gradient; others -A r / N.
  np.testing.assert_allclose(grad[0], [0.0, -0.9 / n, -1.0 / n], rtol=1e-5)


def test_on_policy_tokens_equal_the_ppo_loss():
  lp, old, sampler, mask, adv, off = _case()
  ppo = jax.jit(lambda x, o, a, m: losses.get_policy_loss("ppo")(x, o, a, m, clip_low=0.2))
  guide_jit = jax.jit(lambda x, o, a, m, f: guide.guide_loss(x, o, a, m, is_off_policy=f,
                                                              sampler_logprobs=sampler))
  # No hinted rows: the same total, count and gradient as PPO (clip 0.2, token-mean).
  none = jnp.zeros(3, bool)
  a = guide_jit(lp, old, adv, mask, none)
  b = ppo(lp, old, adv, mask)
  assert float(a.total) == pytest.approx(float(b.total), rel=1e-6)
  assert float(a.count) == float(b.count)
  ga = jax.jit(jax.grad(lambda x: guide_jit(x, old, adv, mask, none).total))(lp)
  gb = jax.jit(jax.grad(lambda x: ppo(x, old, adv, mask).total))(lp)
  np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), rtol=1e-6)
  # Mixed batch with the hinted rows' advantages 0: the sum is PPO's over row 0.
  adv0 = adv * jnp.asarray([1.0, 0.0, 0.0])
  c = guide_jit(lp, old, adv0, mask, off)
  d = ppo(lp, old, adv0, mask * jnp.asarray([[1.0], [0.0], [0.0]]))
  assert float(c.total) == pytest.approx(float(d.total), rel=1e-6)


def test_constant_gamma_and_clamp():
  lp, old, sampler, mask, adv, off = _case()
  out = _guide_loss(lp, old, adv, mask, is_off_policy=off, sampler_logprobs=sampler,
                    gamma_strategy="constant", gamma_value=2.0)
  assert float(out.metrics["gamma"]) == 2.0
  expected = (-3.1 - 1.5 * (0.5 / 2.5 + 2.0 / 4.0)
              + 0.5 * (4.0 / 6.0 + 3.0 / 5.0 + 1.0 / 3.0))
  assert float(out.total) == pytest.approx(expected, rel=1e-5)
  # All hinted ratios ~ e^-15: the quantile (~3e-7) is clamped to gamma_min = 1e-4.
  tiny = _guide_loss(lp, old, adv, mask, is_off_policy=off,
                     sampler_logprobs=jnp.where(off[:, None], lp + 15.0, sampler))
  assert float(tiny.metrics["gamma"]) == pytest.approx(1e-4)
  # A very large log-ratio gives a finite bounded ratio (no exp overflow).
  big = _guide_loss(lp, old, adv, mask, is_off_policy=off,
                    sampler_logprobs=jnp.where(off[:, None], lp - 500.0, sampler))
  assert math.isfinite(float(big.total))


def test_options_are_checked_and_registered():
  lp, old, sampler, mask, adv, off = _case()
  kw = dict(is_off_policy=off, sampler_logprobs=sampler)
  with pytest.raises(ValueError, match="gamma_strategy"):
    guide.guide_loss(lp, old, adv, mask, gamma_strategy="power", **kw)
  with pytest.raises(ValueError, match="gamma_value"):
    guide.guide_loss(lp, old, adv, mask, gamma_value=1.5, **kw)
  with pytest.raises(ValueError, match="is_off_policy must be a bool"):
    guide.guide_loss(lp, old, adv, mask, is_off_policy=off.astype(jnp.int32),
                     sampler_logprobs=sampler)
  entry = losses.get_policy_loss_entry("guide")
  assert entry.fn is guide.guide_loss
  assert entry.inputs == ("is_off_policy", "sampler_logprobs")

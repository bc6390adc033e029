"""A-LoL losses and the positive-advantage sampler on rows worked out by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.losses import a_lol

# Two sequences, N = 3. Row 0 has a padded last position (garbage -50 must not leak).
LP = np.array([[-1.0, -0.5, -50.0], [-0.3, -0.2, -0.1]], np.float32)
LP_REF = np.array([[-1.2, -0.4, 3.0], [-0.1, -0.2, -0.9]], np.float32)
MASK = np.array([[1, 1, 0], [1, 1, 1]], np.float32)
ADV = np.array([0.5, 0.8], np.float32)
# sum_t nll: row 0 = 1.0 + 0.5 = 1.5, row 1 = 0.3 + 0.2 + 0.1 = 0.6
# token log-ratios lp - lp_ref: row 0 = (0.2, -0.1), row 1 = (-0.2, 0.0, 0.8)
# sequence log-ratios: row 0 = 0.1, row 1 = 0.6


def _loss(variant, adv=ADV, **kw):
  return a_lol.a_lol_loss(jnp.asarray(LP), jnp.asarray(LP_REF), jnp.asarray(adv),
                          jnp.asarray(MASK), variant=variant, **kw)


def test_a_lol_sequence_ratio_by_hand():
  # eps 0.9: ratios e^0.1 = 1.1052 and e^0.6 = 1.8221 are inside [0.1, 1.9].
  out = _loss("a_lol")
  expected = 0.5 * math.exp(0.1) * 1.5 + 0.8 * math.exp(0.6) * 0.6  # 0.82888 + 0.87462
  np.testing.assert_allclose(out.total, expected, rtol=1e-6)
  assert float(out.count) == 2.0
  # eps 0.5: row 1's ratio 1.8221 is clipped to 1.5.
  out = _loss("a_lol", clip_eps=0.5)
  np.testing.assert_allclose(out.total, 0.5 * math.exp(0.1) * 1.5 + 0.8 * 1.5 * 0.6, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["ratio_clip_frac"], 0.5)
  # A < 0 is dropped: row 1 with A = -0.4 contributes 0.
  out = _loss("a_lol", adv=np.array([0.5, -0.4], np.float32))
  np.testing.assert_allclose(out.total, 0.5 * math.exp(0.1) * 1.5, rtol=1e-6)


def test_a_lol_seq_token_ratios_by_hand():
  # eps 0.5, token ratios: row 0 e^0.2 = 1.2214, e^-0.1 = 0.9048 (inside [0.5, 1.5]);
  # row 1 e^-0.2 = 0.8187, e^0 = 1, e^0.8 = 2.2255 -> 1.5.
  out = _loss("a_lol_seq", clip_eps=0.5)
  row0 = 0.5 * (math.exp(0.2) * 1.0 + math.exp(-0.1) * 0.5)       # 0.83691
  row1 = 0.8 * (math.exp(-0.2) * 0.3 + 1.0 * 0.2 + 1.5 * 0.1)     # 0.47650
  np.testing.assert_allclose(out.total, row0 + row1, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["ratio_clip_frac"], 1 / 5, rtol=1e-6)


def test_a_lol_kl_by_hand():
  out = _loss("a_lol_kl", kl_beta=0.1)
  # row 0: 0.5 * 1.5 + 0.1 * 0.1 = 0.76; row 1: 0.8 * 0.6 + 0.1 * 0.6 = 0.54
  np.testing.assert_allclose(out.total, 1.30, rtol=1e-6)
  # beta = 0: the advantage-weighted NLL of the positive rows only.
  np.testing.assert_allclose(_loss("a_lol_kl").total, 0.5 * 1.5 + 0.8 * 0.6, rtol=1e-6)


def test_ref_free_keeps_negative_advantages():
  out = _loss("ref_free", adv=np.array([0.5, -0.4], np.float32))
  np.testing.assert_allclose(out.total, 0.5 * 1.5 - 0.4 * 0.6, rtol=1e-6)  # 0.51


@pytest.mark.parametrize("variant,kw", [("a_lol", {"clip_eps": 0.5}),
                                        ("a_lol_seq", {"clip_eps": 0.5}),
                                        ("a_lol_kl", {"kl_beta": 0.1}),
                                        ("ref_free", {})])
def test_gradients_match_hand_derivation(variant, kw):
  adv = np.array([0.5, -0.4], np.float32) if variant == "ref_free" else ADV
  grad = jax.grad(lambda lp: a_lol.a_lol_loss(
      lp, jnp.asarray(LP_REF), jnp.asarray(adv), jnp.asarray(MASK), variant=variant,
      **kw).total)(jnp.asarray(LP))
  pos = np.maximum(adv, 0.0)[:, None]
  if variant == "a_lol":  # d/dlp = -A+ clip(r_seq) (ratio detached)
    expected = -pos * np.array([[math.exp(0.1)], [1.5]]) * MASK
  elif variant == "a_lol_seq":  # -A+ clip(r_t)
    r = np.array([[math.exp(0.2), math.exp(-0.1), 0.0], [math.exp(-0.2), 1.0, 1.5]])
    expected = -pos * r * MASK
  elif variant == "a_lol_kl":  # -A+ + beta
    expected = (-pos + 0.1) * MASK
  else:  # -A
    expected = -adv[:, None] * MASK
  np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


def test_bad_inputs_name_the_argument():
  with pytest.raises(ValueError, match="variant"):
    _loss("nope")
  with pytest.raises(ValueError, match="advantages"):
    a_lol.a_lol_loss(jnp.asarray(LP), jnp.asarray(LP_REF), jnp.ones((3,)), jnp.asarray(MASK))
  with pytest.raises(ValueError, match="ref_logprobs"):
    a_lol.a_lol_loss(jnp.asarray(LP), jnp.ones((2, 4)), jnp.asarray(ADV), jnp.asarray(MASK))
  with pytest.raises(ValueError, match="clip_eps"):
    _loss("a_lol", clip_eps=1.0)
  with pytest.raises(ValueError, match="kl_beta"):
    _loss("a_lol_kl", kl_beta=-1.0)


def test_sampler_draws_positive_examples_in_proportion():
  adv = jnp.array([0.3, -0.1, 0.0, 0.1, 0.6])
  idx, m = a_lol.positive_advantage_sampler(adv, jax.random.key(0), 20000, mode="good_priority")
  counts = np.bincount(np.asarray(idx), minlength=5) / 20000
  # p = A+ / sum A+ = (0.3, 0, 0, 0.1, 0.6) / 1.0
  np.testing.assert_allclose(counts, [0.3, 0.0, 0.0, 0.1, 0.6], atol=0.015)
  np.testing.assert_allclose(m["positive_frac"], 3 / 5)
  idx, _ = a_lol.positive_advantage_sampler(adv, jax.random.key(1), 20000, mode="good_random")
  counts = np.bincount(np.asarray(idx), minlength=5) / 20000
  np.testing.assert_allclose(counts, [1 / 3, 0.0, 0.0, 1 / 3, 1 / 3], atol=0.015)


def test_sampler_errors():
  with pytest.raises(ValueError, match="no positive"):
    a_lol.positive_advantage_sampler(jnp.array([-1.0, 0.0]), jax.random.key(0), 4)
  with pytest.raises(ValueError, match="mode"):
    a_lol.positive_advantage_sampler(jnp.array([1.0]), jax.random.key(0), 4, mode="x")
  with pytest.raises(ValueError, match="batch_size"):
    a_lol.positive_advantage_sampler(jnp.array([1.0]), jax.random.key(0), 0)

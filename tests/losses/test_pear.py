"""PEAR weights and loss on a length-4 response worked out by hand."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.losses import pear

# Row 0: one prompt position (mask 0, garbage log-probs) then a 4-token response.
# Raw log-ratios lp - lp_beta on the response: 0.1, -0.2, 0.5, 0.05; clipped to
# [-0.08, 0.3]: delta = 0.1, -0.08, 0.3, 0.05 (two of four clipped).
# Row 1: a 2-token response followed by padding, to check rows stay separate.
LP = np.array([[-9.0, -1.0, -0.7, -0.5, -0.25],
               [-3.0, -3.0, -0.4, -0.6, -40.0]], np.float32)
LP_BETA = np.array([[5.0, -1.1, -0.5, -1.0, -0.3],
                    [1.0, 1.0, -0.5, -0.6, 7.0]], np.float32)
MASK = np.array([[0, 1, 1, 1, 1], [0, 0, 1, 1, 0]], np.float32)
GAMMA = 0.9


def _w(mode, **kw):
  kw.setdefault("gamma", GAMMA)
  return pear.pear_weights(jnp.asarray(LP), jnp.asarray(LP_BETA), jnp.asarray(MASK),
                           mode=mode, **kw)


def test_token_suffix_weights_by_hand():
  w, m = _w("token")
  # G_t = gamma^(T-t) exp(sum_{j>t} delta_j), T = 4
  row0 = [0.9 ** 3 * math.exp(-0.08 + 0.3 + 0.05), 0.9 ** 2 * math.exp(0.3 + 0.05),
          0.9 * math.exp(0.05), 1.0]
  # row 1 deltas: 0.1, 0.0 -> G = (0.9 * e^0, 1)
  row1 = [0.9, 1.0]
  np.testing.assert_allclose(w[0], [0.0] + row0, rtol=1e-6)
  np.testing.assert_allclose(w[1], [0.0, 0.0] + row1 + [0.0], rtol=1e-6)
  np.testing.assert_allclose(m["delta_clip_frac"], 2 / 6, rtol=1e-6)
  np.testing.assert_allclose(m["weight_max"], max(row0 + row1), rtol=1e-6)
  np.testing.assert_allclose(m["weight_mean"], sum(row0 + row1) / 6, rtol=1e-6)


def test_block_weights_by_hand():
  # block size 2: I_1 = {1, 2} (rho 0.02, e 2), I_2 = {3, 4} (rho 0.35, e 4)
  w, _ = _w("block", block_size=2)
  b1 = 0.9 ** 2 * math.exp(0.35)
  np.testing.assert_allclose(w[0], [0.0, b1, b1, 1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(w[1], [0.0, 0.0, 1.0, 1.0, 0.0], rtol=1e-6)  # one block
  # block size 3, a partial last block: I_1 = {1, 2, 3} (e 3), I_2 = {4} (rho 0.05)
  w, _ = _w("block", block_size=3)
  b1 = 0.9 * math.exp(0.05)
  np.testing.assert_allclose(w[0], [0.0, b1, b1, b1, 1.0], rtol=1e-6)
  # block size 1 is the token (suffix) mode
  np.testing.assert_allclose(_w("block", block_size=1)[0], _w("token")[0], rtol=1e-6)


def test_sequence_weights_and_log_weight_clip():
  w, _ = _w("sequence")
  np.testing.assert_allclose(w[0], [0.0] + [math.exp(0.37)] * 4, rtol=1e-6)
  np.testing.assert_allclose(w[1], [0.0, 0.0, math.exp(0.1), math.exp(0.1), 0.0], rtol=1e-6)
  # token mode, log G = (3 ln .9 + .27, 2 ln .9 + .35, ln .9 + .05, 0)
  #                   = (-0.04608, 0.13928, -0.05536, 0) clipped to [-0.05, 0.1]
  w, m = _w("token", log_weight_clip=(-0.05, 0.1))
  expected = [3 * math.log(0.9) + 0.27, 0.1, -0.05, 0.0]
  np.testing.assert_allclose(w[0, 1:], np.exp(expected), rtol=1e-6)
  # row 1: log G = (ln .9 = -0.105 -> -0.05, 0): 3 of 6 tokens clipped
  np.testing.assert_allclose(m["log_weight_clip_frac"], 3 / 6, rtol=1e-6)


def test_loss_and_gradient():
  out = pear.pear_sft_loss(jnp.asarray(LP), jnp.asarray(LP_BETA), jnp.asarray(MASK),
                           mode="token", gamma=GAMMA)
  w = np.array([[0.0, 0.9 ** 3 * math.exp(0.27), 0.9 ** 2 * math.exp(0.35), 0.9 * math.exp(0.05),
                 1.0], [0.0, 0.0, 0.9, 1.0, 0.0]])
  nll = -LP * MASK
  np.testing.assert_allclose(out.total, np.sum(w * nll), rtol=1e-6)
  assert float(out.count) == 6.0
  np.testing.assert_allclose(out.metrics["nll"], np.sum(nll) / 6, rtol=1e-6)
  # weights are detached: d total / d lp = -G_t on the mask
  grad = jax.grad(lambda lp: pear.pear_sft_loss(
      lp, jnp.asarray(LP_BETA), jnp.asarray(MASK), mode="token", gamma=GAMMA).total)(
          jnp.asarray(LP))
  np.testing.assert_allclose(grad, -w, rtol=1e-5, atol=1e-7)


def test_bad_options_name_the_argument():
  with pytest.raises(ValueError, match="mode"):
    _w("suffix")
  with pytest.raises(ValueError, match="gamma"):
    _w("token", gamma=0.0)
  with pytest.raises(ValueError, match="block_size"):
    _w("block", block_size=0)
  with pytest.raises(ValueError, match="clip_low"):
    _w("token", clip_low=0.1)
  with pytest.raises(ValueError, match="log_weight_clip"):
    _w("token", log_weight_clip=(1.0, 2.0))
  with pytest.raises(ValueError, match="behavior_logprobs"):
    pear.pear_weights(jnp.asarray(LP), jnp.ones((2, 4)), jnp.asarray(MASK))

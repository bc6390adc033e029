"""SEELE's policy loss (losses/seele.py) by hand: value and gradient wrt the log-probs
(hint tokens get exactly -gamma / normaliser, generated tokens the PPO-clip gradient,
tokens outside the completion 0), and gamma = 0 equals plain PPO on the generated tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from jaxrl_llm.losses import policy
from jaxrl_llm.losses.seele import seele_loss

# Row 0: hint at t=0, generated t=1,2, padding t=3. Row 1: generated t=0,1, padding t=2,3.
COMPLETION = np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool)
GENERATED = np.array([[0, 1, 1, 0], [1, 1, 0, 0]], np.float32)
ADV = np.array([0.5, -1.0], np.float32)
LP = np.array([[-2.0, -1.0, -0.7, -3.0], [-1.2, -0.4, -5.0, -6.0]], np.float32)
# Ratios on generated tokens: row 0: 1.5 (A > 0, clipped at 1.2), 1.0; row 1: 0.5 (A < 0,
# clipped at 0.8), 1.0. The old log-prob of the hint token is arbitrary (never read).
RATIO = np.array([[7.0, 1.5, 1.0, 1.0], [0.5, 1.0, 1.0, 1.0]], np.float32)
OLD = LP - np.log(RATIO)


def _loss(lp, **kw):
  out = seele_loss(lp, jnp.asarray(OLD), jnp.asarray(ADV), jnp.asarray(GENERATED),
                   completion_mask=jnp.asarray(COMPLETION), **kw)
  return out.total / out.count, out


def test_value_and_gradient_by_hand_seq_mean_token_sum():
  gamma = 0.001
  value, out = _loss(jnp.asarray(LP), gamma=gamma)
  # Row 0: -gamma * (-2) + max(-0.5*1.5, -0.5*1.2) + (-0.5*1.0) = 0.002 - 0.6 - 0.5 = -1.098
  # Row 1: max(1*0.5, 1*0.8) + 1*1.0 = 1.8; mean over K = 2 rows: 0.351.
  np.testing.assert_allclose(float(value), 0.351, rtol=1e-6)
  assert float(out.count) == 2.0
  grad = jax.grad(lambda lp: _loss(lp, gamma=gamma)[0])(jnp.asarray(LP))
  expected = np.array([[-gamma / 2, 0.0, -0.5 / 2, 0.0],   # hint, clipped, -A r / K, pad
                       [0.0, 1.0 / 2, 0.0, 0.0]])            # clipped, -A r / K, pads
  np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-6, atol=1e-9)
  np.testing.assert_allclose(float(out.metrics["hint_nll"]), 2.0, rtol=1e-6)
  np.testing.assert_allclose(float(out.metrics["hint_token_frac"]), 1 / 5, rtol=1e-6)
  np.testing.assert_allclose(float(out.metrics["nll_term"]), gamma * 2.0 / 2, rtol=1e-5)


def test_gradient_token_mean_counts_hint_and_generated_tokens():
  gamma = 0.01
  grad = jax.grad(lambda lp: _loss(lp, gamma=gamma, agg_mode="token-mean")[0])(jnp.asarray(LP))
  # Row 0 has 3 completion tokens (1 hint + 2 generated), row 1 has 2: 5 counted tokens.
  np.testing.assert_allclose(float(grad[0, 0]), -gamma / 5, rtol=1e-6)
  np.testing.assert_allclose(float(grad[0, 2]), -0.5 / 5, rtol=1e-6)
  np.testing.assert_allclose(float(grad[1, 1]), 1.0 / 5, rtol=1e-6)
  assert float(grad[0, 1]) == 0.0 and float(grad[1, 0]) == 0.0
  assert float(grad[0, 3]) == 0.0 and float(grad[1, 2]) == float(grad[1, 3]) == 0.0


def test_gamma_zero_is_ppo_on_generated_tokens():
  lp = jnp.asarray(LP)
  # (Modes whose count is per token differ: the hint tokens join the normaliser.)
  for mode in ("seq-mean-token-sum", "token-sum"):
    ours, _ = _loss(lp, gamma=0.0, agg_mode=mode)
    ref = policy.ppo_policy_loss(lp, jnp.asarray(OLD), jnp.asarray(ADV), jnp.asarray(GENERATED),
                                 clip_low=0.2, agg_mode=mode)
    np.testing.assert_allclose(float(ours), float(ref.total / ref.count), rtol=1e-6)


def test_registered_with_completion_mask_input_and_options_checked():
  entry = losses.get_policy_loss_entry("seele")
  assert entry.inputs == ("completion_mask",) and entry.fn is seele_loss
  with pytest.raises(ValueError, match="gamma must be >= 0"):
    _loss(jnp.asarray(LP), gamma=-1.0)

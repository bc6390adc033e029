"""ROVER (arXiv 2509.24981): hand-computed rows, a NumPy transcription and gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.losses import rover

# Two rows, N = 3; row 1's last position is padding (its values must not matter).
LP = np.array([[-1.0, -2.0, -0.5], [-0.3, -1.2, -9.0]], np.float32)
OLD = np.array([[-1.5, -2.0, -1.0], [-0.5, -1.0, 0.0]], np.float32)
MASK = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
MLP = np.array([[-3.0, -2.5, -2.0], [-4.0, -3.5, -3.0]], np.float32)
OLD_MLP = np.array([[-3.2, -2.0, -2.4], [-4.0, -3.0, -1.0]], np.float32)
ADV = np.array([1.0, -1.0], np.float32)
# By hand (rho = 1):
#   Q      = lp - lp_old            = [[0.5, 0, 0.5], [0.2, -0.2, .]]
#   mlp - mlp_old                   = [[0.2, -0.5, 0.4], [0, -0.5, -2.0]]
#   V_next[t] = diff[t+1] m[t+1]    = [[-0.5, 0.4, 0], [-0.5, 0 (m[2] = 0), 0]]
#   target = A + V_next             = [[0.5, 1.4, 1.0], [-1.5, -1.0, .]]
#   (Q - target)^2                  = [[0, 1.96, 0.25], [2.89, 0.64, .]]
TOTAL_RHO1 = 0.0 + 1.96 + 0.25 + 2.89 + 0.64
GRAD_LP_RHO1 = 2 * np.array([[0.0, -1.4, -0.5], [1.7, 0.8, 0.0]])  # 2 m (Q - target) rho


def _loss(lp=LP, old=OLD, mask=MASK, mlp=MLP, old_mlp=OLD_MLP, adv=ADV, **kw):
  return rover.rover_loss(jnp.asarray(lp), None if old is None else jnp.asarray(old),
                          jnp.asarray(adv), jnp.asarray(mask), mean_logprobs=jnp.asarray(mlp),
                          old_mean_logprobs=jnp.asarray(old_mlp), **kw)


def test_next_values_use_the_next_column_and_its_mask():
  v, _ = rover.rover_next_values(jnp.asarray(MLP), jnp.asarray(OLD_MLP), jnp.asarray(MASK))
  np.testing.assert_allclose(v, [[-0.5, 0.4, 0.0], [-0.5, 0.0, 0.0]], atol=1e-6)
  v2, _ = rover.rover_next_values(jnp.asarray(MLP), jnp.asarray(OLD_MLP), jnp.asarray(MASK),
                                  rho=2.0)
  np.testing.assert_allclose(v2, 2 * np.asarray(v), atol=1e-6)


def test_token_level_hand_rows_and_gradient():
  out = _loss()
  np.testing.assert_allclose(out.total, TOTAL_RHO1, rtol=1e-6)
  assert float(out.count) == 5.0
  np.testing.assert_allclose(out.metrics["rover_q_mean"], (0.5 + 0 + 0.5 + 0.2 - 0.2) / 5,
                             rtol=1e-6)
  np.testing.assert_allclose(out.metrics["rover_next_v_mean"], (-0.5 + 0.4 - 0.5) / 5, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["rover_target_mean"], (0.5 + 1.4 + 1.0 - 1.5 - 1.0) / 5,
                             rtol=1e-5)
  g_lp, g_mlp, g_old_mlp = jax.grad(
      lambda lp, mlp, omlp: _loss(lp=lp, mlp=mlp, old_mlp=omlp).total, argnums=(0, 1, 2))(
          jnp.asarray(LP), jnp.asarray(MLP), jnp.asarray(OLD_MLP))
  np.testing.assert_allclose(g_lp, GRAD_LP_RHO1, atol=1e-5)
  # The V term is part of the stop-gradient target.
  assert not np.any(np.asarray(g_mlp)) and not np.any(np.asarray(g_old_mlp))


def test_rho_two_hand_rows():
  # Q = [[1, 0, 1], [0.4, -0.4]], V_next = [[-1, 0.8, 0], [-1, 0]],
  # target = [[0, 1.8, 1], [-2, -1]] -> squares [[1, 3.24, 0], [5.76, 0.36]].
  out = _loss(rho=2.0)
  np.testing.assert_allclose(out.total, 1 + 3.24 + 0 + 5.76 + 0.36, rtol=1e-6)
  # d/dlp = 2 m (Q - target) rho
  g = jax.grad(lambda lp: _loss(lp=lp, rho=2.0).total)(jnp.asarray(LP))
  np.testing.assert_allclose(g, 2 * 2 * np.array([[1, -1.8, 0], [2.4, 0.6, 0]]), atol=1e-5)


def test_target_adv_only_drops_the_value_term():
  # target = A: squares [[0.25, 1, 0.25], [1.44, 0.64]].
  out = _loss(target_adv_only=True)
  np.testing.assert_allclose(out.total, 0.25 + 1 + 0.25 + 1.44 + 0.64, rtol=1e-6)


def test_response_level_hand_rows_with_an_empty_row():
  lp = np.concatenate([LP, [[-1.0, -1.0, -1.0]]])
  old = np.concatenate([OLD, [[0.0, 0.0, 0.0]]])
  mask = np.concatenate([MASK, [[0.0, 0.0, 0.0]]])
  mlp, old_mlp = np.concatenate([MLP, MLP[:1]]), np.concatenate([OLD_MLP, OLD_MLP[:1]])
  adv = np.array([1.0, -1.0, 5.0], np.float32)
  # row 0: mean Q = 1/3, (1/3 - 1)^2 = 4/9; row 1: mean Q = 0, (0 + 1)^2 = 1; row 2 empty.
  out = _loss(lp, old, mask, mlp, old_mlp, adv, response_level=True)
  np.testing.assert_allclose(out.total, 4 / 9 + 1, rtol=1e-6)
  assert float(out.count) == 2.0
  # d/dlp[i, t] = 2 (meanQ_i - A_i) m / |y_i|
  g = jax.grad(lambda x: _loss(x, old, mask, mlp, old_mlp, adv, response_level=True).total)(
      jnp.asarray(lp))
  want = [[2 * (1 / 3 - 1) / 3] * 3, [2 * (0 + 1) / 2] * 2 + [0.0], [0.0] * 3]
  np.testing.assert_allclose(g, want, atol=1e-6)


def test_clip_q_hand_values():
  hi, lo = math.log(1.2), math.log(0.8)
  q = jnp.array([[0.3, 0.3, -0.3, -0.3, 0.1]])
  target = jnp.array([[1.0, -1.0, -1.0, 1.0, 1.0]])
  clipped, metrics = rover.rover_clip_q(q, target, jnp.ones((1, 5)), clip_eps=0.2)
  # above hi and target further up: hi; above hi but target below: kept (pulled back);
  # below lo and target further down: lo; below lo, target up: kept; inside: kept.
  np.testing.assert_allclose(clipped, [[hi, 0.3, lo, -0.3, 0.1]], rtol=1e-6)
  np.testing.assert_allclose(metrics["rover_clip_high_frac"], 0.2)
  np.testing.assert_allclose(metrics["rover_clip_low_frac"], 0.2)
  with pytest.raises(ValueError, match="clip_eps"):
    rover.rover_clip_q(q, target, jnp.ones((1, 5)), clip_eps=1.0)


def test_clip_in_the_loss_stops_the_gradient_of_the_clipped_token():
  # rho = 1: only row 0, token 2 (Q = 0.5 > log 1.2, target 1.0 above it) is clipped.
  hi = math.log(1.2)
  out = _loss(clip_eps=0.2)
  np.testing.assert_allclose(out.total, 1.96 + (hi - 1.0) ** 2 + 2.89 + 0.64, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["rover_clip_high_frac"], 0.2)
  g = jax.grad(lambda lp: _loss(lp=lp, clip_eps=0.2).total)(jnp.asarray(LP))
  want = GRAD_LP_RHO1.copy()
  want[0, 2] = 0.0
  np.testing.assert_allclose(g, want, atol=1e-5)


def test_on_policy_old_none_means_q_zero():
  # lp_old = sg(lp): Q = 0, so L = sum m target^2 and dL/dlp = -2 m target.
  target = np.array([[0.5, 1.4, 1.0], [-1.5, -1.0, 0.0]])
  out = _loss(old=None)
  np.testing.assert_allclose(out.total, np.sum(MASK * target ** 2), rtol=1e-6)
  g = jax.grad(lambda lp: _loss(lp=lp, old=None).total)(jnp.asarray(LP))
  np.testing.assert_allclose(g, -2 * MASK * target, atol=1e-5)


def _numpy_rover(lp, old, adv, mask, mlp, old_mlp, rho):
  """Independent float64 transcription of the token-level loss total."""
  total = 0.0
  b, n = lp.shape
  for i in range(b):
    for t in range(n):
      if mask[i, t] == 0:
        continue
      q = rho * (lp[i, t] - old[i, t])
      v = rho * (mlp[i, t + 1] - old_mlp[i, t + 1]) * mask[i, t + 1] if t + 1 < n else 0.0
      total += (q - (adv[i] + v)) ** 2
  return total


def test_random_against_numpy_transcription_and_finite_differences():
  rng = np.random.default_rng(0)
  b, n = 4, 6
  lp, old = rng.normal(size=(b, n)) - 2, rng.normal(size=(b, n)) - 2
  mlp, old_mlp = rng.normal(size=(b, n)) - 5, rng.normal(size=(b, n)) - 5
  adv = rng.normal(size=b)
  mask = (rng.random((b, n)) > 0.3).astype(np.float64)
  with jax.enable_x64(True):
    f = lambda x: _loss(x, old, mask, mlp, old_mlp, adv, rho=0.7).total
    np.testing.assert_allclose(f(jnp.asarray(lp)),
                               _numpy_rover(lp, old, adv, mask, mlp, old_mlp, 0.7), rtol=1e-10)
    g = np.asarray(jax.grad(f)(jnp.asarray(lp)))
  eps = 1e-6
  fd = np.zeros_like(lp)
  for i in range(b):
    for t in range(n):
      d = np.zeros_like(lp)
      d[i, t] = eps
      fd[i, t] = (_numpy_rover(lp + d, old, adv, mask, mlp, old_mlp, 0.7)
                  - _numpy_rover(lp - d, old, adv, mask, mlp, old_mlp, 0.7)) / (2 * eps)
  np.testing.assert_allclose(g, fd, atol=1e-6)


def test_bad_arguments_raise_value_error():
  with pytest.raises(ValueError, match="mean_logprobs"):
    _loss(mlp=MLP[:, :2])
  with pytest.raises(ValueError, match="old_mean_logprobs"):
    _loss(old_mlp=OLD_MLP[:1])
  with pytest.raises(ValueError, match="rho"):
    _loss(rho=0.0)
  with pytest.raises(ValueError, match="is_weights"):
    _loss(is_weights=jnp.ones(2))
  with pytest.raises(ValueError, match="advantages"):
    _loss(adv=np.ones(3, np.float32))

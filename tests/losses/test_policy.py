import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from . import reference_numpy as ref

# One real row and one fully masked row holding garbage (-inf log-probs).
RATIOS = [1.5, 5.0, 0.5, 1.1, 2.0]
ADV = np.array([[1., -1., -1., 1., -1.], [1., 1., 1., 1., 1.]], np.float32)
OLD = np.array([[-1.0] * 5, [-np.inf] * 5], np.float32)
LOGP = np.array([[-1.0 + math.log(r) for r in RATIOS], [-np.inf] * 5], np.float32)
MASK = np.array([[1.] * 5, [0.] * 5], np.float32)


def _ppo_mean(logp, **kw):
  out = losses.ppo_policy_loss(logp, jnp.asarray(OLD), jnp.asarray(ADV), jnp.asarray(MASK), **kw)
  return losses.safe_mean(out.total, out.count), out


def test_ppo_hand_values_dual_clip_and_zero_grad_where_clipped():
  kw = dict(clip_low=0.2, clip_high=0.28, dual_clip=3.0)
  # Per token: clipped high -1.28 | dual clip min(5, 3) = 3 | clipped low 0.8 | -1.1 | 2.
  value, out = _ppo_mean(jnp.asarray(LOGP), **kw)
  np.testing.assert_allclose(value, (-1.28 + 3.0 + 0.8 - 1.1 + 2.0) / 5, rtol=1e-6)
  assert float(out.count) == 5.0
  m = out.metrics
  np.testing.assert_allclose(
      [m["clip_frac"], m["clip_frac_low"], m["clip_frac_high"], m["dual_clip_frac"]],
      [0.4, 0.2, 0.2, 0.2], rtol=1e-6)
  np.testing.assert_allclose(m["approx_kl"], -sum(math.log(r) for r in RATIOS) / 5, rtol=1e-5)
  np.testing.assert_allclose([m["ratio_max"], m["ratio_min"]], [5.0, 0.5], rtol=1e-5)
  grad = jax.grad(lambda lp: _ppo_mean(lp, **kw)[0])(jnp.asarray(LOGP))
  # d(-A r)/dlogp = -A r where unclipped, 0 where clipped (t0, t1, t2) and on the masked row.
  np.testing.assert_allclose(grad, [[0, 0, 0, -1.1 / 5, 2.0 / 5], [0] * 5], rtol=1e-5, atol=1e-7)


def test_ppo_without_dual_clip_and_symmetric_default():
  value, out = _ppo_mean(jnp.asarray(LOGP), clip_low=0.2, clip_high=0.28)
  np.testing.assert_allclose(value, (-1.28 + 5.0 + 0.8 - 1.1 + 2.0) / 5, rtol=1e-6)
  assert float(out.metrics["dual_clip_frac"]) == 0.0
  value, _ = _ppo_mean(jnp.asarray(LOGP))   # clip_high defaults to clip_low = 0.2
  np.testing.assert_allclose(value, (-1.2 + 5.0 + 0.8 - 1.1 + 2.0) / 5, rtol=1e-6)


def test_ppo_log_ratio_clamp_and_all_masked_batch():
  # log-ratio 30 is clamped to 20; with A < 0 the dual clip then bounds the loss at 3.
  logp = jnp.array([[30.0]])
  out = losses.ppo_policy_loss(logp, jnp.zeros((1, 1)), jnp.array([-1.0]), jnp.ones((1, 1)),
                               dual_clip=3.0)
  np.testing.assert_allclose(out.total, 3.0)
  np.testing.assert_allclose(out.metrics["ratio_max"], math.exp(20.0), rtol=1e-5)
  out = losses.ppo_policy_loss(jnp.asarray(LOGP), jnp.asarray(OLD), jnp.asarray(ADV),
                               jnp.zeros((2, 5)), dual_clip=3.0)
  assert float(out.count) == 0.0 and float(losses.safe_mean(out.total, out.count)) == 0.0
  assert all(np.isfinite(float(v)) for v in out.metrics.values())


def _random_batch(seed, b=6, t=5):
  rng = np.random.default_rng(seed)
  old = rng.normal(-1.5, 0.5, size=(b, t))
  logp = old + rng.normal(0.0, 0.6, size=(b, t))
  logp[0, 1] = old[0, 1] + 1.6     # r ~ 5
  logp[1, 2] = old[1, 2] - 1.0     # r ~ 0.37
  seq_adv = rng.normal(size=b)
  seq_adv[0] = -1.0                # A < 0 with r > 3: dual clip
  mask = np.ones((b, t))
  mask[2, 3:] = 0
  mask[3, 1:] = 0                  # length-1 row
  mask[4] = 0                      # fully masked row
  return old, logp, seq_adv, mask


@pytest.mark.parametrize("mode", [m for m in losses.AGGREGATION_MODES
                                  if m != "token-sum-norm-rows"])  # verl's modes
def test_ppo_matches_verl_vanilla_dual_clip(mode):
  old, logp, seq_adv, mask = _random_batch(0)
  adv = np.broadcast_to(seq_adv[:, None], logp.shape)
  expected = ref.verl_agg_loss(
      ref.verl_vanilla_token_loss(old, logp, adv, 0.2, 0.28, 3.0), mask, mode)
  out = losses.ppo_policy_loss(jnp.asarray(logp, jnp.float32), jnp.asarray(old, jnp.float32),
                               jnp.asarray(seq_adv, jnp.float32), jnp.asarray(mask),
                               clip_low=0.2, clip_high=0.28, dual_clip=3.0, agg_mode=mode)
  np.testing.assert_allclose(float(out.total) / float(out.count), expected, rtol=2e-5)


@pytest.mark.parametrize("delta", [None, 3.0])
def test_ppo_matches_trl_dapo(delta):
  old, logp, seq_adv, mask = _random_batch(1)
  expected = ref.trl_dapo_loss(logp, old, mask, seq_adv, 0.2, 0.28, delta)
  out = losses.ppo_policy_loss(jnp.asarray(logp, jnp.float32), jnp.asarray(old, jnp.float32),
                               jnp.asarray(seq_adv, jnp.float32), jnp.asarray(mask),
                               clip_low=0.2, clip_high=0.28, dual_clip=delta)
  np.testing.assert_allclose(float(out.total) / float(out.count), expected, rtol=2e-5)


def test_gspo_hand_values_and_gradient():
  # Row 0: log-ratios [0.1, 0.3] -> s = e^0.2, unclipped.  Row 1: [1, 1] -> s = e, clipped at 1.28.
  old = jnp.zeros((2, 2))
  logp = jnp.array([[0.1, 0.3], [1.0, 1.0]])
  adv = jnp.array([1.0, 1.0])
  mask = jnp.ones((2, 2))
  f = lambda lp: losses.gspo_policy_loss(lp, old, adv, mask, clip_low=0.2, clip_high=0.28)
  out = f(logp)
  s0 = math.exp(0.2)
  np.testing.assert_allclose(float(out.total) / float(out.count), (-s0 - 1.28) / 2, rtol=1e-6)
  np.testing.assert_allclose([out.metrics["seq_ratio_max"], out.metrics["seq_ratio_min"]],
                             [math.e, s0], rtol=1e-6)
  grad = jax.grad(lambda lp: losses.safe_mean(*f(lp)[:2]))(logp)
  # d/dlp_it of (1/K) sum_i (1/n_i) sum_t -A_i s_i  =  -A_i s_i / (n_i K) on unclipped rows.
  np.testing.assert_allclose(grad, [[-s0 / 4, -s0 / 4], [0.0, 0.0]], rtol=1e-6)


def test_gspo_gradient_matches_analytic_on_random_batch():
  old, logp, seq_adv, mask = _random_batch(2)
  eps = 0.3
  f = lambda lp: losses.safe_mean(*losses.gspo_policy_loss(
      lp, jnp.asarray(old, jnp.float32), jnp.asarray(seq_adv, jnp.float32), jnp.asarray(mask),
      clip_low=eps, clip_high=eps)[:2])
  grad = np.asarray(jax.grad(f)(jnp.asarray(logp, jnp.float32)))
  n = mask.sum(1)
  k = (n > 0).sum()
  expected = np.zeros_like(logp)
  for i in range(logp.shape[0]):
    if n[i] == 0:
      continue
    s = math.exp(((logp[i] - old[i]) * mask[i]).sum() / n[i])
    a = seq_adv[i]
    clipped = (a > 0 and s > 1 + eps) or (a < 0 and s < 1 - eps)
    if not clipped:
      expected[i] = -a * s / (n[i] * k) * mask[i]
  assert np.any(expected != 0) and np.any((expected == 0) & (mask > 0))  # both regimes occur
  np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("mode", ["seq-mean-token-mean", "token-mean"])
def test_gspo_matches_verl(mode):
  old, logp, seq_adv, mask = _random_batch(3)
  adv = np.broadcast_to(seq_adv[:, None], logp.shape)
  per_token = ref.verl_gspo_token_loss(old, logp, adv, mask, 3e-4, 4e-4)
  expected = ref.verl_agg_loss(per_token, mask, mode)
  out = losses.gspo_policy_loss(jnp.asarray(logp, jnp.float32), jnp.asarray(old, jnp.float32),
                                jnp.asarray(seq_adv, jnp.float32), jnp.asarray(mask), agg_mode=mode)
  np.testing.assert_allclose(float(out.total) / float(out.count), expected, rtol=2e-5)


def test_cispo_hand_values_and_gradient():
  # ratios 6 (capped at 1 + 4 = 5) and 0.1 (no lower bound by default); A = 1, -2.
  logp = jnp.array([[math.log(6.0) - 1.0, math.log(0.1) - 1.0]])
  old = jnp.full((1, 2), -1.0)
  adv = jnp.array([[1.0, -2.0]])
  mask = jnp.ones((1, 2))
  f = lambda lp, **kw: losses.safe_mean(*losses.cispo_policy_loss(lp, old, adv, mask, **kw)[:2])
  lp = np.asarray(logp)
  np.testing.assert_allclose(f(logp), (-5.0 * lp[0, 0] + 0.1 * 2.0 * lp[0, 1]) / 2, rtol=1e-5)
  np.testing.assert_allclose(jax.grad(f)(logp), [[-5.0 / 2, 0.1 * 2.0 / 2]], rtol=1e-5)
  # verl's two-sided clip [0.8, 1.28].
  np.testing.assert_allclose(jax.grad(lambda x: f(x, clip_low=0.2, clip_high=0.28))(logp),
                             [[-1.28 / 2, 0.8 * 2.0 / 2]], rtol=1e-5)


def test_reinforce_hand_values():
  logp = jnp.array([[-1.0, -2.0, -3.0]])
  out = losses.reinforce_loss(logp, None, jnp.array([2.0]), jnp.array([[1.0, 1.0, 0.0]]))
  np.testing.assert_allclose([out.total, out.count], [2.0 * 3.0, 2.0])
  g = jax.grad(lambda lp: losses.reinforce_loss(lp, None, jnp.array([2.0]),
                                                jnp.array([[1.0, 1.0, 0.0]])).total)(logp)
  np.testing.assert_allclose(g, [[-2.0, -2.0, 0.0]])
  assert losses.get_policy_loss("gpg") is losses.reinforce_loss


def test_truncated_importance_weights_hand_values():
  old = jnp.array([[math.log(3.0), math.log(0.5), 0.0, 5.0]])
  sampler = jnp.zeros((1, 4))
  mask = jnp.array([[1.0, 1.0, 1.0, 0.0]])
  w, m = losses.truncated_importance_weights(old, sampler, mask, cap=2.0)
  np.testing.assert_allclose(w, [[2.0, 0.5, 1.0, 0.0]], rtol=1e-6)
  np.testing.assert_allclose(m["is_clipped_frac"], 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(m["is_weight_mean"], (3.0 + 0.5 + 1.0) / 3, rtol=1e-6)
  np.testing.assert_allclose(m["mismatch_k1"], -(math.log(3.0) + math.log(0.5)) / 3, rtol=1e-5)
  w, _ = losses.truncated_importance_weights(old, sampler, mask, cap=2.0, mode="mask", lower=0.6)
  np.testing.assert_allclose(w, [[0.0, 0.0, 1.0, 0.0]])
  w, m = losses.truncated_importance_weights(old, sampler, mask, level="sequence", cap=2.0)
  np.testing.assert_allclose(w, [[1.5, 1.5, 1.5, 0.0]], rtol=1e-6)   # 3 * 0.5 * 1
  assert float(m["is_clipped_frac"]) == 0.0
  w_geo, _ = losses.truncated_importance_weights(old, sampler, mask, level="sequence",
                                                 sequence_reduction="mean")
  np.testing.assert_allclose(w_geo, [[1.5 ** (1 / 3)] * 3 + [0.0]], rtol=1e-6)  # geometric mean
  # The weights multiply the per-token loss and carry no gradient.
  out = losses.reinforce_loss(jnp.ones((1, 4)), None, jnp.array([1.0]), mask, is_weights=w)
  np.testing.assert_allclose(out.total, -4.5, rtol=1e-6)


def test_policy_bad_inputs():
  lp = jnp.zeros((2, 3))
  with pytest.raises(ValueError, match="advantages"):
    losses.ppo_policy_loss(lp, lp, jnp.zeros((3,)), lp)
  with pytest.raises(ValueError, match="old_logprobs"):
    losses.ppo_policy_loss(lp, jnp.zeros((2, 4)), jnp.zeros((2,)), lp)
  with pytest.raises(ValueError, match="dual_clip"):
    losses.ppo_policy_loss(lp, lp, jnp.zeros((2,)), lp, dual_clip=0.5)
  with pytest.raises(ValueError, match="clip_low"):
    losses.gspo_policy_loss(lp, lp, jnp.zeros((2,)), lp, clip_low=1.5)
  with pytest.raises(ValueError, match="importance-sampling level"):
    losses.truncated_importance_weights(lp, lp, lp, level="step")


def test_bf16_logprobs_compute_in_float32_with_bf16_gradient():
  f = lambda lp: losses.safe_mean(*losses.ppo_policy_loss(
      lp, jnp.asarray(OLD, jnp.bfloat16), jnp.asarray(ADV), jnp.asarray(MASK),
      clip_low=0.2, clip_high=0.28, dual_clip=3.0)[:2])
  lp16 = jnp.asarray(LOGP, jnp.bfloat16)
  assert f(lp16).dtype == jnp.float32
  assert jax.grad(f)(lp16).dtype == jnp.bfloat16
  np.testing.assert_allclose(f(lp16), (-1.28 + 3.0 + 0.8 - 1.1 + 2.0) / 5, rtol=2e-2)

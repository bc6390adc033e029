"""RL-PLUS: grpo_split advantages and the hybrid on/off-policy loss, against hand values."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from jaxrl_llm.losses import rl_plus

# ---- grpo_split_advantages -----------------------------------------------------------------

# Group 3 (rows 0-3): on-policy rewards 1, 0, 1 and a demonstration (row 3) with reward 1.
#   on-policy mean 2/3; deviations 1/3, -2/3, 1/3 -> squares sum 6/9; unbiased var 1/3,
#   std 1/sqrt(3). Without std: A = [1/3, -2/3, 1/3, 1/3]  (the demo uses the on-policy mean;
#   plain GRPO over all four would use 3/4).
# Group 8: on-policy 0, 0, 0, demo 1.
#   mean 0, std 0 -> replaced by 1: A = [0, 0, 0, 1] (with std: 1 / (1 + eps)).
# Group 5 (rows 8-9): one on-policy member (0.5) + demo (1): fewer than two on-policy
#   members -> mean 0, std 1: A = [0.5, 1].
# Group 9 (row 10): only a demo (reward 1): A = 1.
IDS = jnp.array([3, 3, 8, 3, 8, 3, 8, 8, 5, 5, 9])
# Row order above is shuffled: rows 0,1,3,5 are group 3; rows 2,4,6,7 group 8.
SCORES = jnp.array([1., 0., 0., 1., 0., 1., 0., 1., 0.5, 1., 1.])
OFF = jnp.array([False, False, False, False, False, True, False, True, False, True, True])


def test_grpo_split_hand_values_without_std():
  got = rl_plus.grpo_split_advantages(SCORES, OFF, group_ids=IDS)
  third = 1.0 / 3.0
  expected = [third, -2 * third, 0.0, third, 0.0, third, 0.0, 1.0, 0.5, 1.0, 1.0]
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_grpo_split_hand_values_with_std():
  got = rl_plus.grpo_split_advantages(SCORES, OFF, group_ids=IDS, use_std=True, eps=1e-6)
  third, d = 1.0 / 3.0, 1.0 / math.sqrt(3.0) + 1e-6
  one = 1.0 + 1e-6
  expected = [third / d, -2 * third / d, 0.0, third / d, 0.0, third / d, 0.0, 1.0 / one,
              0.5 / one, 1.0 / one, 1.0 / one]
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_grpo_split_all_on_policy_is_dr_grpo_and_grpo():
  r = jnp.array([1., 0., 0., 0., 1., 1.])
  off = jnp.zeros((6,), bool)
  np.testing.assert_allclose(rl_plus.grpo_split_advantages(r, off, group_size=3),
                             losses.dr_grpo_advantages(r, group_size=3), atol=1e-7)
  np.testing.assert_allclose(rl_plus.grpo_split_advantages(r, off, group_size=3, use_std=True),
                             losses.grpo_advantages(r, group_size=3), rtol=1e-6)


def test_grpo_split_bad_inputs():
  with pytest.raises(ValueError, match="is_off_policy"):
    rl_plus.grpo_split_advantages(SCORES, OFF[:3], group_ids=IDS)
  with pytest.raises(ValueError, match="is_off_policy.*bool"):
    rl_plus.grpo_split_advantages(SCORES, OFF.astype(jnp.int32), group_ids=IDS)
  with pytest.raises(ValueError, match="scores"):
    rl_plus.grpo_split_advantages(SCORES[:, None], OFF, group_ids=IDS)


# ---- rl_plus_loss ----------------------------------------------------------------------------

# Row 0, on-policy, A = 2: p = [0.5, 0.25, pad], p_old = [0.4, 0.5, pad], mask [1, 1, 0].
#   ratios 1.25, 0.5 -> L = -2.5, -1.0.
#   clip 0.2: clip(1.25) = 1.2 -> max(-2.5, -2.4) = -2.4 (clipped); clip(0.5) = 0.8 ->
#   max(-1.0, -1.6) = -1.0 (not clipped).
# Row 1, demonstration, A = 1.5: p = [0.64, 0.36, 0.81], p_old = [0.5, 0.2, 1.0].
#   omega = (p_old + 1)/2 = [0.75, 0.6, 1.0]; r_MIS = 2p/(p_old + omega) = [1.024, 0.9, 0.81]
#   (1 - p)^0.5 = [0.6, 0.8, sqrt(0.19)]; L = -1.5 * r_MIS * scale
#   = [-0.9216, -1.08, -1.215 * sqrt(0.19)].
LP = jnp.log(jnp.array([[0.5, 0.25, 1.0], [0.64, 0.36, 0.81]]))
LP = LP.at[0, 2].set(-jnp.inf)  # padding garbage must not leak
OLD = jnp.log(jnp.array([[0.4, 0.5, 0.3], [0.5, 0.2, 1.0]]))
MASK = jnp.array([[1, 1, 0], [1, 1, 1]], jnp.float32)
ADV = jnp.array([2.0, 1.5])
IS_OFF = jnp.array([False, True])
OFF_LOSS = np.array([-0.9216, -1.08, -1.215 * math.sqrt(0.19)])


def _numpy_rl_plus(lp, old, adv, mask, off, gamma=0.5, clip=None):
  """Independent NumPy transcription of the per-token loss (loops, no masking tricks)."""
  out = np.zeros(lp.shape)
  for i in range(lp.shape[0]):
    for t in range(lp.shape[1]):
      if not mask[i, t]:
        continue
      p, p_old = math.exp(lp[i, t]), math.exp(old[i, t])
      if off[i]:
        omega = (p_old + 1) / 2
        out[i, t] = -(p / (0.5 * p_old + 0.5 * omega)) * adv[i] * (1 - p) ** gamma
      else:
        r = p / p_old
        out[i, t] = -adv[i] * r
        if clip is not None:
          out[i, t] = max(out[i, t], -adv[i] * min(max(r, 1 - clip), 1 + clip))
  return out


def test_rl_plus_hand_values_token_sum_norm():
  out = rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=IS_OFF)
  expected_total = (-2.5 - 1.0 + OFF_LOSS.sum()) / 3.0  # padded length T = 3, not / 2 rows
  np.testing.assert_allclose(out.total, expected_total, rtol=1e-5)
  assert float(out.count) == 1.0
  m = out.metrics
  np.testing.assert_allclose(m["off_ratio_mean"], (1.024 + 0.9 + 0.81) / 3, rtol=1e-5)
  np.testing.assert_allclose(m["off_adv_scale_mean"], (0.6 + 0.8 + math.sqrt(0.19)) / 3,
                             rtol=1e-5)
  np.testing.assert_allclose(m["off_token_frac"], 3 / 5, rtol=1e-6)
  np.testing.assert_allclose(m["on_ratio_mean"], (1.25 + 0.5) / 2, rtol=1e-5)
  np.testing.assert_allclose(m["approx_kl"], -(math.log(1.25) + math.log(0.5)) / 2, rtol=1e-5)
  assert float(m["on_clip_frac"]) == 0.0
  numpy_total = _numpy_rl_plus(np.asarray(LP), np.asarray(OLD), np.asarray(ADV),
                               np.asarray(MASK), np.asarray(IS_OFF)).sum() / 3
  np.testing.assert_allclose(out.total, numpy_total, rtol=1e-5)


def test_rl_plus_clip_and_token_mean():
  out = rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=IS_OFF, clip=True,
                             agg_mode="token-mean")
  np.testing.assert_allclose(out.total, -2.4 - 1.0 + OFF_LOSS.sum(), rtol=1e-5)
  assert float(out.count) == 5.0
  np.testing.assert_allclose(out.metrics["on_clip_frac"], 0.5)
  # Off-policy tokens are never clipped: the demo row alone is unchanged by clip=True.
  demo_only = rl_plus.rl_plus_loss(LP[1:], OLD[1:], ADV[1:], MASK[1:], is_off_policy=IS_OFF[1:],
                                   clip=True, clip_low=0.01, agg_mode="token-sum")
  np.testing.assert_allclose(demo_only.total, OFF_LOSS.sum(), rtol=1e-5)


def test_rl_plus_seq_mean_token_sum_norm_divides_by_rows():
  out = rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=IS_OFF,
                             agg_mode="seq-mean-token-sum-norm", horizon=4.0)
  np.testing.assert_allclose(out.total, (-3.5 + OFF_LOSS.sum()) / 4.0, rtol=1e-5)
  assert float(out.count) == 2.0


def test_rl_plus_gamma_zero_is_plain_mis():
  out = rl_plus.rl_plus_loss(LP[1:], OLD[1:], ADV[1:], MASK[1:], is_off_policy=IS_OFF[1:],
                             gamma=0.0, agg_mode="token-sum")
  np.testing.assert_allclose(out.total, -1.5 * (1.024 + 0.9 + 0.81), rtol=1e-5)


def test_rl_plus_gradient_hand_derived():
  # d L / d lp: on-policy unclipped -A r; off-policy -A (1-p)^gamma r_MIS (d p/d lp = p and
  # omega depends on p_old only); the 1/T normaliser applies to both; padding gets 0.
  def f(lp):
    return rl_plus.rl_plus_loss(lp, OLD, ADV, MASK, is_off_policy=IS_OFF).total

  g = jax.grad(f)(LP)
  expected = np.zeros((2, 3))
  expected[0, :2] = [-2 * 1.25 / 3, -2 * 0.5 / 3]
  expected[1] = OFF_LOSS / 3  # the off-policy per-token loss is linear in r_MIS, r_MIS' = r_MIS
  np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)
  # With clipping, the clipped on-policy token has no gradient.
  gc = jax.grad(lambda lp: rl_plus.rl_plus_loss(lp, OLD, ADV, MASK, is_off_policy=IS_OFF,
                                                clip=True).total)(LP)
  np.testing.assert_allclose(gc[0], [0.0, -2 * 0.5 / 3, 0.0], atol=1e-7)
  np.testing.assert_allclose(gc[1], expected[1], rtol=1e-5)


def test_rl_plus_gradient_finite_difference_on_numpy():
  rng = np.random.default_rng(0)
  lp = np.log(rng.uniform(0.05, 0.95, (3, 4)))
  old = np.log(rng.uniform(0.05, 0.95, (3, 4)))
  mask = np.array([[1, 1, 1, 0], [1, 0, 1, 1], [1, 1, 1, 1]], np.float64)
  adv = np.array([0.7, -1.3, 0.4])
  off = np.array([False, True, True])
  g = jax.grad(lambda x: rl_plus.rl_plus_loss(x, jnp.asarray(old, jnp.float32), adv, mask,
                                              is_off_policy=off,
                                              agg_mode="token-sum").total)(
      jnp.asarray(lp, jnp.float32))
  h = 1e-6
  fd = np.zeros_like(lp)
  for i in range(3):
    for t in range(4):
      up, dn = lp.copy(), lp.copy()
      up[i, t] += h
      dn[i, t] -= h
      # the (1 - p)^gamma factor is a constant (stop-gradient): hold it at lp
      fd[i, t] = (_fd_loss(up, lp, old, adv, mask, off)
                  - _fd_loss(dn, lp, old, adv, mask, off)) / (2 * h)
  np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-5)


def _fd_loss(lp, lp_const, old, adv, mask, off, gamma=0.5):
  total = 0.0
  for i in range(lp.shape[0]):
    for t in range(lp.shape[1]):
      if not mask[i, t]:
        continue
      p, p_old, p_const = math.exp(lp[i, t]), math.exp(old[i, t]), math.exp(lp_const[i, t])
      if off[i]:
        total += -(2 * p / (p_old + (p_old + 1) / 2)) * adv[i] * (1 - p_const) ** gamma
      else:
        total += -adv[i] * p / p_old
  return total


def test_rl_plus_all_on_policy_matches_unclipped_ppo():
  off = jnp.zeros((2,), bool)
  got = rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=off, agg_mode="token-mean",
                             clip=True)
  ref = losses.ppo_policy_loss(jnp.where(MASK > 0, LP, 0.0), OLD, ADV, MASK, clip_low=0.2)
  np.testing.assert_allclose(got.total, ref.total, rtol=1e-5)
  np.testing.assert_allclose(got.count, ref.count)


def test_rl_plus_bad_inputs():
  with pytest.raises(ValueError, match="is_off_policy"):
    rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=jnp.array([True]))
  with pytest.raises(ValueError, match="is_off_policy.*bool"):
    rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=jnp.array([0, 1]))
  with pytest.raises(ValueError, match="aggregation mode"):
    rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=IS_OFF, agg_mode="mean")
  with pytest.raises(ValueError, match="gamma"):
    rl_plus.rl_plus_loss(LP, OLD, ADV, MASK, is_off_policy=IS_OFF, gamma=-1.0)
  with pytest.raises(ValueError, match="old_logprobs"):
    rl_plus.rl_plus_loss(LP, OLD[:, :2], ADV, MASK, is_off_policy=IS_OFF)


def test_rl_plus_empty_mask_is_zero():
  out = rl_plus.rl_plus_loss(LP, OLD, ADV, jnp.zeros_like(MASK), is_off_policy=IS_OFF)
  assert float(out.total) == 0.0 and float(out.count) == 0.0
  assert all(np.isfinite(float(v)) for v in out.metrics.values())


# ---- registry rows -------------------------------------------------------------------------


def test_registered_rl_plus_and_grpo_split():
  entry = losses.get_policy_loss_entry("rl_plus")
  assert entry.fn is rl_plus.rl_plus_loss and entry.inputs == ("is_off_policy",)
  est = losses.get_advantage_estimator("grpo_split")
  mask = jnp.ones((SCORES.shape[0], 2), jnp.float32)
  out = est(losses.AdvantageInputs(SCORES, mask, IDS, None, OFF))
  third = 1.0 / 3.0
  per_row = [third, -2 * third, 0.0, third, 0.0, third, 0.0, 1.0, 0.5, 1.0, 1.0]
  np.testing.assert_allclose(out.advantages, np.repeat(np.array(per_row)[:, None], 2, 1),
                             rtol=1e-6, atol=1e-7)
  # Without is_off_policy every row is on-policy: Dr. GRPO's group mean.
  plain = est(losses.AdvantageInputs(SCORES, mask, IDS))
  np.testing.assert_allclose(plain.advantages[:, 0],
                             losses.dr_grpo_advantages(SCORES, group_ids=IDS), atol=1e-7)

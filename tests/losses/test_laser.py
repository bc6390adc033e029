"""LaSeR (arXiv 2510.14943): hand rows, an independent NumPy transcription, gradients."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.losses import laser

# Four rows, two groups of two; row 3 is truncated (no self-reward).
LP_Z = np.array([-20.0, -13.0, -25.0, -15.0], np.float32)   # s = 0.3, 1.0, -0.2, 0.8
REWARDS = np.array([1.0, 0.0, 0.0, 1.0], np.float32)
VALID = np.array([True, True, True, False])
GROUPS = np.array([0, 0, 1, 1], np.int32)
A_GRPO = np.array([0.7, -0.7, -0.7, 0.7], np.float32)
MASK = np.array([[1, 1], [1, 0], [1, 1], [1, 0]], np.float32)


def test_scores_hand_values():
  s = laser.self_reward_scores(jnp.asarray(LP_Z), beta_v=0.1, c_ref=-23.0)
  np.testing.assert_allclose(s, [0.3, 1.0, -0.2, 0.8], atol=1e-6)
  # T * lp: 0.1 * (2 * -10 - (-23)) = 0.3
  np.testing.assert_allclose(
      laser.self_reward_scores(jnp.array([-10.0]), temperature=2.0), [0.3], atol=1e-6)
  with pytest.raises(ValueError, match="beta_v"):
    laser.self_reward_scores(jnp.asarray(LP_Z), beta_v=0.0)


def test_class_weights_hand_values():
  # Valid rows 0, 1, 2: N = 3, one correct (row 0), two incorrect.
  w, m = laser.self_reward_class_weights(jnp.asarray(REWARDS), jnp.asarray(VALID))
  np.testing.assert_allclose(w, [3 / 2, 3 / 4, 3 / 4, 0.0])
  np.testing.assert_allclose(m["self_reward_pos_frac"], 1 / 3, rtol=1e-6)
  # One class only: w = N / (2 N) = 1/2.
  w, _ = laser.self_reward_class_weights(jnp.zeros(3), jnp.ones(3, bool))
  np.testing.assert_allclose(w, [0.5, 0.5, 0.5])


def test_mse_hand_values():
  s = jnp.array([0.3, 1.0, -0.2, 0.8])
  out = laser.self_reward_mse(s, jnp.asarray(REWARDS), jnp.asarray(VALID))
  # 1.5 (0.3 - 1)^2 + 0.75 (1 - 0)^2 + 0.75 (-0.2)^2 = 0.735 + 0.75 + 0.03
  np.testing.assert_allclose(out.total, 1.515, rtol=1e-6)
  assert float(out.count) == 3.0
  # (s > .5) vs (v > .5) on rows 0-2: [F, T, F] vs [T, F, F] -> only row 2 right.
  np.testing.assert_allclose(out.metrics["self_reward_accuracy"], 1 / 3, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["self_reward_mean"], 1.1 / 3, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["self_reward_valid_frac"], 0.75)
  unb = laser.self_reward_mse(s, jnp.asarray(REWARDS), jnp.asarray(VALID), balanced=False)
  np.testing.assert_allclose(unb.total, 0.49 + 1.0 + 0.04, rtol=1e-6)


def test_mixed_advantage_hand_values():
  s = jnp.array([0.3, 1.0, -0.2, 0.8])
  mixed, m = laser.self_reward_advantages(s, jnp.asarray(VALID), jnp.asarray(A_GRPO),
                                          group_ids=jnp.asarray(GROUPS), lam=0.1, tau=0.1)
  # Group 0: s' = (0.3, 1.0), mean 0.65, unbiased std 0.35 sqrt 2 -> A_sr = -+1/sqrt 2.
  # Group 1: s' = (0, 0) (clip, truncated row 3 -> 0): std 0 <= tau -> A_GRPO kept.
  r = 1 / math.sqrt(2)
  want = [0.9 * 0.7 - 0.1 * r, -0.9 * 0.7 + 0.1 * r, -0.7, 0.7]
  np.testing.assert_allclose(np.asarray(mixed)[:, 0], want, rtol=1e-5)
  np.testing.assert_allclose(m["self_reward_adv_frac"], 0.5)


def _loss(lp, lpz, step=None, **kw):
  kw = dict(dict(alpha=0.1, beta_v=0.1, c_ref=-23.0, lam=0.1, tau=0.1), **kw)
  return laser.laser_loss(lp, jax.lax.stop_gradient(lp), jnp.asarray(A_GRPO)[:, None] * MASK,
                          jnp.asarray(MASK), self_reward_logprobs=lpz,
                          self_reward_valid=jnp.asarray(VALID), rewards=jnp.asarray(REWARDS),
                          group_ids=jnp.asarray(GROUPS), step=step, **kw)


def test_laser_loss_hand_total_and_warmups():
  lp = jnp.full(MASK.shape, -1.0)
  r = 1 / math.sqrt(2)
  a0 = 0.9 * 0.7 - 0.1 * r
  # ratio 1: PPO total = -sum_t m A = -(2 a0 - a0 - 1.4 + 0.7), count 6 tokens.
  pg_total = -(a0 - 0.7)
  l_sr = 1.515 / 3
  out = _loss(lp, jnp.asarray(LP_Z))
  assert float(out.count) == 6.0
  np.testing.assert_allclose(out.total, pg_total + 0.1 * l_sr * 6, rtol=1e-5)
  np.testing.assert_allclose(out.metrics["self_reward_loss"], l_sr, rtol=1e-5)
  # Both warm-ups pending at step 2: plain GRPO (sum m A_GRPO = 1.4 - 0.7 - 1.4 + 0.7 = 0).
  out = _loss(lp, jnp.asarray(LP_Z), step=jnp.int32(2), loss_warmup_steps=3,
              advantage_warmup_steps=3)
  np.testing.assert_allclose(out.total, 0.0, atol=1e-6)
  assert float(out.metrics["self_reward_loss_on"]) == 0.0
  np.testing.assert_allclose(out.metrics["self_reward_loss"], l_sr, rtol=1e-5)  # still logged
  # Loss on, advantage mixing not yet.
  out = _loss(lp, jnp.asarray(LP_Z), step=jnp.int32(3), loss_warmup_steps=3,
              advantage_warmup_steps=4)
  np.testing.assert_allclose(out.total, 0.1 * l_sr * 6, rtol=1e-5)


def test_laser_loss_gradients_hand_derived():
  lp = jnp.full(MASK.shape, -1.0)
  g_lp, g_z = jax.grad(lambda a, b: _loss(a, b).total / 6.0, argnums=(0, 1))(
      lp, jnp.asarray(LP_Z))
  # d/ds_i of alpha L_sr = alpha 2 w_i (s_i - v_i) / N; ds/dlp_z = beta_v: the
  # advantage's use of s is stop-gradient.
  w = np.array([1.5, 0.75, 0.75, 0.0])
  s = np.array([0.3, 1.0, -0.2, 0.8])
  want_z = 0.1 * 2 * w * (s - REWARDS) / 3 * 0.1
  np.testing.assert_allclose(g_z, want_z, rtol=1e-5, atol=1e-8)
  r = 1 / math.sqrt(2)
  a = np.array([0.9 * 0.7 - 0.1 * r, -0.9 * 0.7 + 0.1 * r, -0.7, 0.7])
  np.testing.assert_allclose(g_lp, -a[:, None] * MASK / 6.0, rtol=1e-5, atol=1e-8)


def _numpy_laser(lp, old, adv, mask, lpz, valid, rewards, groups, alpha, beta_v, lam, tau,
                 c_ref, clip):
  """Independent transcription of spec §5 (loops, float64)."""
  b = lp.shape[0]
  s = beta_v * (lpz - c_ref)
  n = valid.sum()
  n1 = (valid & (rewards > 0.5)).sum()
  n0 = n - n1
  sr = 0.0
  for i in range(b):
    if valid[i]:
      w = n / (2 * n1) if rewards[i] > 0.5 else n / (2 * n0)
      sr += w * (s[i] - rewards[i]) ** 2
  sr /= n
  sp = np.where(valid, np.clip(s, 0, 1), 0.0)
  mixed = adv.copy()
  for i in range(b):
    members = sp[groups == groups[i]]
    std = members.std(ddof=1)
    a_sr = (sp[i] - members.mean()) / std if std > tau else None
    for t in range(lp.shape[1]):
      mixed[i, t] = (1 - lam) * adv[i, t] + lam * (adv[i, t] if a_sr is None else a_sr)
  num, cnt = 0.0, 0.0
  for i in range(b):
    for t in range(lp.shape[1]):
      if mask[i, t]:
        ratio = math.exp(lp[i, t] - old[i, t])
        num += max(-mixed[i, t] * ratio, -mixed[i, t] * min(max(ratio, 1 - clip), 1 + clip))
        cnt += 1
  return num / cnt + alpha * sr


def test_laser_loss_matches_numpy_transcription():
  rng = np.random.default_rng(0)
  b, n = 8, 5
  lp = rng.normal(-1.0, 0.3, (b, n))
  old = lp + rng.normal(0, 0.3, (b, n))
  mask = (rng.random((b, n)) < 0.8).astype(np.float64)
  mask[:, 0] = 1
  rewards = rng.integers(0, 2, b).astype(np.float64)
  groups = np.repeat(np.arange(2), 4).astype(np.int32)
  adv = rng.normal(size=(b, 1)) * mask
  lpz = rng.normal(-20.0, 4.0, b)
  valid = np.array([1, 1, 0, 1, 1, 1, 1, 0], bool)
  kw = dict(alpha=0.3, beta_v=0.1, lam=0.2, tau=0.05, c_ref=-23.0)
  want = _numpy_laser(lp, old, adv, mask, lpz, valid, rewards, groups, clip=0.2, **kw)
  out = laser.laser_loss(jnp.asarray(lp, jnp.float32), jnp.asarray(old, jnp.float32),
                         jnp.asarray(adv, jnp.float32), jnp.asarray(mask),
                         self_reward_logprobs=jnp.asarray(lpz, jnp.float32),
                         self_reward_valid=jnp.asarray(valid), rewards=jnp.asarray(rewards,
                                                                                   jnp.float32),
                         group_ids=jnp.asarray(groups), step=jnp.int32(10), clip_low=0.2, **kw)
  np.testing.assert_allclose(float(out.total / out.count), want, rtol=1e-5)


def test_laser_loss_shape_errors():
  lp = jnp.zeros(MASK.shape)
  with pytest.raises(ValueError, match="self_reward_logprobs"):
    laser.laser_loss(lp, lp, lp, jnp.asarray(MASK), self_reward_logprobs=jnp.zeros(3),
                     self_reward_valid=jnp.asarray(VALID), rewards=jnp.asarray(REWARDS),
                     group_ids=jnp.asarray(GROUPS))
  with pytest.raises(ValueError, match="rewards"):
    laser.laser_loss(lp, lp, lp, jnp.asarray(MASK), self_reward_logprobs=jnp.asarray(LP_Z),
                     self_reward_valid=jnp.asarray(VALID), rewards=jnp.zeros(5),
                     group_ids=jnp.asarray(GROUPS))
  with pytest.raises(ValueError, match="alpha"):
    _loss(lp, jnp.asarray(LP_Z), alpha=-1.0)

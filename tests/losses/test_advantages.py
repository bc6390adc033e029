import statistics

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from jaxrl_llm.losses import advantages as adv
from . import reference_numpy as ref

# Non-contiguous groups: 7 -> rows 0,2,3,6 (scores 1,0,1,1); 5 -> rows 1,5 (all equal 2,2);
# 9 -> row 4 (singleton, score 3).
IDS = jnp.array([7, 5, 7, 7, 9, 5, 7])
SCORES = jnp.array([1., 2., 0., 1., 3., 2., 1.])
# Group 7: mean 0.75, unbiased std sqrt((3 * 0.25^2 + 0.75^2) / 3) = 0.5.


def test_grpo_hand_values():
  got = adv.grpo_advantages(SCORES, group_ids=IDS)
  d = 0.5 + 1e-6
  expected = [0.25 / d, 0.0, -0.75 / d, 0.25 / d, 3.0 / (1.0 + 1e-6), 0.0, 0.25 / d]
  np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_dr_grpo_and_lite_ppo_hand_values():
  np.testing.assert_allclose(adv.dr_grpo_advantages(SCORES, group_ids=IDS),
                             [0.25, 0.0, -0.75, 0.25, 3.0, 0.0, 0.25], rtol=1e-6)
  batch_std = statistics.stdev([1, 2, 0, 1, 3, 2, 1])
  np.testing.assert_allclose(
      adv.lite_ppo_advantages(SCORES, group_ids=IDS),
      np.array([0.25, 0.0, -0.75, 0.25, 3.0, 0.0, 0.25]) / (batch_std + 1e-6), rtol=1e-6)


def test_rloo_opo_gpg_hand_values():
  # RLOO: s_i - mean of the others; singleton keeps its score.
  np.testing.assert_allclose(adv.rloo_advantages(SCORES, group_ids=IDS),
                             [1 / 3, 0.0, -1.0, 1 / 3, 3.0, 0.0, 1 / 3], rtol=1e-6)
  # OPO: group 7 lengths 1,2,3,4 -> baseline (1 + 0 + 3 + 4) / 10 = 0.8.
  lengths = jnp.array([1, 5, 2, 3, 6, 5, 4])
  np.testing.assert_allclose(adv.opo_advantages(SCORES, lengths, group_ids=IDS),
                             [0.2, 0.0, -0.8, 0.2, 3.0, 0.0, 0.2], rtol=1e-6, atol=1e-7)
  # GPG: alpha = B / #nonzero = 7 / 6.
  np.testing.assert_allclose(adv.gpg_advantages(SCORES, group_ids=IDS),
                             7 / 6 * np.array([0.25, 0.0, -0.75, 0.25, 3.0, 0.0, 0.25]), rtol=1e-6)


def test_grpo_passk_hand_values():
  scores = jnp.array([0.2, 0.9, 0.5, 1.0, 1.0, 0.0])
  std = statistics.stdev([0.2, 0.9, 0.5])
  np.testing.assert_allclose(adv.grpo_passk_advantages(scores, group_size=3),
                             [0.0, 0.4 / (std + 1e-6), 0.0, 0.0, 0.0, 0.0], rtol=1e-5)
  np.testing.assert_allclose(
      adv.grpo_passk_advantages(scores, group_size=3, normalize_by_std=False),
      [0.0, 0.4, 0.0, 0.0, 0.0, 0.0], rtol=1e-5)


def test_contiguous_group_size_equals_group_ids():
  s = jnp.array([1., 0., 0., 1., 1., 1.])
  np.testing.assert_allclose(adv.grpo_advantages(s, group_size=3),
                             adv.grpo_advantages(s, group_ids=jnp.array([4, 4, 4, 0, 0, 0])))


@pytest.mark.parametrize("norm", [True, False])
def test_grpo_matches_verl(norm):
  rng = np.random.default_rng(0)
  index = [3, 1, 3, 2, 1, 3, 8, 2, 2, 1]   # groups of 3, 3, 3 and a singleton
  scores = rng.normal(size=len(index))
  expected = ref.verl_grpo(scores, index, 1e-6, norm)
  got = adv.grpo_advantages(jnp.asarray(scores, jnp.float32), group_ids=jnp.array(index),
                            std_scope="group" if norm else "none")
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_grpo_matches_trl(scale):
  rng = np.random.default_rng(1)
  rewards = rng.integers(0, 2, size=12).astype(np.float64)
  rewards[4:8] = 1.0                        # an all-equal group
  expected = ref.trl_grpo_advantages(rewards, 4, scale, eps=1e-4)
  got = adv.grpo_advantages(jnp.asarray(rewards, jnp.float32), group_size=4, std_scope=scale,
                            eps=1e-4)
  np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_rloo_matches_verl_and_openrlhf():
  rng = np.random.default_rng(2)
  scores = rng.normal(size=8)
  got = adv.rloo_advantages(jnp.asarray(scores, jnp.float32), group_size=4)
  np.testing.assert_allclose(got, ref.verl_rloo(scores, [0] * 4 + [1] * 4), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got, ref.openrlhf_rloo(scores, 4), rtol=1e-5, atol=1e-6)


def _token_batch(seed):
  rng = np.random.default_rng(seed)
  mask = np.ones((4, 5))
  mask[1, 3:] = 0
  mask[2, 1:] = 0
  rewards = np.zeros((4, 5))
  for i in range(4):                        # outcome reward on the last real token, plus noise
    last = int(mask[i].sum()) - 1
    rewards[i, last] = rng.normal()
  rewards += 0.1 * rng.normal(size=(4, 5)) * mask
  return rewards, mask


def test_reinforce_plus_plus_hand_and_verl():
  got_adv, got_ret = adv.reinforce_plus_plus_advantages(
      jnp.array([[0.0, 0.0, 1.0]]), jnp.ones((1, 3)), gamma=0.5)
  np.testing.assert_allclose(got_ret, [[0.25, 0.5, 1.0]])
  rewards, mask = _token_batch(3)
  exp_adv, exp_ret = ref.verl_reinforce_pp(rewards, mask, 0.9)
  got_adv, got_ret = adv.reinforce_plus_plus_advantages(
      jnp.asarray(rewards, jnp.float32), jnp.asarray(mask), gamma=0.9)
  np.testing.assert_allclose(np.asarray(got_ret)[mask > 0], exp_ret[mask > 0], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_adv, exp_adv, rtol=1e-4, atol=1e-5)


def test_reinforce_plus_plus_baseline_matches_verl():
  rewards, mask = _token_batch(4)
  scores = rewards.sum(1)
  index = [0, 1, 0, 1]
  expected = ref.verl_reinforce_pp_baseline(scores, mask, index)
  got = adv.reinforce_plus_plus_baseline_advantages(
      jnp.asarray(scores, jnp.float32), jnp.asarray(mask), group_ids=jnp.array(index))
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_gae_hand_values_skip_masked_token():
  # t2: delta = 1 - 0.2 = 0.8; t0 (skipping the masked t1): delta = 0.2 - 0.5 = -0.3, A = 0.5.
  a, r = adv.gae_advantages(jnp.array([[0.0, 5.0, 1.0]]), jnp.array([[0.5, 9.0, 0.2]]),
                            jnp.array([[1.0, 0.0, 1.0]]), gamma=1.0, lam=1.0, whiten=False)
  np.testing.assert_allclose(a, [[0.5, 0.0, 0.8]], rtol=1e-6)
  np.testing.assert_allclose(r, [[1.0, 0.0, 1.0]], rtol=1e-6)


def test_gae_matches_verl():
  rewards, mask = _token_batch(5)
  mask[3, 2] = 0                            # an observation token inside a response
  values = np.random.default_rng(6).normal(size=rewards.shape)
  exp_adv, exp_ret = ref.verl_gae(rewards, values, mask, 0.99, 0.95)
  got_adv, got_ret = adv.gae_advantages(jnp.asarray(rewards, jnp.float32),
                                        jnp.asarray(values, jnp.float32), jnp.asarray(mask),
                                        gamma=0.99, lam=0.95)
  on = mask > 0
  np.testing.assert_allclose(np.asarray(got_adv)[on], exp_adv[on], rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.asarray(got_ret)[on], exp_ret[on], rtol=1e-5, atol=1e-6)
  assert np.all(np.asarray(got_adv)[~on] == 0)


def test_group_bad_inputs():
  with pytest.raises(ValueError, match="exactly one"):
    adv.grpo_advantages(SCORES)
  with pytest.raises(ValueError, match="group_size"):
    adv.grpo_advantages(SCORES, group_size=2)
  with pytest.raises(ValueError, match="group_ids"):
    adv.grpo_advantages(SCORES, group_ids=jnp.zeros(3, jnp.int32))
  with pytest.raises(ValueError, match="std_scope"):
    adv.grpo_advantages(SCORES, group_size=7, std_scope="global")
  with pytest.raises(ValueError, match="scores"):
    adv.grpo_advantages(jnp.ones((2, 2)), group_size=2)


def test_estimators_are_exported_flat():
  assert losses.grpo_advantages is adv.grpo_advantages
  assert (losses.get_advantage_estimator("reinforce_plus_plus").fn
          is losses.registry.reinforce_plus_plus_estimator)

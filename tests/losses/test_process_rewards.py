"""Clip / Delta / Clip-Delta process-reward shaping (arXiv 2410.15115) on a hand-made
step-score matrix, Delta's return-to-go property, token placement, and the token-level
estimators reading the placed rewards."""

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses

# Rows with 4, 2 and 1 valid steps; padding holds garbage that must not matter.
R = np.array([[1.0, 0.0, 1.0, 1.0],
              [0.9, 0.2, 7.0, 7.0],
              [0.3, 7.0, 7.0, 7.0]], np.float32)
M = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)


def test_clip_by_hand():
  out = losses.clip_process_rewards(jnp.asarray(R), jnp.asarray(M), eta=0.5)
  # min(r - 0.5, 0): 1 -> 0, 0 -> -0.5, 0.9 -> 0, 0.2 -> -0.3, 0.3 -> -0.2
  np.testing.assert_allclose(out, [[0, -0.5, 0, 0], [0, -0.3, 0, 0], [-0.2, 0, 0, 0]],
                             atol=1e-6)


def test_delta_by_hand_and_return_to_go():
  out = np.asarray(losses.delta_process_rewards(jnp.asarray(R), jnp.asarray(M)))
  np.testing.assert_allclose(out, [[1, -1, 0, 0], [0.7, 0, 0, 0], [0, 0, 0, 0]], atol=1e-6)
  # sum_{k >= t} rt_k = r_t - r_K for every valid t
  for b, k_b in enumerate(M.sum(1)):
    for t in range(k_b):
      assert out[b, t:].sum() == pytest.approx(R[b, t] - R[b, k_b - 1], abs=1e-6)


def test_clip_delta_by_hand_and_return_to_go():
  out = np.asarray(losses.clip_delta_process_rewards(jnp.asarray(R), jnp.asarray(M), eta=0.5))
  # c = [[0, -.5, 0, 0], [0, -.3], [-.2]] -> delta
  np.testing.assert_allclose(out, [[0.5, -0.5, 0, 0], [0.3, 0, 0, 0], [0, 0, 0, 0]],
                             atol=1e-6)
  c = np.minimum(R - 0.5, 0.0)
  for b, k_b in enumerate(M.sum(1)):
    for t in range(k_b):
      assert out[b, t:].sum() == pytest.approx(c[b, t] - c[b, k_b - 1], abs=1e-6)
  same = losses.shape_process_rewards(jnp.asarray(R), jnp.asarray(M), kind="clip_delta", eta=0.5)
  np.testing.assert_array_equal(same, out)
  raw = losses.shape_process_rewards(jnp.asarray(R), jnp.asarray(M), kind="none")
  np.testing.assert_allclose(raw, np.where(M, R, 0.0))
  with pytest.raises(ValueError, match="unknown process-reward shaping"):
    losses.shape_process_rewards(jnp.asarray(R), jnp.asarray(M), kind="sum")


def _placed():
  delta = losses.delta_process_rewards(jnp.asarray(R), jnp.asarray(M))
  ends = jnp.asarray([[0, 2, 3, 5], [1, 3, 0, 0], [0, 0, 0, 0]])
  mask = jnp.asarray([[1] * 6, [1] * 4 + [0] * 2, [1] * 2 + [0] * 4], bool)
  outcome = jnp.asarray([1.0, 0.0, 0.5])
  return losses.place_token_rewards(delta, ends, jnp.asarray(M), outcome, mask), mask


def test_place_token_rewards_by_hand():
  tok, _ = _placed()
  # row 0: delta [1, -1, 0, 0] at tokens 0, 2, 3, 5 + outcome 1 at token 5
  # row 1: delta [0.7, 0] at tokens 1, 3 + outcome 0 at token 3
  # row 2: delta [0] at token 0 + outcome 0.5 at token 1 (last masked token)
  np.testing.assert_allclose(tok, [[1, 0, -1, 0, 0, 1],
                                   [0, 0.7, 0, 0, 0, 0],
                                   [0, 0.5, 0, 0, 0, 0]], atol=1e-6)
  # Two steps ending on one token add up.
  two = losses.place_token_rewards(jnp.asarray([[0.25, 0.5]]), jnp.asarray([[1, 1]]),
                                   jnp.ones((1, 2), bool), jnp.asarray([0.0]),
                                   jnp.ones((1, 3), bool))
  np.testing.assert_allclose(two, [[0, 0.75, 0]])


def test_token_estimators_read_token_rewards():
  tok, mask = _placed()
  inputs = losses.AdvantageInputs(jnp.zeros(3), mask, jnp.arange(3), jnp.zeros(mask.shape),
                                  token_rewards=tok)
  out = losses.get_advantage_estimator("gae_token")(inputs, gamma=1.0, lam=1.0, whiten=False)
  # V = 0, gamma = lam = 1: A_t = return-to-go of the token rewards on the mask.
  np.testing.assert_allclose(out.advantages, [[1, 0, 0, 1, 1, 1],
                                              [0.7, 0.7, 0, 0, 0, 0],
                                              [0.5, 0.5, 0, 0, 0, 0]], atol=1e-6)
  rpp = losses.get_advantage_estimator("reinforce_plus_plus_token")(inputs)
  np.testing.assert_allclose(rpp.returns, out.returns, atol=1e-6)
  assert losses.get_advantage_estimator("gae_token").extras == ("token_rewards",)
  with pytest.raises(ValueError, match="process_reward"):
    losses.get_advantage_estimator("reinforce_plus_plus_token")(inputs._replace(
        token_rewards=None))


def test_gae_token_on_terminal_rewards_equals_gae():
  mask = jnp.asarray([[1, 1, 0], [1, 1, 1]], bool)
  rewards = jnp.asarray([0.5, -1.0])
  values = jnp.asarray([[0.1, 0.2, 0.0], [0.3, -0.2, 0.4]])
  terminal = losses.registry.terminal_rewards(rewards, mask)
  inputs = losses.AdvantageInputs(rewards, mask, jnp.arange(2), values, token_rewards=terminal)
  a = losses.get_advantage_estimator("gae")(inputs, lam=0.9)
  b = losses.get_advantage_estimator("gae_token")(inputs, lam=0.9)
  np.testing.assert_allclose(a.advantages, b.advantages, atol=1e-6)
  np.testing.assert_allclose(a.returns, b.returns, atol=1e-6)

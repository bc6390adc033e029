"""Tests of RIQL-style data corruption (jaxrl_llm.offline.corruption)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline import corruption
from jaxrl_llm.offline.types import Transitions

N = 20000


def _data(n=N, seed=0):
  rng = np.random.default_rng(seed)
  obs = (rng.normal(size=(n, 3)) * np.float32([1.0, 5.0, 0.1])).astype(np.float32)
  return Transitions(observations=obs, actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
                     rewards=rng.normal(1.0, 0.5, n).astype(np.float32),
                     next_observations=(obs + 0.1).astype(np.float32),
                     terminals=np.zeros(n, np.float32), timeouts=np.zeros(n, np.float32))


def test_mask_rate_and_reproducibility():
  k = jax.random.PRNGKey(0)
  m1 = np.asarray(corruption.sample_corruption_mask(k, N, 0.3))
  m2 = np.asarray(corruption.sample_corruption_mask(k, N, 0.3))
  np.testing.assert_array_equal(m1, m2)
  # Binomial(20000, 0.3): std of the fraction is 0.0032; 5 sigma bound
  assert abs(m1.mean() - 0.3) < 0.016
  with pytest.raises(ValueError, match="rate"):
    corruption.sample_corruption_mask(k, N, 1.5)


@pytest.mark.parametrize("field,attr", [("observations", "observations"), ("actions", "actions"),
                                        ("dynamics", "next_observations")])
def test_random_additive_corruption(field, attr):
  data = _data()
  eps = 0.5
  new, mask = corruption.corrupt(jax.random.PRNGKey(1), data, field, "random", 0.3, eps)
  old = getattr(data, attr)
  got = getattr(new, attr)
  np.testing.assert_array_equal(got[~mask], old[~mask])  # clean rows untouched
  std = old.std(axis=0)  # independent NumPy std over the whole field
  u = (got[mask] - old[mask]) / std  # should be U(-eps, eps) per dimension
  assert np.all(np.abs(u) <= eps * (1 + 1e-4))
  np.testing.assert_allclose(u.mean(axis=0), 0.0, atol=0.02)
  np.testing.assert_allclose(u.var(axis=0), eps ** 2 / 3, rtol=0.05)  # var of U(-a, a) = a^2/3
  # other fields untouched
  for other in ("observations", "actions", "rewards", "next_observations"):
    if other != attr:
      np.testing.assert_array_equal(getattr(new, other), getattr(data, other))


def test_random_reward_corruption_replaces_reward():
  data = _data()
  new, mask = corruption.corrupt(jax.random.PRNGKey(2), data, "rewards", "random", 0.3, 1.0)
  np.testing.assert_array_equal(new.rewards[~mask], data.rewards[~mask])
  r = new.rewards[mask]
  assert r.min() >= -30.0 and r.max() <= 30.0
  np.testing.assert_allclose(r.std(), 30.0 / np.sqrt(3), rtol=0.05)  # U(-30, 30), not r + noise
  assert abs(np.corrcoef(r, data.rewards[mask])[0, 1]) < 0.05


def test_adversarial_reward_corruption_hand_computed():
  data = _data(n=6)._replace(rewards=np.float32([1, -2, 3, 0.5, 4, -1]))
  mask = jnp.array([True, False, True, False, False, True])
  np.testing.assert_allclose(corruption.adversarial_reward_corruption(data.rewards, mask, 0.5),
                             [-0.5, -2, -1.5, 0.5, 4, 0.5])
  new, m = corruption.corrupt(jax.random.PRNGKey(3), _data(), "rewards", "adversarial", 0.3, 1.0)
  np.testing.assert_allclose(new.rewards[m], -_data().rewards[m])


def test_gradient_attack_linear_critic():
  # Q(s, a) = s.w + a.v: minimising Q pushes each delta to -eps * sign(w) once enough steps are
  # taken (300 steps of 0.01 eps cover the 2 eps range from any start).
  data = _data(n=500)
  w = jnp.array([1.0, -2.0, 0.5])
  v = jnp.array([-1.0, 3.0])
  q_fn = lambda s, a: s @ w + a @ v
  eps = 0.8
  new, mask = corruption.corrupt(jax.random.PRNGKey(4), data, "observations", "adversarial", 0.5, eps,
                                 q_fn=q_fn, steps=300, chunk_size=128)
  std = data.observations.std(axis=0)
  expected = data.observations[mask] - eps * np.sign(np.asarray(w)) * std
  np.testing.assert_allclose(new.observations[mask], expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(new.observations[~mask], data.observations[~mask])
  new_a, mask_a = corruption.corrupt(jax.random.PRNGKey(5), data, "actions", "adversarial", 0.5, eps,
                                     q_fn=q_fn, steps=300)
  expected_a = data.actions[mask_a] - eps * np.sign(np.asarray(v)) * data.actions.std(axis=0)
  np.testing.assert_allclose(new_a.actions[mask_a], expected_a, rtol=1e-5, atol=1e-5)
  # dynamics: Q(s', pi(s')) with pi(s) = s[:, :2] -> d/ds' = w + [v, 0]
  policy_fn = lambda s: s[:, :2]
  new_d, mask_d = corruption.corrupt(jax.random.PRNGKey(6), data, "dynamics", "adversarial", 0.5, eps,
                                     q_fn=q_fn, policy_fn=policy_fn, steps=300)
  grad = np.asarray(w) + np.array([-1.0, 3.0, 0.0])  # [0, 1, 0.5]
  expected_d = data.next_observations[mask_d] - eps * np.sign(grad) * data.next_observations.std(axis=0)
  # a zero-gradient dimension keeps its random start in [-eps, eps] * std
  np.testing.assert_allclose(new_d.next_observations[mask_d][:, 1:], expected_d[:, 1:], rtol=1e-5, atol=1e-5)
  d0 = (new_d.next_observations[mask_d][:, 0] - data.next_observations[mask_d][:, 0]) / data.next_observations[:, 0].std()
  assert np.all(np.abs(d0) <= eps + 1e-5)


def test_gradient_attack_single_step_matches_sign_step():
  # One step from delta0: delta1 = clip(delta0 - lr * sign(g)) with lr = 0.01 * eps.
  x = jnp.array([[0.0, 0.0]])
  std = jnp.array([[2.0, 1.0]])
  key = jax.random.PRNGKey(0)
  eps = 1.0
  out0 = corruption.gradient_attack(key, lambda z: jnp.sum(z * jnp.array([1.0, -1.0])), x, std, eps, steps=0)
  out1 = corruption.gradient_attack(key, lambda z: jnp.sum(z * jnp.array([1.0, -1.0])), x, std, eps, steps=1)
  delta0 = np.asarray(out0) / np.asarray(std)
  np.testing.assert_allclose(np.asarray(out1) / np.asarray(std), np.clip(delta0 - 0.01 * np.array([1, -1]), -1, 1),
                             rtol=1e-5, atol=1e-6)


def test_corrupt_dataset_reproducible_with_fresh_masks():
  data = _data(n=5000)
  k = jax.random.PRNGKey(7)
  d1, m1 = corruption.corrupt_dataset(k, data, ["rewards", "dynamics"], "random")
  d2, m2 = corruption.corrupt_dataset(k, data, ["rewards", "dynamics"], "random")
  np.testing.assert_array_equal(d1.rewards, d2.rewards)
  np.testing.assert_array_equal(d1.next_observations, d2.next_observations)
  assert not np.array_equal(m1["rewards"], m1["dynamics"])  # a fresh index set per field
  d3, _ = corruption.corrupt_dataset(jax.random.PRNGKey(8), data, ["rewards"], "random")
  assert not np.array_equal(d1.rewards, d3.rewards)


def test_bad_options():
  data = _data(n=10)
  k = jax.random.PRNGKey(0)
  with pytest.raises(ValueError, match="field"):
    corruption.corrupt(k, data, "goals", "random", 0.3, 1.0)
  with pytest.raises(ValueError, match="mode"):
    corruption.corrupt(k, data, "rewards", "worst", 0.3, 1.0)
  with pytest.raises(ValueError, match="q_fn"):
    corruption.corrupt(k, data, "observations", "adversarial", 0.3, 1.0)
  with pytest.raises(ValueError, match="policy_fn"):
    corruption.corrupt(k, data, "dynamics", "adversarial", 0.3, 1.0, q_fn=lambda s, a: s[:, 0])
  with pytest.raises(ValueError, match="scale"):
    corruption.corrupt(k, data, "rewards", "random", 0.3, -1.0)

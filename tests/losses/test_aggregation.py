import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from . import reference_numpy as ref

# Row 0: two tokens, row 1: fully masked, row 2: three tokens.
VALUES = np.array([[1., 2., 3.], [4., 5., 6.], [7., 8., 9.]], np.float32)
MASK = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1]], np.float32)

# Hand-computed: S = [3, 0, 24], n = [2, 0, 3], N = 5, K = 2, T = 3, B = 3.
HAND = {
    "token-mean": (27.0, 5.0),
    "token-sum": (27.0, 1.0),
    "seq-mean-token-mean": (1.5 + 8.0, 2.0),
    "seq-mean-token-sum": (27.0, 2.0),
    "seq-mean-token-sum-norm": (27.0 / 3.0, 2.0),
    # TRL dr_grpo: (3 + 0 + 24) / (B * T) = 27 / 9, the empty row counts (verl: 27 / 6).
    "token-sum-norm-rows": (27.0 / 3.0, 3.0),
}
# verl's agg_loss modes (token-sum-norm-rows is TRL's, checked by hand above and below).
VERL_MODES = [m for m in losses.AGGREGATION_MODES if m != "token-sum-norm-rows"]


@pytest.mark.parametrize("mode", losses.AGGREGATION_MODES)
def test_hand_values_with_fully_masked_row(mode):
  total, count = losses.aggregate(jnp.asarray(VALUES), jnp.asarray(MASK), mode)
  np.testing.assert_allclose([total, count], HAND[mode], rtol=1e-6)


def test_horizon_and_bool_mask():
  total, count = losses.aggregate(jnp.asarray(VALUES), jnp.asarray(MASK, bool),
                                  "seq-mean-token-sum-norm", horizon=10.0)
  np.testing.assert_allclose(losses.safe_mean(total, count), 27.0 / 10.0 / 2.0, rtol=1e-6)
  # TRL dr_grpo with max_completion_length = 10: 27 / (B * 10) = 27 / 30.
  total, count = losses.aggregate(jnp.asarray(VALUES), jnp.asarray(MASK, bool),
                                  "token-sum-norm-rows", horizon=10.0)
  np.testing.assert_allclose(losses.safe_mean(total, count), 27.0 / 30.0, rtol=1e-6)
  # Gradient: d/dv_it of sum_i S_i / (B * horizon) = m_it / 30.
  g = jax.grad(lambda v: losses.safe_mean(*losses.aggregate(
      v, jnp.asarray(MASK), "token-sum-norm-rows", horizon=10.0)))(jnp.asarray(VALUES))
  np.testing.assert_allclose(g, MASK / 30.0, rtol=1e-6)


@pytest.mark.parametrize("mode", losses.AGGREGATION_MODES)
def test_garbage_outside_mask_is_ignored_in_value_and_gradient(mode):
  v = VALUES.copy()
  v[1, 0], v[0, 2] = np.nan, np.inf
  f = lambda x: losses.safe_mean(*losses.aggregate(x, jnp.asarray(MASK), mode))
  np.testing.assert_allclose(f(jnp.asarray(v)), HAND[mode][0] / HAND[mode][1], rtol=1e-6)
  g = jax.grad(f)(jnp.asarray(v))
  assert np.all(np.isfinite(g))
  assert np.all(np.asarray(g)[MASK == 0] == 0)


@pytest.mark.parametrize("mode", losses.AGGREGATION_MODES)
def test_all_masked_batch_gives_zero_count_and_zero_mean(mode):
  mask = jnp.zeros((2, 3))
  f = lambda x: losses.aggregate(x, mask, mode)
  total, count = f(jnp.ones((2, 3)))
  # token-sum-norm-rows counts every row (TRL divides by B), the others count nothing.
  assert float(count) == (2.0 if mode == "token-sum-norm-rows" else 0.0) and float(total) == 0.0
  mean_fn = lambda x: losses.safe_mean(*f(x))
  assert float(mean_fn(jnp.ones((2, 3)))) == 0.0
  np.testing.assert_array_equal(jax.grad(mean_fn)(jnp.ones((2, 3))), 0.0)


@pytest.mark.parametrize("mode", VERL_MODES)
def test_matches_verl_agg_loss(mode):
  rng = np.random.default_rng(0)
  loss = rng.normal(size=(5, 6))
  mask = (rng.uniform(size=(5, 6)) < 0.7).astype(np.float64)
  mask[2] = 0.0          # fully masked row
  mask[3, 1:] = 0.0      # length-1 row
  mask[3, 0] = 1.0
  expected = ref.verl_agg_loss(loss, mask, mode)
  total, count = losses.aggregate(jnp.asarray(loss, jnp.float32), jnp.asarray(mask), mode)
  np.testing.assert_allclose(float(total) / float(count), expected, rtol=1e-5)


def test_bad_inputs_raise_value_error():
  with pytest.raises(ValueError, match="aggregation mode"):
    losses.aggregate(jnp.ones((2, 3)), jnp.ones((2, 3)), "seq-mean")
  with pytest.raises(ValueError, match="mask"):
    losses.aggregate(jnp.ones((2, 3)), jnp.ones((2, 4)))
  with pytest.raises(ValueError, match="values"):
    losses.aggregate(jnp.ones((6,)), jnp.ones((6,)))


def test_masked_whiten_matches_verl():
  rng = np.random.default_rng(1)
  v = rng.normal(size=(3, 4))
  m = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]], np.float64)
  got = losses.masked_whiten(jnp.asarray(v, jnp.float32), jnp.asarray(m))
  np.testing.assert_allclose(np.asarray(got)[m > 0], ref.verl_masked_whiten(v, m)[m > 0],
                             rtol=1e-4, atol=1e-5)


def test_masked_mean_and_var_hand_values():
  v = jnp.array([[1.0, 3.0, 100.0], [5.0, 0.0, 0.0]])
  m = jnp.array([[1, 1, 0], [1, 0, 0]])
  np.testing.assert_allclose(losses.masked_mean(v, m), 3.0)           # (1 + 3 + 5) / 3
  np.testing.assert_allclose(losses.masked_mean(v, m, axis=-1), [2.0, 5.0])
  np.testing.assert_allclose(losses.masked_var(v, m), 4.0)            # (4 + 0 + 4) / 2
  np.testing.assert_allclose(losses.masked_var(v, m, unbiased=False), 8.0 / 3, rtol=1e-6)
  assert float(losses.masked_mean(v, jnp.zeros_like(m))) == 0.0


def test_low_precision_values_accumulate_in_float32():
  v = jnp.full((1, 4096), 1.001, jnp.bfloat16)
  total, count = losses.aggregate(v, jnp.ones((1, 4096)))
  assert total.dtype == jnp.float32
  np.testing.assert_allclose(total / count, float(v[0, 0]), rtol=1e-6)


@pytest.mark.parametrize("mode", [m for m in losses.AGGREGATION_MODES if m != "token-sum"])
def test_sum_and_count_are_exact_under_gradient_accumulation(mode):
  # Splitting the batch into micro-batches and dividing the summed totals by the summed
  # counts gives the full-batch value (DESIGN.md principle 3).
  rng = np.random.default_rng(2)
  v = jnp.asarray(rng.normal(size=(6, 4)), jnp.float32)
  m = jnp.asarray(rng.uniform(size=(6, 4)) < 0.6)
  m = m.at[1].set(False)
  whole = losses.safe_mean(*losses.aggregate(v, m, mode))
  parts = [losses.aggregate(v[s], m[s], mode) for s in (slice(0, 2), slice(2, 3), slice(3, 6))]
  np.testing.assert_allclose(sum(p[0] for p in parts) / sum(p[1] for p in parts), whole, rtol=1e-6)

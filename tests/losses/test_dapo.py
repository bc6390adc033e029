import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses


def test_dynamic_sampling_filter_hand_values():
  scores = jnp.array([1., 1., 1., 0., 1., 0., 0., 0., 0., 5.])
  ids = jnp.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3])
  keep, dropped, metrics = losses.dynamic_sampling_filter(scores, group_ids=ids)
  # Group 0 all 1, group 2 all 0, group 3 a singleton: 3 dropped, only group 1 kept.
  np.testing.assert_array_equal(keep, [False] * 3 + [True] * 3 + [False] * 4)
  assert int(dropped) == 3 and int(metrics["num_groups"]) == 4
  np.testing.assert_allclose(metrics["kept_row_frac"], 0.3)
  keep, dropped, _ = losses.dynamic_sampling_filter(scores[:9], group_size=3)
  np.testing.assert_array_equal(keep, [False] * 3 + [True] * 3 + [False] * 3)
  assert int(dropped) == 2


def test_overlong_penalty_hand_values():
  got = losses.overlong_penalty(jnp.array([10, 16, 18, 20, 21]), max_length=20, cache_length=4)
  np.testing.assert_allclose(got, [0.0, 0.0, -0.5, -1.0, -1.0])
  with pytest.raises(ValueError, match="cache_length"):
    losses.overlong_penalty(jnp.array([1]), max_length=4, cache_length=8)

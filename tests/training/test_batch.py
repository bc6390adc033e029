"""training.RolloutBatch: construction defaults, named validation errors, row gathers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import training


def _arrays(b=4, p=3, n=5):
  rng = np.random.default_rng(0)
  return dict(prompt_tokens=rng.integers(3, 9, (b, p)).astype(np.int32),
              prompt_mask=np.ones((b, p), np.int32),
              completion_tokens=rng.integers(3, 9, (b, n)).astype(np.int32),
              completion_mask=np.ones((b, n), bool),
              sampler_logprobs=np.zeros((b, n), np.float32),
              rewards=np.arange(b, dtype=np.float32))


def test_defaults_are_typed_fields_never_absent_keys():
  batch = training.make_rollout_batch(**_arrays(), group_size=2)
  np.testing.assert_array_equal(batch.group_ids, [0, 0, 1, 1])
  np.testing.assert_array_equal(batch.loss_mask, batch.completion_mask)
  np.testing.assert_array_equal(batch.is_off_policy, [False] * 4)
  assert batch.old_logprobs is None and batch.advantages is None and batch.extras == {}
  # A pytree: jit, tree.map and replace work; None fields stay None.
  doubled = jax.jit(lambda b: b.replace(rewards=b.rewards * 2))(batch)
  np.testing.assert_array_equal(doubled.rewards, [0, 2, 4, 6])
  assert doubled.ref_logprobs is None


def test_take_rows_gathers_every_field_and_extras():
  batch = training.make_rollout_batch(**_arrays(), group_size=2,
                                      extras={"hint": np.arange(4) * 10})
  got = training.take_rows(batch, np.array([2, 3]))
  np.testing.assert_array_equal(got.rewards, [2, 3])
  np.testing.assert_array_equal(got.extras["hint"], [20, 30])
  np.testing.assert_array_equal(got.prompt_tokens, batch.prompt_tokens[2:])


@pytest.mark.parametrize("change, message", [
    (dict(rewards=np.zeros((3,), np.float32)), r"RolloutBatch.rewards has shape \(3,\), expected \(4,\)"),
    (dict(completion_mask=np.ones((4, 4), bool)),
     r"RolloutBatch.completion_mask has shape \(4, 4\), expected \(4, 5\)"),
    (dict(completion_tokens=np.zeros((4, 5), np.float32)),
     "RolloutBatch.completion_tokens must be an integer array, got dtype float32"),
    (dict(sampler_logprobs=np.zeros((4, 5), np.int32)),
     "RolloutBatch.sampler_logprobs must be a floating array"),
    (dict(is_off_policy=np.zeros((4,), np.int32)), "RolloutBatch.is_off_policy must be a bool"),
    (dict(extras={"x": np.zeros((3,))}), r"extras\['x'\] must have 4 leading rows"),
])
def test_bad_fields_are_named(change, message):
  kw = dict(_arrays(), group_size=2)
  kw.update(change)
  with pytest.raises(ValueError, match=message):
    training.make_rollout_batch(**kw)


def test_group_size_and_required_fields_are_named():
  with pytest.raises(ValueError, match="batch of 4 rows is not divisible by group_size=3"):
    training.make_rollout_batch(**_arrays(), group_size=3)
  batch = training.make_rollout_batch(**_arrays(), group_size=2)
  with pytest.raises(ValueError, match="RolloutBatch.advantages is None; run prepare first"):
    training.check_rollout_batch(batch, require=("advantages",))
  with pytest.raises(ValueError, match="expected a RolloutBatch, got dict"):
    training.check_rollout_batch(dict(_arrays()))
  with pytest.raises(ValueError, match="RolloutBatch.old_logprobs has shape"):
    training.check_rollout_batch(batch.replace(old_logprobs=jnp.zeros((4, 2))))

"""make_rl_step's policy-loss protocol: a loss registered with ``inputs`` gets the
batch fields it names, a missing ``extras`` key fails naming it, ``pg_coef`` weights
the policy term, and off-policy rows are left out of the sampler mismatch metrics."""

import types

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl_llm import losses, models, training

from test_steps import VOCAB, rl_batch


@pytest.fixture(scope="module")
def setup():
  config = models.get_preset("tiny-llama", vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                             num_heads=2, num_kv_heads=2, head_dim=8, pad_token_id=0,
                             bos_token_id=1, eos_token_id=2)
  return config, models.init_params(config, jax.random.key(0))


def probe_loss(logprobs, old_logprobs, advantages, mask, *, rewards, group_ids, is_off_policy,
               step, extras, scale=1.0, is_weights=None):
  """sum_i (r_i + g_i + off_i + step + w_i) * sum_t m lp: each input enters the value."""
  del old_logprobs, advantages, is_weights
  row = (rewards + group_ids.astype(jnp.float32) + is_off_policy.astype(jnp.float32)
         + step.astype(jnp.float32) + extras["weight"])
  total = scale * jnp.sum(row * jnp.sum(logprobs * mask, axis=1))
  return losses.LossOutput(total, jnp.asarray(rewards.shape[0], jnp.float32),
                           {"probe_row_mean": jnp.mean(row)})


@pytest.fixture
def with_probe(monkeypatch):
  rows = dict(losses.registry.POLICY_LOSSES)
  rows["probe"] = losses.PolicyLoss(
      probe_loss, inputs=("rewards", "group_ids", "is_off_policy", "step", "extras"),
      extras=("weight",))
  monkeypatch.setattr(losses.registry, "POLICY_LOSSES", types.MappingProxyType(rows))


def _batch(b=8):
  batch = rl_batch(b=b)
  off = np.zeros((b,), bool)
  off[-1] = True
  return batch.replace(is_off_policy=off,
                       extras={"weight": np.linspace(0.0, 1.0, b).astype(np.float32)})


def test_loss_inputs_reach_the_loss(setup, with_probe):
  config, params = setup
  step = training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="probe",
                               single_update=True)
  state = training.init_train_state(params, optax.sgd(0.0))
  batch = _batch()
  prepared, _ = jax.jit(step.prepare)(state, batch)
  _, metrics = jax.jit(step.update)(state, prepared)
  # Hand value: r + g + off + step(0) + w per row.
  row = (np.asarray(batch.rewards) + np.arange(8) // 2 + batch.is_off_policy
         + batch.extras["weight"])
  np.testing.assert_allclose(float(metrics["probe_row_mean"]), row.mean(), rtol=1e-6)


def test_missing_extras_fail_naming_the_key(setup, with_probe):
  config, params = setup
  step = training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="probe",
                               single_update=True)
  state = training.init_train_state(params, optax.sgd(0.0))
  prepared, _ = jax.jit(step.prepare)(state, rl_batch())
  with pytest.raises(ValueError, match=r"needs RolloutBatch.extras \['weight'\]"):
    jax.jit(step.update)(state, prepared)
  with pytest.raises(ValueError, match="filled in from the batch"):
    training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="probe",
                          loss_kwargs={"rewards": 1.0})


def test_pg_coef_scales_the_policy_gradient(setup, with_probe):
  config, params = setup
  batch = _batch()
  grads = {}
  for coef in (1.0, 0.5, 0.0):
    step = training.make_rl_step(config, optax.sgd(1.0), group_size=2, loss="probe",
                                 single_update=True, pg_coef=coef)
    state = training.init_train_state(params, optax.sgd(1.0))
    prepared, _ = jax.jit(step.prepare)(state, batch)
    new_state, _ = jax.jit(step.update)(state, prepared)
    grads[coef] = jax.tree.map(lambda a, b: np.asarray(a) - np.asarray(b), params,
                               new_state.params)
  half = jax.tree.leaves(jax.tree.map(lambda a, b: np.abs(a - 0.5 * b).max(), grads[0.5],
                                      grads[1.0]))
  assert max(half) < 1e-6
  assert max(np.abs(x).max() for x in jax.tree.leaves(grads[0.0])) == 0.0
  assert max(np.abs(x).max() for x in jax.tree.leaves(grads[1.0])) > 0.0


def test_off_policy_rows_are_out_of_the_mismatch_metrics(setup):
  config, params = setup
  step = training.make_rl_step(config, optax.sgd(0.0), group_size=2, single_update=False)
  state = training.init_train_state(params, optax.sgd(0.0))
  batch = _batch()
  # A wildly wrong sampler log-prob on the off-policy row must not move the metric.
  far = np.array(batch.sampler_logprobs)
  far[-1] = -50.0 * np.asarray(batch.completion_mask[-1])
  _, m_ref = jax.jit(step.prepare)(state, batch)
  _, m_far = jax.jit(step.prepare)(state, batch.replace(sampler_logprobs=far))
  np.testing.assert_allclose(float(m_far["mismatch/mismatch_k1"]),
                             float(m_ref["mismatch/mismatch_k1"]), rtol=1e-6)

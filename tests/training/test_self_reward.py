"""LaSeR's appended self-reward token: placement, and the one forward equals a direct one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import models
from jaxrl_llm.training import logprobs as lp_lib
from jaxrl_llm.training import self_reward

Z_C = 5


def test_append_places_token_after_the_last_completion_token():
  tokens = jnp.array([[7, 8, 2, 0], [9, 2, 0, 0], [3, 4, 5, 6], [0, 0, 0, 0]])
  mask = jnp.array([[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], jnp.int32)
  out = self_reward.append_self_reward_token(tokens, mask, Z_C)
  np.testing.assert_array_equal(out.column, [3, 2, 4, 0])
  np.testing.assert_array_equal(out.valid, [True, True, False, True])
  np.testing.assert_array_equal(out.tokens, [[7, 8, 2, Z_C], [9, 2, Z_C, 0], [3, 4, 5, 6],
                                             [Z_C, 0, 0, 0]])
  np.testing.assert_array_equal(out.mask, [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 1],
                                           [1, 0, 0, 0]])
  assert out.mask.dtype == mask.dtype
  lp = jnp.arange(16.0).reshape(4, 4)
  np.testing.assert_array_equal(self_reward.gather_self_reward_logprobs(lp, out),
                                [3.0, 6.0, 0.0, 12.0])
  with pytest.raises(ValueError, match="self_reward_token"):
    self_reward.append_self_reward_token(tokens, mask, -1)


@pytest.fixture(scope="module")
def tiny():
  config = models.ModelConfig(family="llama", vocab_size=23, hidden_size=16,
                              intermediate_size=24, num_layers=2, num_heads=2, num_kv_heads=1,
                              head_dim=8)
  params = models.init_params(config, jax.random.key(3))
  prompts = jnp.array([[0, 1, 11, 12], [1, 13, 14, 15], [0, 0, 1, 16]])
  prompt_mask = (jnp.arange(4)[None] >= jnp.array([1, 0, 2])[:, None]).astype(jnp.int32)
  comps = jnp.array([[17, 18, 2, 0, 0], [19, 2, 0, 0, 0], [20, 21, 22, 3, 2]])
  comp_mask = jnp.array([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], jnp.int32)
  return config, params, prompts, prompt_mask, comps, comp_mask


def test_appended_forward_equals_direct_forward_and_keeps_other_logprobs(tiny):
  config, params, prompts, prompt_mask, comps, comp_mask = tiny
  app = self_reward.append_self_reward_token(comps, comp_mask, Z_C)
  kw = dict(impl="dense", temperature=0.7)
  plain = lp_lib.completion_logprobs(config, params, prompts, prompt_mask, comps, comp_mask,
                                     **kw).logprobs
  joint = lp_lib.completion_logprobs(config, params, prompts, prompt_mask, app.tokens,
                                     app.mask, **kw).logprobs
  got = self_reward.gather_self_reward_logprobs(joint, app)
  # Causal attention: the completion's own log-probs are untouched by the appended token.
  m = np.asarray(comp_mask, bool)
  np.testing.assert_allclose(np.asarray(joint)[m], np.asarray(plain)[m], rtol=1e-6, atol=1e-6)
  # Direct forward on each row's unpadded sequence prompt ++ y ++ z_c (no padding at all).
  for i in range(prompts.shape[0]):
    p = [int(t) for t, mm in zip(prompts[i], prompt_mask[i]) if mm]
    y = [int(t) for t, mm in zip(comps[i], comp_mask[i]) if mm]
    if len(y) == comps.shape[1]:
      assert not bool(app.valid[i]) and float(got[i]) == 0.0   # truncated: no room
      continue
    seq = jnp.asarray([p + y + [Z_C]])
    logits = models.forward(config, params, seq)[0, -2] / 0.7
    want = jax.nn.log_softmax(logits)[Z_C]
    np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)


def _batch(comps, comp_mask, prompts, prompt_mask, rewards):
  from jaxrl_llm import training
  b = comps.shape[0]
  return training.make_rollout_batch(prompts, prompt_mask, comps, comp_mask,
                                     jnp.zeros(comps.shape, jnp.float32),
                                     jnp.asarray(rewards, jnp.float32), group_size=b // 2 or 1)


def test_make_rl_step_passes_the_appended_token_logprob_to_laser(tiny):
  import optax
  from jaxrl_llm import losses, training
  config, params, prompts, prompt_mask, comps, comp_mask = tiny
  prompts, prompt_mask = jnp.tile(prompts, (2, 1))[:4], jnp.tile(prompt_mask, (2, 1))[:4]
  comps, comp_mask = jnp.tile(comps, (2, 1))[:4], jnp.tile(comp_mask, (2, 1))[:4]
  batch = _batch(comps, comp_mask, prompts, prompt_mask, [1.0, 0.0, 0.0, 1.0])
  opts = dict(c_ref=-3.0, beta_v=0.5)
  with pytest.raises(ValueError, match="self_reward_token"):
    training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="laser")
  with pytest.raises(ValueError, match="vocab_size"):
    training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="laser",
                          self_reward_token=config.vocab_size)
  step = training.make_rl_step(config, optax.sgd(0.0), group_size=2, loss="laser",
                               loss_kwargs=opts, self_reward_token=Z_C, single_update=True,
                               logprob_impl="dense")
  state = training.init_train_state(params, optax.sgd(0.0))
  prepared, _ = jax.jit(step.prepare)(state, batch)  # jit: eager op-by-op is slower
  _, metrics = jax.jit(step.update)(state, prepared)
  # Rows 0, 1, 3 have room (row 2 fills all 5 columns); s = 0.5 (lp_z + 3).
  app = self_reward.append_self_reward_token(comps, comp_mask, Z_C)
  lp = lp_lib.completion_logprobs(config, params, prompts, prompt_mask, app.tokens, app.mask,
                                  impl="dense").logprobs
  s = np.asarray(0.5 * (self_reward.gather_self_reward_logprobs(lp, app) + 3.0))
  valid = np.array([True, True, False, True])
  np.testing.assert_allclose(metrics["self_reward_valid_frac"], 0.75)
  np.testing.assert_allclose(metrics["self_reward_mean"], s[valid].mean(), rtol=1e-5)
  want = losses.laser.self_reward_mse(jnp.asarray(s), batch.rewards, jnp.asarray(valid))
  np.testing.assert_allclose(metrics["self_reward_loss"], float(want.total / want.count),
                             rtol=1e-5)

"""training.rollout: rollouts feed the RL step consistently at any temperature; rollouts
and greedy evaluation sampled under a device mesh equal the unsharded ones (8 fake CPU
devices; a subprocess when this process has fewer)."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxrl_llm import models, training
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.rewards.answers import exact_answer_reward
from jaxrl_llm.training import rollout


@pytest.mark.parametrize("temperature", [0.7, 1.3])
def test_rollout_logprobs_agree_with_the_trainer_at_the_sampling_temperature(temperature):
  """Same params: the sampler/trainer mismatch must be ~0 and the TIS weights ~1.

  The trainer takes log-probs at the sampling temperature (verl/TRL), so the
  rollout's `sampler_logprobs` must be at that temperature too; with temperature-1
  log-probs the mismatch would be O(1e-1) here.
  """
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  params = models.init_params(config, jax.random.key(0))
  params = jax.tree.map(lambda x: x * 3.0 if x.ndim > 1 else x, params)  # peaked logits
  examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=4)
  out = rollout.collect_rollouts(config, params, tok, examples, 0, exact_answer_reward,
                                 jax.random.key(1), num_prompts=4, group_size=2,
                                 max_new_tokens=6, temperature=temperature,
                                 next_examples=lambda src, pos, n: (src[:n], pos + n))
  assert out.position == 4
  step = training.make_rl_step(config, training.make_optimizer(1e-3), group_size=2,
                               loss="ppo", advantage="grpo", temperature=temperature,
                               tis=dict(level="token", cap=2.0))
  state = training.init_train_state(params, training.make_optimizer(1e-3))
  prepared, metrics = step.prepare(state, out.batch)
  m = np.asarray(out.batch.completion_mask).astype(bool)
  np.testing.assert_allclose(np.asarray(prepared.old_logprobs)[m],
                             np.asarray(out.batch.sampler_logprobs)[m], atol=1e-4)
  assert abs(float(metrics["mismatch/mismatch_k1"])) < 1e-5
  np.testing.assert_allclose(np.asarray(prepared.is_weights)[m], 1.0, atol=1e-4)
  # The temperature-1 log-probs differ measurably here, so the check above can fail.
  b = out.batch
  t1 = training.completion_logprobs(config, params, b.prompt_tokens, b.prompt_mask,
                                    b.completion_tokens, b.completion_mask,
                                    temperature=1.0).logprobs
  assert np.abs(np.asarray(t1)[m] - np.asarray(b.sampler_logprobs)[m]).mean() > 1e-2


_SCRIPT = r"""
import dataclasses, jax, numpy as np
from jaxrl_llm import models, sharding
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.rewards.answers import exact_answer_reward
from jaxrl_llm.training import rollout
assert jax.device_count() == 8, jax.devices()
tok = models.CharTokenizer()
config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
params = models.init_params(config, jax.random.key(0))
params = jax.tree.map(lambda x: x * 10.0 if x.ndim > 1 else x, params)  # no argmax ties
examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=4)
kw = dict(num_prompts=4, group_size=2, max_new_tokens=5, temperature=1.0)
kw["next_examples"] = lambda src, pos, n: (src[:n], pos)
ref = rollout.collect_rollouts(config, params, tok, examples, 0, exact_answer_reward,
                               jax.random.key(1), **kw)
mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
meshes_seen, generate = [], rollout.sampling.generate
def spy(*args, **kwargs):
  meshes_seen.append(kwargs.get("mesh"))
  return generate(*args, **kwargs)
rollout.sampling.generate = spy  # records that the mesh reaches the sampler
sharded = sharding.shard_params(params, config, mesh)  # the training layout
out = rollout.collect_rollouts(config, sharded, tok, examples, 0, exact_answer_reward,
                               jax.random.key(1), mesh=mesh, **kw)
assert ref.batch.completion_tokens.shape == (8, 5), ref.batch.completion_tokens.shape
for name in ("prompt_tokens", "prompt_mask", "completion_tokens", "completion_mask",
             "loss_mask", "rewards", "group_ids", "is_off_policy"):
  np.testing.assert_array_equal(np.asarray(getattr(out.batch, name)),
                                np.asarray(getattr(ref.batch, name)), err_msg=name)
np.testing.assert_allclose(np.asarray(out.batch.sampler_logprobs),
                           np.asarray(ref.batch.sampler_logprobs), atol=1e-5)
assert out.completions == ref.completions
ev_ref = rollout.evaluate(config, params, tok, examples, exact_answer_reward, max_new_tokens=5)
ev = rollout.evaluate(config, sharded, tok, examples, exact_answer_reward, max_new_tokens=5,
                      mesh=mesh)
assert ev == ev_ref, (ev, ev_ref)
assert meshes_seen == [mesh, None, mesh], meshes_seen  # rollouts, reference eval, eval
print("ROLLOUT_MESH_OK")
"""


def test_rollouts_under_a_mesh_equal_unsharded(run_on_8_devices):
  run_on_8_devices(_SCRIPT, "ROLLOUT_MESH_OK", "rollout_mesh_script")

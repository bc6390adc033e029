"""training.rollout's rollout-method protocol: the standard method is collect_rollouts,
and an explicit PromptPlan samples what the prompt transform would (checked against it)."""

import dataclasses
import jax
import numpy as np
import pytest

from jaxrl_llm import models
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.rewards.answers import exact_answer_reward
from jaxrl_llm.training import rollout


def _tiny():
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  return tok, config, models.init_params(config, jax.random.key(0))


def _take(src, pos, n):
  return src[pos:pos + n], pos + n


def test_standard_method_is_collect_rollouts_and_passes_state_through():
  tok, config, params = _tiny()
  examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=4)
  opts = dict(num_prompts=2, group_size=2, max_new_tokens=4, next_examples=_take)
  direct = rollout.collect_rollouts(config, params, tok, examples, 0, exact_answer_reward,
                                    jax.random.key(3), **opts)
  ctx = rollout.RolloutContext(config, params, tok, exact_answer_reward, 0, opts)
  state = {"seen": [1, 2]}
  ro, new_state = rollout.get_rollout_method("standard").fn(ctx, examples, 0, jax.random.key(3),
                                                            state)
  assert new_state is state and ro.position == direct.position == 2
  np.testing.assert_array_equal(np.asarray(ro.batch.completion_tokens),
                                np.asarray(direct.batch.completion_tokens))
  assert ro.completions == direct.completions
  assert rollout.get_rollout_method("standard").initial_state(examples) == {}


def test_explicit_plan_equals_the_transform_and_is_checked():
  tok, config, params = _tiny()
  examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=2)
  kw = dict(group_size=2, max_new_tokens=4)
  a = rollout.sample_groups(config, params, tok, examples, jax.random.key(5), **kw)
  plan = rollout.PromptPlan([ex.prompt for ex in examples], ["1", ""])
  b = rollout.sample_groups(config, params, tok, examples, jax.random.key(5), plan=plan, **kw)
  np.testing.assert_array_equal(a.prompt_tokens, b.prompt_tokens)
  # The forced "1" is the first completion token of example 0's two rows, marked forced.
  one = tok.encode("1", add_bos=False)[0]
  np.testing.assert_array_equal(np.asarray(b.out.tokens)[:2, 0], [one, one])
  np.testing.assert_array_equal(np.asarray(b.out.forced)[:, 0], [True, True, False, False])
  with pytest.raises(ValueError, match="1 prompts and 0 prefixes for 2 examples"):
    rollout.sample_groups(config, params, tok, examples, jax.random.key(5),
                          plan=rollout.PromptPlan(["x"]), **kw)

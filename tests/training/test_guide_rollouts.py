"""training/guide.py: the 'guide' rollout method on the tiny model with a scripted verifier:
all-fail groups are re-sampled from the hinted prompt, a hinted group is kept only when
its accuracy is in (0.001, 0.999), kept rows hold the ORIGINAL prompt, the hinted
completion, is_off_policy and the hinted-context log-probs (checked against an
independent forward), and the start-up check names the hint field."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxrl_llm import data, models, training
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.training import guide, rollout


def _tiny():
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  return tok, config, models.init_params(config, jax.random.key(0))


def _take(src, pos, n):
  return src[pos:pos + n], pos + n


class _Scripted:
  """A verifier that returns the given rewards in call order (records the texts)."""

  def __init__(self, rewards):
    self.rewards, self.texts = list(rewards), []

  def __call__(self, text, example):
    self.texts.append(text)
    return self.rewards[len(self.texts) - 1]


def test_guide_rerolls_all_fail_groups_and_keeps_informative_hinted_ones():
  tok, config, params = _tiny()
  examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=2)
  g, n = 2, 4
  opts = dict(num_prompts=2, group_size=g, max_new_tokens=n, next_examples=_take)
  # Plain: both groups [0, 0] (all fail -> both rerolled, one sampler call of 2 prompts).
  # Hinted: group 0 [1, 0] (accuracy 0.5: kept), group 1 [1, 1] (accuracy 1: the
  # original all-fail group is kept).
  reward_fn = _Scripted([0, 0, 0, 0] + [1, 0, 1, 1])
  ctx = rollout.RolloutContext(config, params, tok, reward_fn, 0, opts)
  key = jax.random.key(7)
  state = {"untouched": 1}
  ro, new_state = rollout.get_rollout_method("guide").fn(ctx, examples, 0, key, state)
  assert new_state is state
  assert len(reward_fn.texts) == 8  # 4 plain + 2 groups x 2 hinted

  # The plain rollouts the method drew (its first subkey), for comparison.
  plain_key = jax.random.split(key, 3)[1]
  plain = rollout.collect_rollouts(config, params, tok, examples, 0,
                                   _Scripted([0, 0, 0, 0]), plain_key, **opts)
  b, p = ro.batch, plain.batch
  np.testing.assert_array_equal(np.asarray(b.is_off_policy), [1, 1, 0, 0])
  np.testing.assert_array_equal(np.asarray(b.rewards), [1, 0, 0, 0])
  np.testing.assert_array_equal(ro.task_rewards, [1, 0, 0, 0])
  # Prompts: the ORIGINAL ones, same width as the plain batch.
  np.testing.assert_array_equal(np.asarray(b.prompt_tokens), np.asarray(p.prompt_tokens))
  np.testing.assert_array_equal(np.asarray(b.prompt_mask), np.asarray(p.prompt_mask))
  # Group 1 keeps its plain rows; completions are max_new_tokens wide.
  np.testing.assert_array_equal(np.asarray(b.completion_tokens)[2:],
                                np.asarray(p.completion_tokens)[2:])
  np.testing.assert_array_equal(np.asarray(b.sampler_logprobs)[2:],
                                np.asarray(p.sampler_logprobs)[2:])
  assert ro.completions[2:] == plain.completions[2:]
  assert b.completion_tokens.shape == (4, n)
  # Rows 0-1 are the hinted completions (the verifier's 5th and 6th texts).
  assert ro.completions[:2] == reward_fn.texts[4:6]
  assert tok.batch_decode(np.asarray(b.completion_tokens)[:2]) == reward_fn.texts[4:6]

  # sampler_logprobs on the hinted rows = log pi(o_t | q_h, o_<t), by a separate forward.
  hinted = guide.hinted_prompt(examples[0].prompt, examples[0].completion)
  assert hinted == f"Hint: {examples[0].completion}\n{examples[0].prompt}"
  ht, hm = rollout.encode_prompts(tok, [hinted] * 2, add_bos=True)
  comp, cmask = np.asarray(b.completion_tokens)[:2], np.asarray(b.completion_mask)[:2]
  logprobs = jax.jit(lambda *a: training.completion_logprobs(config, *a).logprobs)
  lp_hint = logprobs(params, ht, hm, comp, cmask)
  lp_plain = logprobs(params, np.asarray(b.prompt_tokens)[:2], np.asarray(b.prompt_mask)[:2],
                      comp, cmask)
  m = cmask.astype(bool)
  np.testing.assert_allclose(np.asarray(b.sampler_logprobs)[:2][m], np.asarray(lp_hint)[m],
                             atol=2e-4)
  assert np.abs(np.asarray(lp_plain)[m] - np.asarray(lp_hint)[m]).max() > 1e-2
  np.testing.assert_array_equal(np.asarray(b.loss_mask)[:2], m)  # nothing forced

  assert ro.metrics["guide_rerolled_frac"] == 1.0
  assert ro.metrics["guide_hinted_accuracy"] == pytest.approx(0.75)  # (0.5 + 1) / 2
  assert ro.metrics["guide_kept_frac"] == pytest.approx(0.5)
  assert ro.metrics["guide_hinted_group_frac"] == pytest.approx(0.5)
  assert ro.metrics["guide_batch_reward_mean"] == pytest.approx(0.25)
  assert ro.metrics["accuracy"] == 0.0  # the plain samples


def test_no_failing_group_means_no_reroll():
  tok, config, params = _tiny()
  examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=2)
  opts = dict(num_prompts=2, group_size=2, max_new_tokens=4, next_examples=_take)
  reward_fn = _Scripted([1, 0, 0, 1])
  ctx = rollout.RolloutContext(config, params, tok, reward_fn, 0, opts)
  ro, _ = rollout.get_rollout_method("guide").fn(ctx, examples, 0, jax.random.key(1), {})
  assert len(reward_fn.texts) == 4
  assert ro.metrics["guide_rerolled_frac"] == 0.0 and ro.metrics["guide_kept_frac"] == 0.0
  assert not np.asarray(ro.batch.is_off_policy).any()


def test_hint_field_is_checked_at_start():
  src = data.ListSource([data.Example("1+1=", "2", metadata={"hint": "one plus one"}),
                         data.Example("2+2=", "4")])
  guide.check_hint_source(data.ListSource([data.Example("1+1=", "2", completion="2")]))
  with pytest.raises(ValueError, match=r"Example\.completion"):
    guide.check_hint_source(src)
  with pytest.raises(ValueError, match=r"Example\.metadata\.hint .*example 1"):
    guide.check_hint_source(src, hint_field="metadata.hint")
  with pytest.raises(ValueError, match="hint_template"):
    guide.check_hint_source(src, hint_field="metadata.hint", hint_template="{prompt} only")
  assert rollout.get_rollout_method("guide").check is guide.check_hint_source

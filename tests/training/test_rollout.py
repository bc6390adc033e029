"""training.rollout: rollouts feed the RL step consistently at any temperature; rollouts
and greedy evaluation sampled under a device mesh equal the unsharded ones (8 fake CPU
devices; a subprocess when this process has fewer)."""

import dataclasses
import types

import jax
import numpy as np
import pytest

from jaxrl_llm import data, models, training
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


def _tiny():
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  return tok, config, models.init_params(config, jax.random.key(0))


def test_stop_string_cut_by_hand():
  tok = models.CharTokenizer()
  row = np.asarray(tok.encode("ab12cd") + [tok.pad_id] * 2)
  assert rollout.stop_string_cut(tok, row, "ab12cd", ("2c", "d")) == (5, "ab1")
  assert rollout.stop_string_cut(tok, row, "ab12cd", ("x",)) == (8, "ab12cd")


def test_dynamic_sampling_gathers_rows_consistently_with_their_texts_and_prompts():
  """DAPO refill over rounds: every row's tokens, prompt, reward and text agree (the
  gather by index on device matches the host's bookkeeping), the data position advanced
  by the prompts drawn, and the prompts of different rounds share one width."""
  tok, config, params = _tiny()
  task = ArithmeticTask(digits=2)

  def reward_fn(text, ex):  # informative only for even answers, and then only sometimes
    return float(int(ex.answer) % 2 == 0 and text[:1] < "M")

  ro = rollout.collect_rollouts(config, params, tok, task, data.DataPosition(seed=0, cursor=0), reward_fn,
                                jax.random.key(3), num_prompts=4, group_size=4,
                                max_new_tokens=4, dynamic_sampling=True, max_sampling_rounds=3)
  b = ro.batch
  rounds = int(ro.metrics["sampling_rounds"])
  assert rounds >= 2 and ro.position.cursor == 4 * rounds
  seen, _ = data.take_batch(task, data.DataPosition(seed=0, cursor=0), 4 * rounds)
  assert b.completion_tokens.shape == (16, 4)
  for i in range(16):
    prompt = tok.decode(np.asarray(b.prompt_tokens[i])[np.asarray(b.prompt_mask[i]) > 0])
    ex = next(e for e in seen if e.prompt == prompt)
    assert tok.decode(np.asarray(b.completion_tokens[i])) == ro.completions[i]
    assert float(b.rewards[i]) == reward_fn(ro.completions[i], ex) == ro.task_rewards[i]
  np.testing.assert_array_equal(b.group_ids, np.arange(16) // 4)
  np.testing.assert_array_equal(b.loss_mask, b.completion_mask)
  g = ro.task_rewards.reshape(4, 4)
  informative = (g.max(1) > g.min(1))
  assert ro.metrics["informative_group_frac"] == informative.mean()
  if rounds < 3:  # stopped early: enough informative groups were found
    assert informative.all()


def test_stop_strings_and_forced_prefixes(monkeypatch):
  tok, config, params = _tiny()
  examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=2)
  monkeypatch.setattr(rollout, "PROMPT_TRANSFORMS", {
      "identity": rollout.identity_prompts,
      "prefix": lambda exs: rollout.PromptPlan([e.prompt for e in exs], ["7=", ""])})
  stops = tuple("0123456789")
  ro = rollout.collect_rollouts(config, params, tok, examples, 0, lambda t, e: 0.0,
                                jax.random.key(5), num_prompts=2, group_size=4,
                                max_new_tokens=8, stop_strings=stops,
                                prompt_transform="prefix",
                                next_examples=lambda s, p, n: (s[:n], p + n))
  b = ro.batch
  tokens, mask, loss_mask = (np.asarray(x) for x in (b.completion_tokens, b.completion_mask,
                                                     b.loss_mask))
  # Rows 0-3: forced "7=", which a stop string ("7") cuts right after its first token.
  np.testing.assert_array_equal(tokens[:4, :2], [tok.encode("7=")] * 4)
  np.testing.assert_array_equal(mask[:4].sum(1), 1)
  assert not loss_mask[:4].any() and ro.completions[:4] == [""] * 4
  # Rows 4-7 sampled: the verifier's text holds no stop string, and the mask ends at the
  # token completing one (or runs to the end).
  assert np.array_equal(loss_mask[4:], mask[4:])
  for i in range(4, 8):
    n = mask[i].sum()
    assert not any(s in ro.completions[i] for s in stops)
    kept = tok.decode(tokens[i, :n])
    assert kept.startswith(ro.completions[i])
    assert n == 8 or any(s in kept for s in stops)
    assert not any(s in tok.decode(tokens[i, :n - 1]) for s in stops)
  with pytest.raises(ValueError, match="unknown prompt transform 'nope'; known: identity"):
    rollout.get_prompt_transform("nope")


def test_score_rows_split_rows_into_contiguous_process_blocks():
  # 10 rows over 4 processes: blocks of ceil(10 / 4) = 3 -> [0,3) [3,6) [6,9) [9,10)
  assert [rollout.score_rows(10, i, 4) for i in range(4)] == [
      slice(0, 3), slice(3, 6), slice(6, 9), slice(9, 10)]
  # 4 rows over 3 processes: blocks of 2, the last process has none
  assert [rollout.score_rows(4, i, 3) for i in range(3)] == [
      slice(0, 2), slice(2, 4), slice(4, 4)]
  assert rollout.score_rows(8, 0, 1) == slice(0, 8)


def test_score_on_process_1_of_2_verifies_only_its_block(monkeypatch):
  """Process 1 of 2 scores rows 3..4 of 5 (blocks of 3); the other block comes from the
  all-gather, here stubbed with what process 0 would send."""
  import jax
  from jax.experimental import multihost_utils
  examples = [types.SimpleNamespace(answer=str(k)) for k in range(3)]
  texts = ["a", "bb", "ccc", "dddd", "eeeee"]  # group size 2: rows 0-1 ex 0, 2-3 ex 1, 4 ex 2
  seen = []

  def reward_fn(text, example):
    seen.append(text)
    return len(text) + 10 * int(example.answer)

  def allgather(local, tiled):
    assert tiled and local.shape == (3,)
    np.testing.assert_array_equal(local, [14.0, 25.0, 0.0])  # rows 3, 4 and the padding
    return np.concatenate([np.asarray([1.0, 2.0, 13.0], np.float32), local])

  monkeypatch.setattr(jax, "process_count", lambda: 2)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  monkeypatch.setattr(multihost_utils, "process_allgather", allgather)
  out = rollout.score(reward_fn, texts, examples, 2)
  assert seen == ["dddd", "eeeee"]
  np.testing.assert_array_equal(out, [1.0, 2.0, 13.0, 14.0, 25.0])
  assert out.dtype == np.float32

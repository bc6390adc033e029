"""training/prefix_rl.py: stored correct traces force completion prefixes; the forced tokens
are in the completion (the verifier sees them) but get no gradient (d loss / d logprobs = 0
there through the policy loss with the batch's loss_mask); traces found are stored in the
JSON method state, restored from a JSON round trip and used at the next step; seeding
from a dataset field; bounds; start-up checks."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import data, losses, models
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.training import prefix_rl, rollout


def _tiny():
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  return tok, config, models.init_params(config, jax.random.key(0))


def _take(src, pos, n):
  return src[pos:pos + n], pos + n


def _run(ctx, examples, key, state, **kw):
  return rollout.get_rollout_method("prefix_rl").fn(ctx, examples, 0, key, state, **kw)


def test_forced_prefix_gets_no_gradient_and_traces_round_trip():
  tok, config, params = _tiny()
  ex = ArithmeticTask(digits=2).examples(seed=0, start=0, count=2)
  opts = dict(num_prompts=2, group_size=2, max_new_tokens=4, next_examples=_take)
  seen = []

  def reward_fn(text, example):  # example 1's plain rows and "123..." texts are correct
    seen.append(text)
    return 1.0 if example is ex[1] or text.startswith("123") else 0.0

  ctx = rollout.RolloutContext(config, params, tok, reward_fn, 0, opts)
  # Example 0 has a 7-token trace: h = floor(0.5 * 7) = 3 forced tokens "123".
  state = {"traces": {ex[0].prompt: ["1234567"]}}
  ro, state1 = _run(ctx, ex, jax.random.key(3), state, prefix_frac=1.0, prefix_ratio=0.5)
  b = ro.batch
  toks, cm, lm = (np.asarray(b.completion_tokens), np.asarray(b.completion_mask).astype(bool),
                  np.asarray(b.loss_mask).astype(bool))
  np.testing.assert_array_equal(toks[:2, :3], [tok.encode("123", add_bos=False)] * 2)
  assert cm[:2, :3].all() and not lm[:2, :3].any()           # in the completion, no loss
  np.testing.assert_array_equal(lm[:2, 3:], cm[:2, 3:])
  np.testing.assert_array_equal(lm[2:], cm[2:])               # example 1: nothing forced
  assert all(t.startswith("123") for t in seen[:2])           # the verifier saw prefix + z
  np.testing.assert_array_equal(ro.task_rewards, [1, 1, 1, 1])

  # Gradient of the policy loss with the batch's loss_mask: 0 on the forced tokens.
  lp = -jnp.ones(toks.shape) * 0.7
  adv = jnp.asarray([1.0, -1.0, 0.5, -0.5])
  grad = np.asarray(jax.grad(lambda x: losses.get_policy_loss("ppo")(
      x, jax.lax.stop_gradient(x), adv, b.loss_mask).total)(lp))
  assert (grad[~lm] == 0).all() and (grad[:2, :3] == 0).all()
  assert (np.abs(grad[lm]) > 0).all()

  # Metrics: one of two groups prefixed, 3 forced tokens per prefixed row.
  m = ro.metrics
  assert m["prefix_rl_prefixed_frac"] == 0.5 and m["prefix_rl_forced_tokens_mean"] == 3.0
  assert m["prefix_rl_accuracy_prefixed"] == 1.0 and m["prefix_rl_accuracy_plain"] == 1.0

  # Stored: example 1's two plain correct completions (prefixed rows are not stored).
  traces = state1["traces"]
  assert traces[ex[0].prompt] == ["1234567"]
  assert traces[ex[1].prompt] == [t for t in dict.fromkeys(ro.completions[2:]) if t]
  assert m["prefix_rl_stored_traces"] == sum(len(v) for v in traces.values())
  assert state == {"traces": {ex[0].prompt: ["1234567"]}}    # the input state is not modified

  # JSON round trip, then the next step prefixes example 1 with one of its stored traces.
  restored = json.loads(json.dumps(state1))
  assert restored == state1
  ro2, _ = _run(ctx, ex, jax.random.key(4), restored, prefix_frac=1.0, prefix_ratio=0.5)
  lm2 = np.asarray(ro2.batch.loss_mask).astype(bool)
  cm2 = np.asarray(ro2.batch.completion_mask).astype(bool)
  forced_rows = (cm2 & ~lm2)[2:]
  assert forced_rows.any()
  h = int(forced_rows[0].sum())
  prefix = tok.decode(np.asarray(ro2.batch.completion_tokens)[2, :h])
  assert any(t.startswith(prefix) and h == min(len(t) // 2, 3) for t in traces[ex[1].prompt])


def test_seed_field_and_plain_rows():
  tok, config, params = _tiny()
  ex = ArithmeticTask(digits=2).examples(seed=0, start=0, count=2)
  opts = dict(num_prompts=2, group_size=2, max_new_tokens=4, next_examples=_take)
  ctx = rollout.RolloutContext(config, params, tok, lambda t, e: 0.0, 0, opts)
  # No traces and no seed field: nothing forced.
  ro, st = _run(ctx, ex, jax.random.key(0), prefix_rl.init_prefix_state(), prefix_frac=1.0)
  assert ro.metrics["prefix_rl_prefixed_frac"] == 0.0 and st == {"traces": {}}
  np.testing.assert_array_equal(np.asarray(ro.batch.loss_mask),
                                np.asarray(ro.batch.completion_mask))
  # Seeded from Example.completion ("53", "62"): h = floor(0.5 * 2) = 1 forced token.
  ro, st = _run(ctx, ex, jax.random.key(0), {"traces": {}}, prefix_frac=1.0,
                seed_field="completion")
  toks = np.asarray(ro.batch.completion_tokens)
  assert tok.decode(toks[0, :1]) == ex[0].completion[0]
  assert tok.decode(toks[2, :1]) == ex[1].completion[0]
  assert st == {"traces": {ex[0].prompt: [ex[0].completion], ex[1].prompt: [ex[1].completion]}}
  assert ro.metrics["prefix_rl_accuracy_prefixed"] == 0.0


def test_add_trace_bounds_and_choice_fraction():
  t = prefix_rl.add_trace({}, "a", "x", max_traces=2)
  t = prefix_rl.add_trace(t, "a", "y", max_traces=2)
  t = prefix_rl.add_trace(t, "a", "x", max_traces=2)    # a repeat moves to the end
  assert t == {"a": ["y", "x"]}
  t = prefix_rl.add_trace(t, "a", "z", max_traces=2)    # oldest dropped
  assert t == {"a": ["x", "z"]}
  t = prefix_rl.add_trace(t, "b", "1", max_examples=2)
  t = prefix_rl.add_trace(t, "c", "2", max_examples=2)  # oldest example evicted
  assert list(t) == ["b", "c"]
  # prefix_frac = 0.3 over 2000 examples with a trace: ~30% prefixed, deterministic per seed.
  tok = models.CharTokenizer()
  exs = [data.Example(f"{i}+0=", str(i)) for i in range(2000)]
  traces = {e.prompt: ["abcdef"] for e in exs}
  kw = dict(tokenizer=tok, seed=5, prefix_frac=0.3, prefix_ratio=0.5, max_prefix_tokens=8)
  got = [prefix_rl.choose_prefix(e, traces, **kw) for e in exs]
  assert set(got) == {"", "abc"}
  assert abs(np.mean([g == "abc" for g in got]) - 0.3) < 0.04
  assert got == [prefix_rl.choose_prefix(e, traces, **kw) for e in exs]
  # The cap: h <= max_prefix_tokens.
  assert prefix_rl.choose_prefix(exs[0], traces, **dict(kw, prefix_frac=1.0, prefix_ratio=1.0,
                                                        max_prefix_tokens=2)) == "ab"


def test_checks_name_the_field_and_options():
  src = data.ListSource([data.Example("1+1=", "2", completion="2")])
  prefix_rl.check_prefix_source(src, seed_field="completion")
  with pytest.raises(ValueError, match=r"Example\.metadata\.solution"):
    prefix_rl.check_prefix_source(src, seed_field="metadata.solution")
  with pytest.raises(ValueError, match="prefix_ratio"):
    prefix_rl.check_prefix_source(src, prefix_ratio=1.5)
  with pytest.raises(ValueError, match="prefix_frac"):
    prefix_rl.check_prefix_source(src, prefix_frac=-0.1)
  assert rollout.get_prompt_transform("prefix_rl") is prefix_rl.prefix_rl_prompts

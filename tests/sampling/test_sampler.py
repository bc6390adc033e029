"""generate(): greedy vs transformers, log-probs vs a fresh forward, prefill sharing, errors."""

import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config

from jaxrl_llm import models, sampling
from jaxrl_llm.sampling import sampler as sampler_lib

PAD = 0
_forward = jax.jit(models.forward, static_argnums=0)
# Left-padded prompts of lengths 3, 7 and 5 (tokens >= 1, so PAD never occurs in them).
PROMPTS = np.array([[0, 0, 0, 0, 11, 12, 13],
                    [21, 22, 23, 24, 25, 26, 27],
                    [0, 0, 31, 32, 33, 34, 35]], np.int32)
PROMPT_MASK = (np.arange(7)[None] >= np.array([4, 0, 2])[:, None]).astype(np.int32)


def _hf_tiny(cls, **kw):
  torch.manual_seed(0)
  cfg = cls(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
            pad_token_id=PAD, bos_token_id=None, eos_token_id=None, **kw)
  model = AutoModelForCausalLM.from_config(cfg).eval()
  with torch.no_grad():  # a wide init so greedy choices are far from ties
    for p in model.parameters():
      p.normal_(0, 0.2)
  with tempfile.TemporaryDirectory() as d:
    model.save_pretrained(d)
    config, params = models.load_hf(d)
  return model, config, params


def _hf_greedy(model, max_new_tokens, eos=None):
  with torch.no_grad():
    out = model.generate(input_ids=torch.tensor(PROMPTS, dtype=torch.long),
                         attention_mask=torch.tensor(PROMPT_MASK), do_sample=False,
                         max_new_tokens=max_new_tokens, eos_token_id=eos, pad_token_id=PAD,
                         top_p=None, top_k=None, temperature=None)
  new = out[:, PROMPTS.shape[1]:].numpy()
  return np.pad(new, ((0, 0), (0, max_new_tokens - new.shape[1])), constant_values=PAD)


@pytest.mark.parametrize("cls, kw", [(LlamaConfig, dict(tie_word_embeddings=False)),
                                     (Qwen2Config, dict(tie_word_embeddings=True))],
                         ids=["llama", "qwen2"])
def test_greedy_matches_transformers(cls, kw):
  n = 10
  model, config, params = _hf_tiny(cls, **kw)
  free = _hf_greedy(model, n)
  # Stop token: the 4th greedy token of prompt 0, so at least one row stops early.
  stop = int(free[0, 3])
  expected = _hf_greedy(model, n, eos=stop)
  out = sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(0),
                          max_new_tokens=n, temperature=0.0, stop_tokens=(stop,),
                          pad_token_id=PAD)
  tokens, mask = np.asarray(out.tokens), np.asarray(out.mask)
  np.testing.assert_array_equal(tokens, expected)
  # mask / lengths / finish reason follow the first stop token of each row.
  for r in range(len(PROMPTS)):
    hits = np.flatnonzero(expected[r] == stop)
    length = hits[0] + 1 if hits.size else n
    assert int(out.lengths[r]) == length
    np.testing.assert_array_equal(mask[r], np.arange(n) < length)
    assert int(out.finish_reason[r]) == (sampling.FINISH_STOP if hits.size
                                         else sampling.FINISH_LENGTH)
  assert int(out.lengths[0]) <= 4
  np.testing.assert_array_equal(np.asarray(out.sampling_logprobs), 0.0)


@pytest.fixture(scope="module")
def llama():
  _, config, params = _hf_tiny(LlamaConfig, tie_word_embeddings=False)
  return config, params


def _fresh_logits(config, params, completion, completion_mask, num_samples):
  """Forward over [prompt, completion] of every row; logits predicting each completion token."""
  prompts = np.repeat(PROMPTS, num_samples, 0)
  pmask = np.repeat(PROMPT_MASK, num_samples, 0)
  tokens = np.concatenate([prompts, completion], 1)
  mask = np.concatenate([pmask, completion_mask], 1)
  logits = np.asarray(_forward(config, params, jnp.asarray(tokens), jnp.asarray(mask)),
                      np.float64)
  p = PROMPTS.shape[1]
  return logits[:, p - 1:p - 1 + completion.shape[1]]


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_logprobs_match_fresh_forward(llama):
  config, params = llama
  g, n, temperature = 3, 12, 0.7
  out = sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(3),
                          max_new_tokens=n, num_samples=g, temperature=temperature,
                          stop_tokens=(5, 9), prefix_tokens=[[40, 41], [42, -1], [-1, -1]])
  tokens, mask = np.asarray(out.tokens), np.asarray(out.mask)
  assert mask.shape == (len(PROMPTS) * g, n) and mask[:, 0].all()
  logits = _fresh_logits(config, params, tokens, mask.astype(np.int32), g)
  picked = lambda lp: np.take_along_axis(lp, tokens[..., None], -1)[..., 0]
  model_lp = picked(_log_softmax(logits))
  np.testing.assert_allclose(np.asarray(out.logprobs)[mask], model_lp[mask], atol=1e-4)
  # No filters: the sampling distribution is softmax(logits / T); forced tokens have log q = 0.
  forced = np.asarray(out.forced)
  sample_lp = np.where(forced, 0.0, picked(_log_softmax(logits / temperature)))
  np.testing.assert_allclose(np.asarray(out.sampling_logprobs)[mask], sample_lp[mask], atol=1e-4)
  # At temperature T, unfiltered, forced tokens included: what a trainer at T recomputes.
  temperature_lp = picked(_log_softmax(logits / temperature))
  np.testing.assert_allclose(np.asarray(out.temperature_logprobs)[mask], temperature_lp[mask],
                             atol=1e-4)
  np.testing.assert_array_equal(np.asarray(out.logprobs)[~mask], 0.0)
  np.testing.assert_array_equal(np.asarray(out.temperature_logprobs)[~mask], 0.0)
  # Forced prefixes are emitted as given and flagged, per prompt for all its samples.
  expected_forced = np.zeros((len(PROMPTS) * g, n), bool)
  expected_forced[:g, :2] = True
  expected_forced[g:2 * g, :1] = True
  np.testing.assert_array_equal(forced, expected_forced & mask)
  np.testing.assert_array_equal(tokens[:g, :2], [[40, 41]] * g)
  np.testing.assert_array_equal(tokens[g:2 * g, 0], 42)
  np.testing.assert_array_equal(np.asarray(out.prompt_index), np.repeat(np.arange(3), g))
  # After a stop token: padding, mask off.
  for r in range(len(tokens)):
    stops = np.flatnonzero(np.isin(tokens[r], (5, 9)) & ~forced[r])
    if stops.size:
      assert int(out.lengths[r]) == stops[0] + 1
      assert (tokens[r, stops[0] + 1:] == config.pad_token_id).all()


def test_logprobs_match_fresh_forward_qwen3():
  # Qwen3's per-head q/k RMSNorm goes through the decode step too (random preset weights).
  config = models.get_preset("tiny-qwen3", pad_token_id=PAD)
  params = models.init_params(config, jax.random.key(4))
  params = jax.tree.map(lambda x: x * 5.0 if x.ndim > 2 else x, params)  # less uniform logits
  out = sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(5),
                          max_new_tokens=9, num_samples=2, top_k=20, top_p=0.9)
  tokens, mask = np.asarray(out.tokens), np.asarray(out.mask)
  assert mask.all()
  logits = _fresh_logits(config, params, tokens, mask.astype(np.int32), 2)
  model_lp = np.take_along_axis(_log_softmax(logits), tokens[..., None], -1)[..., 0]
  np.testing.assert_allclose(np.asarray(out.logprobs), model_lp, atol=1e-4)
  # Filters only remove mass, so log q >= log p at temperature 1, strictly when mass was cut.
  assert (np.asarray(out.sampling_logprobs) >= np.asarray(out.logprobs) - 1e-5).all()
  # Temperature 1: the unfiltered temperature log-probs are the model's.
  np.testing.assert_array_equal(np.asarray(out.temperature_logprobs), np.asarray(out.logprobs))


def test_forced_prefix_then_greedy_equals_extended_prompt(llama):
  config, params = llama
  prefix = np.array([[40, 41, 42]] * 3, np.int32)
  out = sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(0),
                          max_new_tokens=8, temperature=0.0, prefix_tokens=prefix)
  # Reference: greedy decoding step by step with a full forward over the extended prompt
  # (right-padded to a fixed width, so one compilation serves every step).
  p = PROMPTS.shape[1] + prefix.shape[1]
  tokens = np.concatenate([PROMPTS, prefix, np.zeros((3, 5), np.int32)], 1)
  mask = np.concatenate([PROMPT_MASK, np.ones_like(prefix), np.zeros((3, 5), np.int32)], 1)
  for i in range(5):
    logits = _forward(config, params, jnp.asarray(tokens), jnp.asarray(mask))
    tokens[:, p + i] = np.asarray(jnp.argmax(logits[:, p + i - 1], -1))
    mask[:, p + i] = 1
  np.testing.assert_array_equal(np.asarray(out.tokens), tokens[:, PROMPTS.shape[1]:])
  np.testing.assert_array_equal(np.asarray(out.forced), np.arange(8)[None].repeat(3, 0) < 3)


def test_prefill_runs_once_per_prompt_and_decode_uses_the_model_blocks(llama, monkeypatch):
  config, params = llama
  calls = []

  def recording(fn):
    def wrapped(*args, **kwargs):
      calls.append(tuple(args[2].shape))  # tokens
      return fn(*args, **kwargs)
    return wrapped

  monkeypatch.setattr(sampler_lib, "forward_with_cache", recording(sampler_lib.forward_with_cache))
  sampler_lib._prefill.clear_cache()  # force a fresh trace of both compiled pieces
  sampler_lib._decode.clear_cache()
  g = 4
  out = sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(0),
                          max_new_tokens=6, num_samples=g, temperature=0.0)
  # Traced program: one prefill over the B=3 prompts (bucketed width 16), then the decode
  # step (the while-loop body) over the B*G=12 rows, one token each, through the same
  # `models.forward_with_cache`. Nothing runs the prompt per sample.
  assert calls == [(3, 16), (12, 1)], calls
  jax.block_until_ready(out)
  # The G greedy samples of a prompt are identical (they share the one prefilled cache).
  tokens = np.asarray(out.tokens).reshape(3, g, -1)
  assert (tokens == tokens[:, :1]).all()
  # A second call with new prompts of a nearby width reuses both compilations.
  calls.clear()
  sampling.generate(config, params, PROMPTS[:, 1:], PROMPT_MASK[:, 1:], jax.random.key(1),
                    max_new_tokens=6, num_samples=g, temperature=0.0)
  assert calls == []


def test_new_sampling_settings_reuse_one_compilation(llama):
  config, params = llama
  sampler_lib._decode.clear_cache()
  settings = [dict(temperature=0.7, top_p=0.9), dict(temperature=1.3, top_p=0.5),
              dict(temperature=1.0, top_k=5, min_p=0.1), dict(temperature=0.0),
              dict(temperature=0.5, top_k=2, top_p=0.8, min_p=0.05)]
  outs = []
  for kw in settings:
    outs.append(sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(2),
                                  max_new_tokens=5, num_samples=2, **kw))
    assert sampler_lib._decode._cache_size() == 1, kw
  # The settings did reach the traced loop: greedy samples agree within each prompt...
  greedy = np.asarray(outs[3].tokens).reshape(3, 2, -1)
  assert (greedy == greedy[:, :1]).all()
  np.testing.assert_array_equal(np.asarray(outs[3].sampling_logprobs), 0.0)
  # ... and top_k = 2 reached it: every drawn token is one of the model's two most likely
  # at its step (a fresh forward's logits rank it 0 or 1).
  out = outs[4]
  tokens, mask = np.asarray(out.tokens), np.asarray(out.mask)
  logits = _fresh_logits(config, params, tokens, mask.astype(np.int32), 2)
  rank = (logits > np.take_along_axis(logits, tokens[..., None], -1)).sum(-1)
  assert (rank[mask] < 2).all(), rank


def test_decode_phases_give_the_same_completions(llama):
  """The phased loop (growing caches) equals the one-loop sampler token for token, with
  stops and forced prefixes: 3 uneven phases (4 + 3 + 3 steps) with the shared step
  keys, and 10 phases of one step each with per-row key streams (sample_chunk)."""
  config, params = llama
  kw = dict(max_new_tokens=10, num_samples=2, temperature=0.9, top_p=0.9,
            stop_tokens=(5, 9), prefix_tokens=[[40, 41], [42, -1], [-1, -1]])
  for chunk, phases in ((None, 3), (1, 10)):
    ref = sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(7),
                            sample_chunk=chunk, decode_phases=1, **kw)
    out = sampling.generate(config, params, PROMPTS, PROMPT_MASK, jax.random.key(7),
                            sample_chunk=chunk, decode_phases=phases, **kw)
    np.testing.assert_array_equal(np.asarray(out.tokens), np.asarray(ref.tokens))
    np.testing.assert_array_equal(np.asarray(out.mask), np.asarray(ref.mask))
    for field in ("logprobs", "sampling_logprobs", "temperature_logprobs"):
      np.testing.assert_allclose(np.asarray(getattr(out, field)),
                                 np.asarray(getattr(ref, field)), atol=1e-6)
  assert np.asarray(ref.mask).sum() > 0 and not np.asarray(ref.mask).all()  # a stop happened


def test_decode_phase_count_and_ends():
  big, small = sampler_lib.PHASED_DECODE_MIN_CACHE_BYTES, 1 << 20
  assert sampler_lib.decode_phase_count(None, cache_bytes=big, max_new_tokens=64) == 4
  assert sampler_lib.decode_phase_count(None, cache_bytes=big, max_new_tokens=63) == 1
  assert sampler_lib.decode_phase_count(None, cache_bytes=small, max_new_tokens=512) == 1
  assert sampler_lib.decode_phase_count(3, cache_bytes=small, max_new_tokens=8) == 3
  assert sampler_lib.decode_phase_ends(128, 4) == (32, 64, 96, 128)
  assert sampler_lib.decode_phase_ends(5, 4) == (2, 3, 4, 5)
  assert sampler_lib.decode_phase_ends(3, 8) == (1, 2, 3)  # at most one phase a step


def test_bucket_length():
  assert [sampling.bucket_length(n) for n in (1, 16, 17, 64, 65)] == [16, 16, 32, 64, 128]


@pytest.mark.parametrize("kwargs, match", [
    (dict(prompt_tokens=np.ones((1, 120), np.int32)), "max_position_embeddings"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.01), "top_p"),
    (dict(prompt_tokens=np.zeros((0, 4), np.int32)), "empty batch"),
    (dict(stop_tokens=(64,)), "stop token"),
    (dict(stop_tokens=(-1,)), "stop token"),
    (dict(prompt_tokens=np.full((2, 4), 64, np.int32)), "vocab_size"),
    (dict(prompt_mask=np.zeros((2, 4), np.int32)), "at least one real token"),
    (dict(prompt_mask=np.array([[1, 1, 0, 0], [1, 1, 1, 1]])), "left-padded"),
    (dict(prompt_mask=np.ones((2, 3), np.int32)), "prompt_mask"),
    (dict(max_new_tokens=0), "max_new_tokens"),
    (dict(num_samples=0), "num_samples"),
    (dict(prefix_tokens=np.array([[-1, 3], [1, 2]])), "prefix"),
    (dict(prefix_tokens=np.ones((3, 2), np.int32)), "prefix_tokens"),
    (dict(decode_phases=0), "decode_phases must be an int >= 1 or None"),
    (dict(decode_phases=2.0), "decode_phases must be an int >= 1 or None"),
])
def test_bad_input_raises(llama, kwargs, match):
  config, params = llama
  args = dict(prompt_tokens=np.ones((2, 4), np.int32), prompt_mask=None, max_new_tokens=10)
  args.update(kwargs)
  if args["prompt_mask"] is None:
    args["prompt_mask"] = np.ones(args["prompt_tokens"].shape, np.int32)
  with pytest.raises(ValueError, match=match):
    sampling.generate(config, params, args.pop("prompt_tokens"), args.pop("prompt_mask"),
                      jax.random.key(0), **args)


_MESH_SCRIPT = r"""
import jax, numpy as np
from jaxrl_llm import models, sampling, sharding
assert jax.device_count() == 8, jax.devices()
config = models.get_preset("tiny-llama")
params = models.init_params(config, jax.random.key(0))
params = jax.tree.map(lambda x: x * 10.0 if x.ndim > 1 else x, params)  # avoid argmax ties
prompts = np.array([[0, 0, 3, 4, 5], [6, 7, 8, 9, 10]], np.int32)
mask = (prompts > 0).astype(np.int32)
kw = dict(max_new_tokens=6, num_samples=2, temperature=0.0)
ref = sampling.generate(config, params, prompts, mask, jax.random.key(0), **kw)
mesh = sharding.make_mesh(data=4, fsdp=1, tensor=2)
sharded = sharding.shard_params(params, config, mesh, sharding.SAMPLING_RULES)
spec = sharded["layers"]["attn"]["k_kernel"].sharding.spec
assert "tensor" in str(spec), spec
out = sampling.generate(config, sharded, prompts, mask, jax.random.key(0), mesh=mesh,
                        rules=sharding.SAMPLING_RULES, **kw)
assert len(out.tokens.sharding.device_set) == 8, out.tokens.sharding
np.testing.assert_array_equal(np.asarray(out.tokens), np.asarray(ref.tokens))
np.testing.assert_allclose(np.asarray(out.logprobs), np.asarray(ref.logprobs), atol=1e-5)
print("MESH_OK")
"""


def test_generate_under_sampling_mesh(run_on_8_devices):
  run_on_8_devices(_MESH_SCRIPT, "MESH_OK", "mesh_script")
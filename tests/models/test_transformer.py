"""Logits parity with transformers, RoPE scaling, KV-cache consistency, input errors."""

import dataclasses

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxrl_llm import models

# A left-padded batch: row 0 has 3 pads, row 1 none, row 2 one.
TOKENS = np.array([[0, 0, 0, 5, 6, 7, 8, 9, 10, 11],
                   [3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
                   [0, 13, 14, 15, 16, 17, 18, 19, 20, 21]], np.int32)
MASK = (np.arange(10)[None] >= np.array([[3], [0], [1]])).astype(np.int32)


def _hf_logits(model, tokens, mask):
  import torch
  positions = np.clip(np.cumsum(mask, 1) - 1, 0, None)
  with torch.no_grad():
    return model(input_ids=torch.tensor(tokens, dtype=torch.long),
                 attention_mask=torch.tensor(mask, dtype=torch.long),
                 position_ids=torch.tensor(positions, dtype=torch.long)).logits.numpy()


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_logits_match_transformers(hf_checkpoints, family):
  from transformers import AutoModelForCausalLM
  hf_model = AutoModelForCausalLM.from_pretrained(hf_checkpoints[family]).eval()
  config, params = models.load_hf(hf_checkpoints[family])
  assert config.family == family
  expected = _hf_logits(hf_model, TOKENS, MASK)
  got = np.asarray(models.forward(config, params, TOKENS, MASK))
  valid = MASK.astype(bool)
  err = np.abs(got - expected)[valid].max()
  assert err <= 1e-4, f"{family}: max-abs logit error {err}"
  # The logits are far from trivial (std 0.2 weights): a wrong layer would show.
  assert expected[valid].std() > 0.1


def test_family_specific_parameters(hf_checkpoints):
  llama, _ = models.load_hf(hf_checkpoints["llama"])
  qwen2, p2 = models.load_hf(hf_checkpoints["qwen2"])
  qwen3, p3 = models.load_hf(hf_checkpoints["qwen3"])
  assert not llama.tie_word_embeddings and llama.num_kv_heads == 2 and llama.num_heads == 4
  assert llama.rope_scaling is not None and llama.rope_scaling.rope_type == "llama3"
  assert qwen2.tie_word_embeddings and "lm_head" not in p2 and "q_bias" in p2["layers"]["attn"]
  assert "q_norm" in p3["layers"]["attn"] and p3["layers"]["attn"]["q_norm"]["scale"].shape == (2, 16)


def test_llama3_rope_frequencies_match_transformers():
  from transformers import LlamaConfig
  from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
  scaling = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
             "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
  hf_cfg = LlamaConfig(hidden_size=2048, num_attention_heads=32, head_dim=64,
                       rope_theta=500000.0, rope_scaling=scaling)
  expected, _ = ROPE_INIT_FUNCTIONS["llama3"](hf_cfg, "cpu")
  config = models.get_preset("llama-3.2-1b")
  np.testing.assert_allclose(models.transformer.rope_inv_freq(config), expected.numpy(), rtol=1e-6)


def test_hidden_states_times_unembed_is_forward():
  config = models.get_preset("tiny-qwen2")  # tied: the head is the embedding transposed
  params = models.init_params(config, jax.random.key(1))
  h = models.hidden_states(config, params, TOKENS, MASK)
  w = models.unembed_weight(config, params)
  assert h.shape == (3, 10, config.hidden_size) and w.shape == (config.hidden_size, config.vocab_size)
  np.testing.assert_array_equal(np.asarray(w), np.asarray(params["embedding"]).T)
  np.testing.assert_allclose(np.asarray(h @ w), np.asarray(models.forward(config, params, TOKENS, MASK)),
                             atol=1e-5)


def test_kv_cache_prefill_then_decode_matches_full_forward():
  config = models.get_preset("tiny-qwen3")
  params = models.init_params(config, jax.random.key(2))
  full = models.hidden_states(config, params, TOKENS, MASK)
  positions = models.default_positions(jnp.asarray(MASK))
  cache = models.init_cache(config, 3, 16)
  kv_mask = jnp.zeros((3, 16), jnp.int32).at[:, :10].set(MASK)
  # Prefill the first 7 tokens, then feed the remaining 3 one at a time.
  h, cache = models.forward_with_cache(config, params, TOKENS[:, :7], positions[:, :7], kv_mask,
                                       cache, 0)
  steps = [h]
  for t in range(7, 10):
    h, cache = models.forward_with_cache(config, params, TOKENS[:, t:t + 1], positions[:, t:t + 1],
                                         kv_mask, cache, t)
    steps.append(h)
  incremental = jnp.concatenate(steps, axis=1)
  valid = MASK.astype(bool)
  np.testing.assert_allclose(np.asarray(incremental)[valid], np.asarray(full)[valid], atol=1e-5)


def test_bfloat16_params_run_and_stay_close():
  config = models.get_preset("tiny-llama")
  params = models.init_params(config, jax.random.key(3))
  p16 = jax.tree.map(lambda x: x.astype(jnp.bfloat16), params)
  ref = models.forward(config, params, TOKENS, MASK)
  got = models.forward(config, p16, TOKENS, MASK)
  assert got.dtype == jnp.float32
  valid = MASK.astype(bool)
  assert float(jnp.abs(got - ref)[valid].max()) < 0.05


def test_tokens_out_of_vocab_is_a_clear_error():
  config = models.get_preset("tiny-llama")
  params = models.init_params(config, jax.random.key(0))
  with pytest.raises(ValueError, match=r"vocab_size=64"):
    models.forward(config, params, np.array([[1, 2, 64]]))
  with pytest.raises(ValueError, match=r"\[batch, length\]"):
    models.forward(config, params, np.array([1, 2, 3]))
  with pytest.raises(ValueError, match="attention_mask has shape"):
    models.forward(config, params, np.array([[1, 2, 3]]), np.ones((1, 4)))


def test_jit_and_grad_through_forward():
  config = models.get_preset("tiny-llama", remat=True)
  params = models.init_params(config, jax.random.key(0))

  @jax.jit
  def loss(p):
    logits = models.forward(config, p, TOKENS, MASK)
    return jnp.mean(jax.nn.log_softmax(logits)[..., 0])

  grads = jax.grad(loss)(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads["layers"]["mlp"]["up_kernel"]).sum()) > 0


def test_scanned_and_unrolled_layers_agree_in_value_and_gradient():
  # scan_layers only changes how the one block function is looped over the stacked weights.
  scanned = models.get_preset("tiny-qwen3", remat=True)
  unrolled = models.get_preset("tiny-qwen3", remat=True, scan_layers=False)
  params = models.init_params(scanned, jax.random.key(5))
  params = jax.tree.map(lambda x: x * 5.0 if x.ndim > 2 else x, params)

  def loss(config, p):
    logp = jax.nn.log_softmax(models.forward(config, p, TOKENS, MASK))
    return jnp.sum(jnp.take_along_axis(logp[:, :-1], TOKENS[:, 1:, None], -1)[..., 0] * MASK[:, 1:])

  (a, ga), (b, gb) = (jax.value_and_grad(loss, argnums=1)(c, params) for c in (scanned, unrolled))
  np.testing.assert_allclose(float(a), float(b), rtol=1e-5)
  jax.tree.map(lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-4,
                                                       rtol=1e-4), ga, gb)
  assert float(jnp.abs(ga["layers"]["attn"]["q_norm"]["scale"]).sum()) > 0


def test_kv_cache_is_per_layer_buffers_heads_before_slots_keys_transposed():
  config = models.get_preset("tiny-llama")
  cache = models.init_cache(config, 3, 16)
  assert len(cache.k) == len(cache.v) == config.num_layers
  assert cache.k[0].shape == (3, config.num_kv_heads, config.head_dim, 16)
  assert cache.v[0].shape == (3, config.num_kv_heads, 16, config.head_dim)
  assert len(models.K_CACHE_AXES) == cache.k[0].ndim == len(models.V_CACHE_AXES)


def test_default_layer_loop_unrolls_shallow_models_and_scans_deep_ones():
  def uses_scan(config):
    params = jax.eval_shape(lambda k: models.init_params(config, k), jax.random.key(0))
    jaxpr = jax.make_jaxpr(lambda p: models.forward(config, p, TOKENS, MASK))(params)
    return "scan" in str(jaxpr)

  shallow = models.get_preset("tiny-llama")
  assert shallow.scan_layers is None and shallow.num_layers <= models.config.UNROLL_MAX_LAYERS
  assert not shallow.scans_layers and not uses_scan(shallow)
  deep = dataclasses.replace(shallow, num_layers=models.config.UNROLL_MAX_LAYERS + 1)
  assert deep.scans_layers and uses_scan(deep)
  assert dataclasses.replace(shallow, scan_layers=True).scans_layers
  assert not dataclasses.replace(deep, scan_layers=False).scans_layers


@pytest.mark.parametrize("preset,overrides", [
    ("tiny-llama", {}), ("tiny-qwen2", {}), ("tiny-qwen3", {"remat": True}),
    ("tiny-qwen3", {"remat": True, "scan_layers": False})])
def test_shared_prompt_hidden_states_equal_the_forward_of_the_repeated_prompts(preset, overrides):
  """Each prompt's layers once for its G completions == `hidden_states` of the G-times
  repeated prompt ++ completion, in value and in gradient (left-padded prompts, completions
  that end early, one empty completion)."""
  config = models.get_preset(preset, **overrides)
  params = models.init_params(config, jax.random.key(3))
  params = jax.tree.map(lambda x: x * 4.0 if x.ndim > 2 else x, params)  # non-trivial attention
  g, n = 3, 6
  prompts, prompt_mask = TOKENS[:, :7], MASK[:, :7]  # rows with 3, 0 and 1 pads
  rng = np.random.default_rng(0)
  completions = rng.integers(1, config.vocab_size, (3 * g, n)).astype(np.int32)
  lengths = np.array([6, 2, 6, 0, 5, 6, 1, 6, 3])
  completion_mask = (np.arange(n)[None] < lengths[:, None]).astype(np.int32)
  tokens = np.concatenate([np.repeat(prompts, g, 0), completions], 1)
  mask = np.concatenate([np.repeat(prompt_mask, g, 0), completion_mask], 1)
  weights = rng.normal(size=(3 * g, 7 + n, config.hidden_size)).astype(np.float32)

  def shared_loss(p):
    hp, hc = models.shared_prompt_hidden_states(config, p, prompts, prompt_mask, completions,
                                                completion_mask)
    h = jnp.concatenate([jnp.repeat(hp, g, 0), hc], 1)
    return jnp.sum(h * weights * mask[..., None]), h

  def full_loss(p):
    h = models.hidden_states(config, p, tokens, mask)
    return jnp.sum(h * weights * mask[..., None]), h

  (a, h_shared), ga = jax.jit(jax.value_and_grad(shared_loss, has_aux=True))(params)
  (b, h_full), gb = jax.jit(jax.value_and_grad(full_loss, has_aux=True))(params)
  valid = mask.astype(bool)
  np.testing.assert_allclose(np.asarray(h_shared)[valid], np.asarray(h_full)[valid], atol=2e-5)
  np.testing.assert_allclose(float(a), float(b), rtol=1e-5)
  # Per parameter: the gradients agree to 1e-5 of that parameter's largest gradient entry
  # (float32 sums in another order; the gradients here reach ~1e2).
  for x, y in zip(jax.tree.leaves(ga), jax.tree.leaves(gb)):
    x, y = np.asarray(x), np.asarray(y)
    assert np.abs(x - y).max() <= 1e-5 * np.abs(y).max() + 1e-6, (np.abs(x - y).max(),
                                                                 np.abs(y).max())
  assert float(jnp.abs(ga["layers"]["attn"]["k_kernel"]).sum()) > 0


def test_shared_prompt_hidden_states_need_whole_groups():
  config = models.get_preset("tiny-llama")
  params = models.init_params(config, jax.random.key(0))
  with pytest.raises(ValueError, match="not a multiple of the 3 prompt rows"):
    models.shared_prompt_hidden_states(config, params, TOKENS, MASK, TOKENS[:2, :4],
                                       MASK[:2, :4])

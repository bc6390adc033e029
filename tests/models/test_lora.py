"""models.lora: identity at init, merge = W + s·A·B (NumPy transcription), merged ==
unmerged forward, gradients reach only the adapters, merged export reloads in
transformers with the adapted model's logits, config errors name the option."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jaxrl_llm import models
from jaxrl_llm.models import lora

TOKENS = np.array([[0, 0, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6]], np.int32)
MASK = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], np.int32)
# Jitted: eager op-by-op dispatch made each test take ~10 s on the shared 2-core CPU.
_forward = jax.jit(models.forward, static_argnums=0)


def _model(preset="tiny-qwen2"):
  config = models.get_preset(preset)
  return config, models.init_params(config, jax.random.key(0))


def _nonzero_b(adapters, key, std=0.3):
  """Adapters with B ~ N(0, std) (B = 0 at init would hide every error in B's use)."""
  leaves, treedef = jax.tree.flatten(adapters)
  keys = jax.random.split(key, len(leaves))
  paths = [p for p, _ in jax.tree.leaves_with_path(adapters)]
  out = [std * jax.random.normal(k, x.shape, x.dtype) if p[-1].key == "b" else x
         for p, k, x in zip(paths, keys, leaves)]
  return jax.tree.unflatten(treedef, out)


def test_adapted_model_equals_base_at_init():
  config, params = _model()
  lp = lora.wrap(lora.LoraConfig(rank=4, alpha=8.0), params, jax.random.key(1))
  base = np.asarray(_forward(config, params, TOKENS, MASK))
  for merged in (False, True):
    out = _forward(config, lora.model_params(lp, merged=merged), TOKENS, MASK)
    np.testing.assert_array_equal(np.asarray(out), base)
  # A is random (N(0, 1/d_in)), B is zero.
  a = np.asarray(lp.adapters["attn"]["q"]["a"])
  assert a.shape == (config.num_layers, config.hidden_size, 4)
  assert 0.5 / np.sqrt(config.hidden_size) < a.std() < 1.5 / np.sqrt(config.hidden_size)
  assert not np.any(np.asarray(lp.adapters["mlp"]["down"]["b"]))


def test_merge_equals_w_plus_scaled_a_b():
  config, params = _model("tiny-llama")
  cfg = lora.LoraConfig(rank=3, alpha=6.0, targets=("q", "o", "down"))
  adapters = _nonzero_b(lora.init(cfg, params, jax.random.key(2)), jax.random.key(3))
  merged = lora.merge(params, adapters, cfg.scale)
  s = 6.0 / 3
  lay, new = params["layers"], merged["layers"]
  for l in range(config.num_layers):
    for group, name, key in (("attn", "q", "q_kernel"), ("attn", "o", "o_kernel"),
                             ("mlp", "down", "down_kernel")):
      w = np.asarray(lay[group][key][l], np.float64)
      a = np.asarray(adapters[group][name]["a"][l], np.float64)
      b = np.asarray(adapters[group][name]["b"][l], np.float64)
      if name == "o":   # W [H, Dh, D], A [H, Dh, r], B [r, D]
        want = w + s * np.einsum("hdr,re->hde", a, b)
      elif name == "q":  # W [D, H, Dh], A [D, r], B [r, H, Dh]
        want = w + s * np.einsum("dr,rhe->dhe", a, b)
      else:              # W [I, D], A [I, r], B [r, D]
        want = w + s * a @ b
      np.testing.assert_allclose(np.asarray(new[group][key][l]), want, atol=1e-6, rtol=1e-6)
  # Untargeted kernels and everything else are unchanged (the same arrays).
  assert new["attn"]["k_kernel"] is lay["attn"]["k_kernel"]
  assert new["mlp"]["up_kernel"] is lay["mlp"]["up_kernel"]
  assert merged["embedding"] is params["embedding"]


@pytest.mark.parametrize("preset", ["tiny-llama", "tiny-qwen2", "tiny-qwen3"])
def test_unmerged_forward_equals_merged_forward(preset):
  config, params = _model(preset)
  cfg = lora.LoraConfig(rank=2, alpha=4.0)
  adapters = _nonzero_b(lora.init(cfg, params, jax.random.key(4)), jax.random.key(5))
  lp = lora.LoraParams(params, adapters, cfg.scale)
  base = np.asarray(_forward(config, params, TOKENS, MASK))
  m = np.asarray(_forward(config, lora.model_params(lp, merged=True), TOKENS, MASK))
  u = np.asarray(_forward(config, lora.model_params(lp), TOKENS, MASK))
  np.testing.assert_allclose(u, m, atol=1e-5)
  assert np.abs(m - base).max() > 1e-2  # the adapters do change the model


def _nll(config, model_params):
  logits = _forward(config, model_params, TOKENS, MASK)
  lp = jax.nn.log_softmax(logits[:, :-1], -1)
  picked = jnp.take_along_axis(lp, TOKENS[:, 1:, None], -1)[..., 0]
  return -jnp.sum(picked * MASK[:, 1:]) / jnp.sum(MASK[:, 1:])


def test_gradient_reaches_only_the_adapters():
  config, params = _model()
  cfg = lora.LoraConfig(rank=2, alpha=2.0, targets=("v", "up"))
  lp = lora.LoraParams(params, _nonzero_b(lora.init(cfg, params, jax.random.key(6)),
                                          jax.random.key(7)), cfg.scale)
  # Differentiating the whole LoraParams: the base gets exactly zero (stop_gradient).
  g = jax.jit(jax.grad(lambda p: _nll(config, lora.model_params(p))))(lp)
  assert all(not np.any(np.asarray(x)) for x in jax.tree.leaves(g.base))
  assert all(np.abs(np.asarray(x)).max() > 0 for x in jax.tree.leaves(g.adapters))
  # The trainable tree is the adapters; its gradient (unmerged path) equals the merged path's.
  gu = jax.jit(jax.grad(lambda a: _nll(config, lora.model_params(lp, a))))(lora.trainable(lp))
  gm = jax.jit(jax.grad(lambda a: _nll(config, lora.model_params(lp, a, merged=True))))(
      lp.adapters)
  assert jax.tree.structure(gu) == jax.tree.structure(lp.adapters)
  assert set(gu) == {"attn", "mlp"} and set(gu["attn"]) == {"v"} and set(gu["mlp"]) == {"up"}
  for x, y in zip(jax.tree.leaves(gu), jax.tree.leaves(gm)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5, rtol=1e-4)


def test_without_lora_the_helpers_are_the_identity():
  _, params = _model()
  assert lora.trainable(params) is params
  assert lora.model_params(params) is params
  assert lora.merged(params) is params and lora.base_params(params) is params
  other = {"x": 1}
  assert lora.replace_trainable(params, other) is other
  assert lora.model_params(params, other) is other


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_merged_export_loads_in_transformers_with_adapted_logits(hf_checkpoints, family,
                                                                 tmp_path):
  import torch
  from transformers import AutoModelForCausalLM
  config, params = models.load_hf(hf_checkpoints[family])
  cfg = lora.LoraConfig(rank=4, alpha=8.0)
  lp = lora.LoraParams(params, _nonzero_b(lora.init(cfg, params, jax.random.key(8)),
                                          jax.random.key(9), std=0.1), cfg.scale)
  adapted = np.asarray(_forward(config, lora.model_params(lp), TOKENS, MASK))  # unmerged
  base = np.asarray(_forward(config, params, TOKENS, MASK))
  assert np.abs(adapted - base)[MASK.astype(bool)].max() > 1e-2
  out = models.save_hf(tmp_path / "export", config, lora.merged(lp))
  reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
  positions = np.clip(np.cumsum(MASK, 1) - 1, 0, None)
  with torch.no_grad():
    hf_logits = reloaded(input_ids=torch.tensor(TOKENS, dtype=torch.long),
                         attention_mask=torch.tensor(MASK, dtype=torch.long),
                         position_ids=torch.tensor(positions, dtype=torch.long)).logits.numpy()
  assert np.abs(hf_logits - adapted)[MASK.astype(bool)].max() <= 1e-4


@pytest.mark.parametrize("kwargs,message", [
    (dict(rank=0, alpha=1.0), "lora.rank must be an int >= 1, got 0"),
    (dict(rank=2.5, alpha=1.0), "lora.rank must be an int >= 1"),
    (dict(rank=2, alpha=0.0), "lora.alpha must be a number > 0, got 0.0"),
    (dict(rank=2, alpha=1.0, targets=("q", "wq")), "lora.targets must be distinct names from "
                                                    "q, k, v, o, gate, up, down"),
    (dict(rank=2, alpha=1.0, targets=()), "lora.targets must be distinct"),
    (dict(rank=2, alpha=1.0, targets=("q", "q")), "lora.targets must be distinct"),
])
def test_bad_lora_config_names_the_option(kwargs, message):
  with pytest.raises(ValueError, match=message):
    lora.LoraConfig(**kwargs)


def test_from_config_block():
  assert lora.from_config(None) is None
  assert lora.from_config({"rank": 0, "alpha": 16.0}) is None
  c = lora.from_config({"rank": 4, "alpha": 16.0, "targets": "q, v"})
  assert c == lora.LoraConfig(4, 16.0, ("q", "v")) and c.scale == 4.0
  with pytest.raises(ValueError, match=r"unknown lora options \['dropout'\]"):
    lora.from_config({"rank": 4, "dropout": 0.1})


def test_misshaped_adapter_is_a_named_error():
  _, params = _model()
  adapters = lora.init(lora.LoraConfig(rank=2, alpha=2.0, targets=("q",)), params,
                       jax.random.key(0))
  adapters["attn"]["q"]["b"] = adapters["attn"]["q"]["b"][..., :1]
  with pytest.raises(ValueError, match="LoRA adapter attn/q"):
    lora.merge(params, adapters, 1.0)

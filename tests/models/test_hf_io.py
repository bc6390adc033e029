"""Hugging Face checkpoint round trips and loader errors."""

import json
import os
import shutil

import numpy as np
import jax
import jax.numpy as jnp
import pytest
from safetensors.numpy import load_file, save_file

from jaxrl_llm import models

TOKENS = np.array([[0, 0, 5, 6, 7, 8], [1, 2, 3, 4, 5, 6]], np.int32)
MASK = np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]], np.int32)


def _leaves_equal(a, b):
  la, lb = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
  assert [p for p, _ in la] == [p for p, _ in lb]
  for (path, x), (_, y) in zip(la, lb):
    assert x.dtype == y.dtype and x.shape == y.shape, path
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(path))


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_save_hf_loads_in_transformers_with_same_logits(hf_checkpoints, family, tmp_path):
  import torch
  from transformers import AutoModelForCausalLM
  config, params = models.load_hf(hf_checkpoints[family])
  out = models.save_hf(tmp_path / "export", config, params)
  reloaded = AutoModelForCausalLM.from_pretrained(out).eval()
  positions = np.clip(np.cumsum(MASK, 1) - 1, 0, None)
  with torch.no_grad():
    hf_logits = reloaded(input_ids=torch.tensor(TOKENS, dtype=torch.long),
                         attention_mask=torch.tensor(MASK, dtype=torch.long),
                         position_ids=torch.tensor(positions, dtype=torch.long)).logits.numpy()
  ours = np.asarray(models.forward(config, params, TOKENS, MASK))
  assert np.abs(hf_logits - ours)[MASK.astype(bool)].max() <= 1e-4
  # load_hf(save_hf(p)) == p exactly, config included.
  config2, params2 = models.load_hf(out)
  assert config2 == config
  _leaves_equal(params, params2)


def test_sharded_checkpoint_round_trip_and_bf16(tmp_path):
  config = models.get_preset("tiny-qwen3")
  params = models.init_params(config, jax.random.key(4))
  out = models.save_hf(tmp_path / "sharded", config, params, max_shard_bytes=20_000)
  files = sorted(os.listdir(out))
  assert "model.safetensors.index.json" in files
  assert sum(f.endswith(".safetensors") for f in files) > 1
  _, params2 = models.load_hf(out)
  _leaves_equal(params, params2)
  # bf16 export, loaded back as bf16, equals the cast parameters exactly.
  out16 = models.save_hf(tmp_path / "bf16", config, params, dtype=jnp.bfloat16)
  assert json.load(open(os.path.join(out16, "config.json")))["dtype"] == "bfloat16"
  _, p16 = models.load_hf(out16)
  _leaves_equal(jax.tree.map(lambda x: x.astype(jnp.bfloat16), params), p16)
  _, p32 = models.load_hf(out16, dtype=jnp.float32)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(p32))


def test_save_hf_replaces_existing_checkpoint_atomically(tmp_path):
  config = models.get_preset("tiny-llama")
  p1 = models.init_params(config, jax.random.key(1))
  p2 = models.init_params(config, jax.random.key(2))
  path = tmp_path / "ckpt"
  models.save_hf(path, config, p1)
  bad = dict(p2)
  bad["lm_head"] = bad["lm_head"][:, :10]  # wrong shape: the save must fail...
  with pytest.raises(ValueError, match="lm_head"):
    models.save_hf(path, config, bad)
  _, loaded = models.load_hf(path)  # ...and leave the previous checkpoint intact
  _leaves_equal(p1, loaded)
  assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []
  models.save_hf(path, config, p2)
  _, loaded = models.load_hf(path)
  _leaves_equal(p2, loaded)


def _copy(src, dst):
  shutil.copytree(src, dst)
  return str(dst)


def test_missing_config_json(hf_checkpoints, tmp_path):
  path = _copy(hf_checkpoints["llama"], tmp_path / "c")
  os.remove(os.path.join(path, "config.json"))
  with pytest.raises(FileNotFoundError, match="missing config.json"):
    models.load_hf(path)


def test_unsupported_architecture(hf_checkpoints, tmp_path):
  path = _copy(hf_checkpoints["llama"], tmp_path / "c")
  cfg_file = os.path.join(path, "config.json")
  cfg = json.load(open(cfg_file))
  cfg["architectures"] = ["MistralForCausalLM"]
  json.dump(cfg, open(cfg_file, "w"))
  with pytest.raises(ValueError, match="unsupported architectures entry 'MistralForCausalLM'"):
    models.load_hf(path)


def test_missing_and_misshaped_tensors(hf_checkpoints, tmp_path):
  path = _copy(hf_checkpoints["qwen2"], tmp_path / "c")
  weights_file = os.path.join(path, "model.safetensors")
  tensors = load_file(weights_file)
  name = "model.layers.1.self_attn.k_proj.bias"
  missing = {k: v for k, v in tensors.items() if k != name}
  save_file(missing, weights_file)
  with pytest.raises(ValueError, match=r"missing tensor 'model\.layers\.1\.self_attn\.k_proj\.bias'"):
    models.load_hf(path)
  wrong = dict(tensors)
  wrong["model.layers.0.mlp.up_proj.weight"] = np.zeros((63, 32), np.float32)
  save_file(wrong, weights_file)
  with pytest.raises(ValueError, match=r"'model\.layers\.0\.mlp\.up_proj\.weight' has shape "
                                       r"\(63, 32\), expected \(64, 32\)"):
    models.load_hf(path)


def test_missing_weights_and_directory(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    models.load_hf(tmp_path / "nope")
  config = models.get_preset("tiny-llama")
  os.makedirs(tmp_path / "empty")
  json.dump(config.to_hf_dict(), open(tmp_path / "empty" / "config.json", "w"))
  with pytest.raises(FileNotFoundError, match="no model.safetensors"):
    models.load_hf(tmp_path / "empty")


def test_load_hf_places_tensors_with_given_shardings(hf_checkpoints):
  from jaxrl_llm import sharding
  mesh = sharding.make_mesh(data=1, fsdp=4, tensor=2, devices=jax.devices()[:8])
  config, _ = models.load_hf(hf_checkpoints["llama"])
  shardings = sharding.param_shardings(config, mesh)
  _, params = models.load_hf(hf_checkpoints["llama"], shardings=shardings)
  q = params["layers"]["attn"]["q_kernel"]
  assert q.sharding == shardings["layers"]["attn"]["q_kernel"]
  assert q.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor", None)

"""Hugging Face checkpoint import/export (``config.json`` + ``*.safetensors``).

`load_hf` reads a local directory holding a single ``model.safetensors`` or a
sharded set with ``model.safetensors.index.json``; `save_hf` writes one that
``transformers.AutoModelForCausalLM.from_pretrained`` loads. Nothing touches the
network. Tensors are read on the host (NumPy) and, when ``shardings`` is given,
placed directly with their final sharding.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Any, Callable, NamedTuple, Optional

import einops
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from jaxrl_llm.models.config import ModelConfig

log = logging.getLogger(__name__)

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


class _Entry(NamedTuple):
  hf_name: str  # may contain "{i}" for the layer index
  path: tuple[str, ...]  # path in the params pytree
  hf_shape: Callable[[ModelConfig], tuple[int, ...]]
  to_ours: Callable[[np.ndarray, ModelConfig], np.ndarray]
  to_hf: Callable[[np.ndarray, ModelConfig], np.ndarray]


def _linear_in(n_heads_attr: str):
  """torch Linear [heads*Dh, D] <-> ours [D, heads, Dh] (``h k``: head, within-head index)."""
  def hf_shape(c):
    return (getattr(c, n_heads_attr) * c.head_dim, c.hidden_size)
  def to_ours(w, c):
    return einops.rearrange(w, "(h k) d -> d h k", h=getattr(c, n_heads_attr))
  def to_hf(w, c):
    return einops.rearrange(w, "d h k -> (h k) d")
  return hf_shape, to_ours, to_hf


def _bias(n_heads_attr: str):
  """torch bias [heads*Dh] <-> ours [heads, Dh]."""
  def hf_shape(c):
    return (getattr(c, n_heads_attr) * c.head_dim,)
  def to_ours(w, c):
    return einops.rearrange(w, "(h k) -> h k", h=getattr(c, n_heads_attr))
  def to_hf(w, c):
    return einops.rearrange(w, "h k -> (h k)")
  return hf_shape, to_ours, to_hf


def _transpose(shape_fn):
  return shape_fn, (lambda w, c: w.T), (lambda w, c: w.T)


def _same(shape_fn):
  return shape_fn, (lambda w, c: w), (lambda w, c: w)


def _entries(config: ModelConfig) -> list[_Entry]:
  d, f = config.hidden_size, config.intermediate_size
  L = "model.layers.{i}."
  e = [
      _Entry("model.embed_tokens.weight", ("embedding",), *_same(lambda c: (c.vocab_size, d))),
      _Entry("model.norm.weight", ("final_norm", "scale"), *_same(lambda c: (d,))),
      _Entry(L + "input_layernorm.weight", ("layers", "attn_norm", "scale"), *_same(lambda c: (d,))),
      _Entry(L + "post_attention_layernorm.weight", ("layers", "mlp_norm", "scale"),
             *_same(lambda c: (d,))),
      _Entry(L + "self_attn.q_proj.weight", ("layers", "attn", "q_kernel"), *_linear_in("num_heads")),
      _Entry(L + "self_attn.k_proj.weight", ("layers", "attn", "k_kernel"),
             *_linear_in("num_kv_heads")),
      _Entry(L + "self_attn.v_proj.weight", ("layers", "attn", "v_kernel"),
             *_linear_in("num_kv_heads")),
      # torch Linear [D, heads*Dh] <-> ours [heads, Dh, D].
      _Entry(L + "self_attn.o_proj.weight", ("layers", "attn", "o_kernel"),
             lambda c: (d, c.num_heads * c.head_dim),
             lambda w, c: einops.rearrange(w, "d (h k) -> h k d", h=c.num_heads),
             lambda w, c: einops.rearrange(w, "h k d -> d (h k)")),
      _Entry(L + "mlp.gate_proj.weight", ("layers", "mlp", "gate_kernel"), *_transpose(lambda c: (f, d))),
      _Entry(L + "mlp.up_proj.weight", ("layers", "mlp", "up_kernel"), *_transpose(lambda c: (f, d))),
      _Entry(L + "mlp.down_proj.weight", ("layers", "mlp", "down_kernel"), *_transpose(lambda c: (d, f))),
  ]
  if config.qkv_bias:
    e += [
        _Entry(L + "self_attn.q_proj.bias", ("layers", "attn", "q_bias"), *_bias("num_heads")),
        _Entry(L + "self_attn.k_proj.bias", ("layers", "attn", "k_bias"), *_bias("num_kv_heads")),
        _Entry(L + "self_attn.v_proj.bias", ("layers", "attn", "v_bias"), *_bias("num_kv_heads")),
    ]
  if config.qk_norm:
    e += [
        _Entry(L + "self_attn.q_norm.weight", ("layers", "attn", "q_norm", "scale"),
               *_same(lambda c: (c.head_dim,))),
        _Entry(L + "self_attn.k_norm.weight", ("layers", "attn", "k_norm", "scale"),
               *_same(lambda c: (c.head_dim,))),
    ]
  if not config.tie_word_embeddings:
    e.append(_Entry("lm_head.weight", ("lm_head",), *_transpose(lambda c: (c.vocab_size, d))))
  return e


def _set(tree: dict, path: tuple[str, ...], value) -> None:
  for k in path[:-1]:
    tree = tree.setdefault(k, {})
  tree[path[-1]] = value


def _get(tree, path):
  for k in path:
    tree = tree[k]
  return tree


def _tensor_index(path: str) -> dict[str, str]:
  """Maps every tensor name to the safetensors file holding it."""
  index_path = os.path.join(path, INDEX_FILE)
  if os.path.isfile(index_path):
    with open(index_path) as f:
      weight_map = json.load(f).get("weight_map")
    if not isinstance(weight_map, dict):
      raise ValueError(f"{index_path}: missing 'weight_map'")
    files = {os.path.join(path, fn) for fn in weight_map.values()}
    for fn in sorted(files):
      if not os.path.isfile(fn):
        raise FileNotFoundError(f"{index_path} names shard {os.path.basename(fn)}, which is missing")
    return {name: os.path.join(path, fn) for name, fn in weight_map.items()}
  single = os.path.join(path, SINGLE_FILE)
  if os.path.isfile(single):
    with safe_open(single, framework="numpy") as f:
      return {name: single for name in f.keys()}
  raise FileNotFoundError(f"{path}: no {SINGLE_FILE} and no {INDEX_FILE}")


def _np_dtype(dtype):
  return None if dtype is None else np.dtype(jnp.dtype(dtype))


def load_hf(path: str | os.PathLike, dtype=None, shardings=None) -> tuple[ModelConfig, Any]:
  """Loads ``(config, params)`` from a local Hugging Face checkpoint directory.

  Args:
    path: directory with ``config.json`` and safetensors weights.
    dtype: parameter dtype (e.g. ``jnp.bfloat16``); None keeps the stored dtype.
    shardings: optional pytree of `jax.sharding.Sharding` (same structure as the
      params, e.g. from `jaxrl_llm.sharding.param_shardings`) to place each
      tensor with as soon as it is read.
  """
  path = os.fspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(f"checkpoint directory {path} does not exist")
  config = ModelConfig.from_hf_config_file(path)
  index = _tensor_index(path)
  np_dtype = _np_dtype(dtype)
  handles: dict[str, Any] = {}
  params: dict = {}
  used = set()
  try:
    def read(name):
      if name not in index:
        raise ValueError(f"checkpoint {path} is missing tensor {name!r}")
      fn = index[name]
      if fn not in handles:
        handles[fn] = safe_open(fn, framework="numpy").__enter__()
      used.add(name)
      return handles[fn].get_tensor(name)

    for entry in _entries(config):
      expected = tuple(entry.hf_shape(config))
      names = ([entry.hf_name.format(i=i) for i in range(config.num_layers)]
               if "{i}" in entry.hf_name else [entry.hf_name])
      arrays = []
      for name in names:
        w = read(name)
        if tuple(w.shape) != expected:
          raise ValueError(
              f"tensor {name!r} has shape {tuple(w.shape)}, expected {expected} for this config")
        w = entry.to_ours(w, config)
        arrays.append(w.astype(np_dtype) if np_dtype is not None else w)
      value = np.stack(arrays) if "{i}" in entry.hf_name else arrays[0]
      if shardings is not None:
        value = jax.device_put(value, _get(shardings, entry.path))
      else:
        value = jnp.asarray(value)
      _set(params, entry.path, value)
  finally:
    for h in handles.values():
      h.__exit__(None, None, None)
  unused = sorted(set(index) - used - {"lm_head.weight"})
  if unused:
    log.warning("load_hf: %d tensors in %s were not used, e.g. %s", len(unused), path, unused[:3])
  return config, params


def _dtype_name(dtype: np.dtype) -> str:
  return {np.dtype(np.float32): "float32", np.dtype(ml_dtypes.bfloat16): "bfloat16",
          np.dtype(np.float16): "float16"}.get(np.dtype(dtype), str(np.dtype(dtype)))


def save_hf(path: str | os.PathLike, config: ModelConfig, params, *, dtype=None,
            max_shard_bytes: int = 4 * 1024 ** 3) -> str:
  """Writes ``params`` as a Hugging Face checkpoint directory, atomically.

  The directory is built next to ``path`` and renamed into place, so an
  interrupted save never leaves a half-written checkpoint at ``path``. Weights
  larger than ``max_shard_bytes`` are split into ``model-0000k-of-0000n``
  shards with an index file.
  """
  path = os.path.abspath(os.fspath(path))
  np_dtype = _np_dtype(dtype)
  tensors: dict[str, np.ndarray] = {}
  for entry in _entries(config):
    try:
      value = np.asarray(jax.device_get(_get(params, entry.path)))
    except (KeyError, TypeError) as e:
      raise ValueError(f"params are missing {'/'.join(entry.path)} required by {config.family}") from e
    if "{i}" in entry.hf_name:
      if value.shape[0] != config.num_layers:
        raise ValueError(f"params {'/'.join(entry.path)} has {value.shape[0]} layers, "
                         f"config says {config.num_layers}")
      items = [(entry.hf_name.format(i=i), value[i]) for i in range(config.num_layers)]
    else:
      items = [(entry.hf_name, value)]
    for name, w in items:
      w = entry.to_hf(w, config)
      expected = tuple(entry.hf_shape(config))
      if tuple(w.shape) != expected:
        raise ValueError(f"params {'/'.join(entry.path)} gives {name!r} shape {tuple(w.shape)}, "
                         f"expected {expected}")
      tensors[name] = np.ascontiguousarray(w.astype(np_dtype) if np_dtype is not None else w)
  stored_dtype = next(iter(tensors.values())).dtype

  parent = os.path.dirname(path)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".tmp-" + os.path.basename(path) + "-", dir=parent)
  try:
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, w in tensors.items():
      if shards[-1] and size + w.nbytes > max_shard_bytes:
        shards.append({})
        size = 0
      shards[-1][name] = w
      size += w.nbytes
    metadata = {"format": "pt"}
    if len(shards) == 1:
      save_file(shards[0], os.path.join(tmp, SINGLE_FILE), metadata=metadata)
    else:
      weight_map = {}
      for k, shard in enumerate(shards):
        fn = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, os.path.join(tmp, fn), metadata=metadata)
        weight_map.update({name: fn for name in shard})
      total = sum(w.nbytes for w in tensors.values())
      with open(os.path.join(tmp, INDEX_FILE), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    with open(os.path.join(tmp, "config.json"), "w") as f:
      json.dump(config.to_hf_dict(_dtype_name(stored_dtype)), f, indent=2)
    if os.path.exists(path):
      old = tempfile.mkdtemp(prefix=".old-" + os.path.basename(path) + "-", dir=parent)
      os.rename(path, os.path.join(old, "x"))
      os.rename(tmp, path)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.rename(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return path

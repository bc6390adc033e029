"""Architecture configuration of the decoder LMs (Llama, Qwen2, Qwen3 families).

`ModelConfig` is a frozen, hashable dataclass so it can be a static argument of
`jax.jit`. It converts to and from a Hugging Face ``config.json`` dictionary
(both the transformers<5 ``rope_theta``/``rope_scaling`` spelling and the
transformers>=5 ``rope_parameters`` one are read).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Mapping, Optional

# HF `architectures` entry -> (family, HF model_type).
SUPPORTED_ARCHITECTURES = {
    "LlamaForCausalLM": ("llama", "llama"),
    "Qwen2ForCausalLM": ("qwen2", "qwen2"),
    "Qwen3ForCausalLM": ("qwen3", "qwen3"),
}
_FAMILY_TO_ARCH = {fam: arch for arch, (fam, _) in SUPPORTED_ARCHITECTURES.items()}
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")


@dataclasses.dataclass(frozen=True)
class RopeScaling:
  """RoPE frequency scaling. ``rope_type``: "linear" or "llama3" (Llama-3.1 style).

  Llama-3 scaling (Meta, "The Llama 3 Herd of Models", 2024) keeps high
  frequencies, divides low frequencies by ``factor`` and interpolates smoothly
  between the wavelengths ``original_max_position_embeddings / high_freq_factor``
  and ``original_max_position_embeddings / low_freq_factor``.
  """

  rope_type: str
  factor: float
  low_freq_factor: float = 1.0
  high_freq_factor: float = 4.0
  original_max_position_embeddings: int = 8192


# `ModelConfig.scan_layers=None`: training unrolls models up to this depth and scans deeper ones.
UNROLL_MAX_LAYERS = 8


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Decoder-only transformer hyperparameters.

  family: "llama" | "qwen2" (q/k/v projections with bias) | "qwen3" (RMSNorm on
  each query and key head before RoPE).
  """

  family: str
  vocab_size: int
  hidden_size: int
  intermediate_size: int
  num_layers: int
  num_heads: int
  num_kv_heads: int
  head_dim: int
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  rope_scaling: Optional[RopeScaling] = None
  max_position_embeddings: int = 4096
  tie_word_embeddings: bool = False
  attention_bias: bool = False  # bias on q/k/v projections (always on for qwen2)
  bos_token_id: Optional[int] = None
  eos_token_id: Optional[int | tuple[int, ...]] = None
  pad_token_id: Optional[int] = None
  # Runtime options (not part of the HF config):
  remat: bool = False  # rematerialise each decoder block in the backward pass
  # Training forward/backward: True = `lax.scan` over the stacked layers (one compiled
  # block, compile time independent of depth); False = an unrolled layer loop; None
  # (default) = unrolled up to UNROLL_MAX_LAYERS layers, scanned beyond (see
  # `scans_layers`; measured in docs/results/model_layers.md). Decode always unrolls.
  scan_layers: Optional[bool] = None

  def __post_init__(self):
    if self.family not in _FAMILY_TO_ARCH:
      raise ValueError(
          f"ModelConfig.family={self.family!r} is not supported; expected one of "
          f"{sorted(_FAMILY_TO_ARCH)}")
    for name in ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                 "num_heads", "num_kv_heads", "head_dim"):
      if int(getattr(self, name)) <= 0:
        raise ValueError(f"ModelConfig.{name} must be positive, got {getattr(self, name)}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f"ModelConfig.num_heads={self.num_heads} must be a multiple of "
          f"num_kv_heads={self.num_kv_heads} (grouped-query attention)")
    if self.rope_scaling is not None and self.rope_scaling.rope_type not in ("linear", "llama3"):
      raise ValueError(f"unsupported rope_scaling.rope_type={self.rope_scaling.rope_type!r}")

  @property
  def scans_layers(self) -> bool:
    """Whether training runs `lax.scan` over the layers (``scan_layers``, or the default).

    Default (``scan_layers=None``): unrolled for ``num_layers <= UNROLL_MAX_LAYERS``,
    where the unrolled update took 16 % less time at about equal compile time (4 layers), scanned for
    deeper models, where unrolling multiplies compile time (24 layers: 22.6 s vs 5.5 s).
    """
    if self.scan_layers is None:
      return self.num_layers > UNROLL_MAX_LAYERS
    return bool(self.scan_layers)

  @property
  def qkv_bias(self) -> bool:
    return self.family == "qwen2" or self.attention_bias

  @property
  def qk_norm(self) -> bool:
    return self.family == "qwen3"

  @property
  def architecture(self) -> str:
    return _FAMILY_TO_ARCH[self.family]

  @property
  def eos_token_ids(self) -> tuple[int, ...]:
    if self.eos_token_id is None:
      return ()
    if isinstance(self.eos_token_id, int):
      return (self.eos_token_id,)
    return tuple(self.eos_token_id)

  def num_params(self) -> int:
    d, f, h, kv, dh, v = (self.hidden_size, self.intermediate_size, self.num_heads,
                          self.num_kv_heads, self.head_dim, self.vocab_size)
    attn = d * h * dh * 2 + d * kv * dh * 2
    if self.qkv_bias:
      attn += (h + 2 * kv) * dh
    if self.qk_norm:
      attn += 2 * dh
    per_layer = attn + 3 * d * f + 2 * d
    head = 0 if self.tie_word_embeddings else d * v
    return v * d + self.num_layers * per_layer + d + head

  # ------------------------------------------------------------------ HF I/O
  @classmethod
  def from_hf_dict(cls, hf: Mapping[str, Any], **overrides) -> "ModelConfig":
    """Builds a config from the dictionary of a Hugging Face ``config.json``."""
    archs = hf.get("architectures")
    if archs:
      arch = archs[0]
      if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"config.json: unsupported architectures entry {arch!r}; supported: "
            f"{sorted(SUPPORTED_ARCHITECTURES)}")
      family = SUPPORTED_ARCHITECTURES[arch][0]
    else:
      model_type = hf.get("model_type")
      by_type = {mt: fam for fam, mt in SUPPORTED_ARCHITECTURES.values()}
      if model_type not in by_type:
        raise ValueError(
            f"config.json: has no 'architectures' and unsupported model_type {model_type!r}; "
            f"supported: {sorted(by_type)}")
      family = by_type[model_type]
    for key in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads"):
      if key not in hf:
        raise ValueError(f"config.json: missing required field {key!r}")
    if hf.get("use_sliding_window"):
      raise ValueError("config.json: use_sliding_window=true is not supported")
    if hf.get("mlp_bias"):
      raise ValueError("config.json: mlp_bias=true is not supported")
    if hf.get("hidden_act", "silu") != "silu":
      raise ValueError(f"config.json: hidden_act={hf.get('hidden_act')!r} is not supported (silu only)")

    # transformers>=5 writes `rope_parameters`; older files `rope_theta` + `rope_scaling`.
    rope = dict(hf.get("rope_parameters") or {})
    legacy = hf.get("rope_scaling") or {}
    rope_theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    scaling_src = rope if rope.get("rope_type", "default") != "default" else dict(legacy)
    rope_type = scaling_src.get("rope_type", scaling_src.get("type", "default"))
    if rope_type not in SUPPORTED_ROPE_TYPES:
      raise ValueError(
          f"config.json: rope type {rope_type!r} is not supported; supported: {SUPPORTED_ROPE_TYPES}")
    scaling = None
    if rope_type != "default":
      scaling = RopeScaling(
          rope_type=rope_type,
          factor=float(scaling_src["factor"]),
          low_freq_factor=float(scaling_src.get("low_freq_factor", 1.0)),
          high_freq_factor=float(scaling_src.get("high_freq_factor", 4.0)),
          original_max_position_embeddings=int(
              scaling_src.get("original_max_position_embeddings", 8192)))

    num_heads = int(hf["num_attention_heads"])
    head_dim = hf.get("head_dim") or hf["hidden_size"] // num_heads
    eos = hf.get("eos_token_id")
    if isinstance(eos, list):
      eos = tuple(eos) if len(eos) > 1 else eos[0]
    kwargs = dict(
        family=family,
        vocab_size=int(hf["vocab_size"]),
        hidden_size=int(hf["hidden_size"]),
        intermediate_size=int(hf["intermediate_size"]),
        num_layers=int(hf["num_hidden_layers"]),
        num_heads=num_heads,
        num_kv_heads=int(hf.get("num_key_value_heads") or num_heads),
        head_dim=int(head_dim),
        rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta,
        rope_scaling=scaling,
        max_position_embeddings=int(hf.get("max_position_embeddings", 4096)),
        tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
        attention_bias=bool(hf.get("attention_bias", False)),
        bos_token_id=hf.get("bos_token_id"),
        eos_token_id=eos,
        pad_token_id=hf.get("pad_token_id"),
    )
    kwargs.update(overrides)
    return cls(**kwargs)

  @classmethod
  def from_hf_config_file(cls, path: str | os.PathLike, **overrides) -> "ModelConfig":
    """Reads ``config.json`` (a file, or a directory holding one)."""
    path = os.fspath(path)
    if os.path.isdir(path):
      path = os.path.join(path, "config.json")
    if not os.path.isfile(path):
      raise FileNotFoundError(f"missing config.json: {path} does not exist")
    with open(path) as f:
      return cls.from_hf_dict(json.load(f), **overrides)

  def to_hf_dict(self, dtype: str = "float32") -> dict[str, Any]:
    """The ``config.json`` dictionary transformers>=5 reads for this model."""
    rope: dict[str, Any] = {"rope_theta": self.rope_theta, "rope_type": "default"}
    if self.rope_scaling is not None:
      rope.update(dataclasses.asdict(self.rope_scaling))
    eos = self.eos_token_id
    out = {
        "architectures": [self.architecture],
        "model_type": SUPPORTED_ARCHITECTURES[self.architecture][1],
        "vocab_size": self.vocab_size,
        "hidden_size": self.hidden_size,
        "intermediate_size": self.intermediate_size,
        "num_hidden_layers": self.num_layers,
        "num_attention_heads": self.num_heads,
        "num_key_value_heads": self.num_kv_heads,
        "head_dim": self.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": self.rms_norm_eps,
        "rope_parameters": rope,
        # Older readers (transformers<5) look for these two keys.
        "rope_theta": self.rope_theta,
        "rope_scaling": (dataclasses.asdict(self.rope_scaling)
                         if self.rope_scaling is not None else None),
        "max_position_embeddings": self.max_position_embeddings,
        "tie_word_embeddings": self.tie_word_embeddings,
        "attention_bias": self.attention_bias,
        "attention_dropout": 0.0,
        "bos_token_id": self.bos_token_id,
        "eos_token_id": list(eos) if isinstance(eos, tuple) else eos,
        "pad_token_id": self.pad_token_id,
        "dtype": dtype,
        "torch_dtype": dtype,
        "use_cache": True,
    }
    if self.family == "llama":
      out["mlp_bias"] = False
    if self.family in ("qwen2", "qwen3"):
      out["use_sliding_window"] = False
      out["sliding_window"] = None
    if self.family == "qwen2":
      out.pop("attention_bias")
    return out

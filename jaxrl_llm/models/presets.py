"""Named model configurations.

Real sizes are kept as the relevant fields of each model's public Hugging Face
``config.json`` and parsed with `ModelConfig.from_hf_dict`, the same path a
downloaded checkpoint takes. Tiny presets are for tests and CPU demos.
"""

from __future__ import annotations

from typing import Any

from jaxrl_llm.models.config import ModelConfig

_LLAMA3_ROPE_32 = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}

HF_CONFIGS: dict[str, dict[str, Any]] = {
    "llama-3.2-1b": dict(
        architectures=["LlamaForCausalLM"], vocab_size=128256, hidden_size=2048,
        intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
        num_key_value_heads=8, head_dim=64, rms_norm_eps=1e-5, rope_theta=500000.0,
        rope_scaling=_LLAMA3_ROPE_32, max_position_embeddings=131072,
        tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001),
    "qwen2.5-0.5b": dict(
        architectures=["Qwen2ForCausalLM"], vocab_size=151936, hidden_size=896,
        intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=32768, tie_word_embeddings=True,
        bos_token_id=151643, eos_token_id=151643),
    "qwen2.5-1.5b": dict(
        architectures=["Qwen2ForCausalLM"], vocab_size=151936, hidden_size=1536,
        intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
        num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=131072, tie_word_embeddings=True,
        bos_token_id=151643, eos_token_id=151643),
    "qwen2.5-7b": dict(
        architectures=["Qwen2ForCausalLM"], vocab_size=152064, hidden_size=3584,
        intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
        num_key_value_heads=4, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=131072, tie_word_embeddings=False,
        bos_token_id=151643, eos_token_id=151643),
    "qwen3-0.6b": dict(
        architectures=["Qwen3ForCausalLM"], vocab_size=151936, hidden_size=1024,
        intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=40960, tie_word_embeddings=True,
        bos_token_id=151643, eos_token_id=151645),
    "qwen3-1.7b": dict(
        architectures=["Qwen3ForCausalLM"], vocab_size=151936, hidden_size=2048,
        intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=40960, tie_word_embeddings=True,
        bos_token_id=151643, eos_token_id=151645),
    "qwen3-8b": dict(
        architectures=["Qwen3ForCausalLM"], vocab_size=151936, hidden_size=4096,
        intermediate_size=12288, num_hidden_layers=36, num_attention_heads=32,
        num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6, rope_theta=1000000.0,
        max_position_embeddings=40960, tie_word_embeddings=False,
        bos_token_id=151643, eos_token_id=151645),
    # Tiny models for tests and CPU demos.
    "tiny-llama": dict(
        architectures=["LlamaForCausalLM"], vocab_size=64, hidden_size=32,
        intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rms_norm_eps=1e-5, rope_theta=10000.0,
        max_position_embeddings=256, tie_word_embeddings=False),
    "tiny-qwen2": dict(
        architectures=["Qwen2ForCausalLM"], vocab_size=64, hidden_size=32,
        intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, rms_norm_eps=1e-6, rope_theta=10000.0,
        max_position_embeddings=256, tie_word_embeddings=True),
    "tiny-qwen3": dict(
        architectures=["Qwen3ForCausalLM"], vocab_size=64, hidden_size=32,
        intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, head_dim=16, rms_norm_eps=1e-6, rope_theta=10000.0,
        max_position_embeddings=256, tie_word_embeddings=False),
}


def get_preset(name: str, **overrides) -> ModelConfig:
  """A `ModelConfig` by preset name; keyword arguments override fields."""
  if name not in HF_CONFIGS:
    raise ValueError(f"unknown model preset {name!r}; known presets: {sorted(HF_CONFIGS)}")
  return ModelConfig.from_hf_dict(HF_CONFIGS[name], **overrides)


def list_presets() -> list[str]:
  return sorted(HF_CONFIGS)

"""Decoder LMs (Llama, Qwen2, Qwen3), Hugging Face checkpoint I/O and tokenizers."""

from jaxrl_llm.models.config import ModelConfig, RopeScaling, SUPPORTED_ARCHITECTURES
from jaxrl_llm.models.presets import get_preset, list_presets
from jaxrl_llm.models.transformer import (
    K_CACHE_AXES,
    V_CACHE_AXES,
    DecoderLM,
    KVCache,
    apply_layers,
    apply_model,
    block_apply,
    default_positions,
    forward,
    forward_with_cache,
    hidden_states,
    init_cache,
    init_params,
    param_logical_axes,
    param_shapes,
    shared_prompt_hidden_states,
    split_layers,
    unembed_weight,
)
from jaxrl_llm.models.hf_io import load_hf, save_hf
from jaxrl_llm.models.tokenizers import CharTokenizer, HFTokenizer, left_pad
from jaxrl_llm.models.logprobs import token_logprobs

"""Sampling: prefill + KV-cache decode, sampling filters, log-probs of what was sampled."""

from jaxrl_llm.sampling.filters import (
    Draw,
    SamplingParams,
    filter_logits,
    row_uniforms,
    sample_from_logits,
    sample_with_uniform,
    top_k_mask,
    top_p_mask,
    validate_sampling_params,
)
from jaxrl_llm.sampling.sampler import (
    FINISH_LENGTH,
    FINISH_STOP,
    SampleOutput,
    bucket_length,
    generate,
)

"""Sampling from a LoRA-adapted policy, merged and unmerged: the sampler's log-probs are
the adapted model's teacher-forced log-probs, and both forms sample the same tokens."""

import jax
import numpy as np

from jaxrl_llm import models, sampling, training
from jaxrl_llm.models import lora

_logprobs = jax.jit(training.completion_logprobs, static_argnums=0)


def test_merged_and_unmerged_sampling_follow_the_adapted_model():
  config = models.get_preset("tiny-qwen3")
  params = models.init_params(config, jax.random.key(0))
  cfg = lora.LoraConfig(rank=2, alpha=4.0)
  adapters = lora.init(cfg, params, jax.random.key(1))
  # B != 0 (at init the adapted model is the base and the check would be empty).
  for group in adapters.values():
    for i, ab in enumerate(group.values()):
      ab["b"] = 0.5 * jax.random.normal(jax.random.key(10 + i), ab["b"].shape)
  lp = lora.LoraParams(params, adapters, cfg.scale)
  prompts = np.array([[0, 5, 6, 7], [3, 4, 5, 6]], np.int32)
  pmask = np.array([[0, 1, 1, 1], [1, 1, 1, 1]], np.int32)
  outs = {}
  for merged in (True, False):
    policy = lora.for_sampling(lp, merged_weights=merged)
    out = sampling.generate(config, policy, prompts, pmask, jax.random.key(2), max_new_tokens=6)
    # Teacher-forced log-probs of the sampled tokens under the adapted model (unmerged
    # training path, a full forward rather than prefill + cached decode steps).
    tf = _logprobs(config, lora.model_params(lp), prompts, pmask,
                                      out.tokens, out.mask.astype(np.int32))
    m = np.asarray(out.mask)
    np.testing.assert_allclose(np.asarray(out.logprobs)[m], np.asarray(tf.logprobs)[m], atol=1e-5)
    outs[merged] = np.asarray(out.tokens)
  np.testing.assert_array_equal(outs[True], outs[False])
  # The adapters matter: the base model's log-probs of those tokens differ.
  base = _logprobs(config, params, prompts, pmask, out.tokens,
                                      out.mask.astype(np.int32))
  assert np.abs(np.asarray(base.logprobs) - np.asarray(tf.logprobs))[m].max() > 1e-2

"""Both Pallas kernels lower for their hardware from a CPU-only jaxlib.

Interpret mode accepts any block shape and any jnp op; lowering for the real
platform runs the Pallas -> Mosaic / Triton lowering, which rejects blocks that
are not multiples of (8, 128) on TPU, non-power-of-two arrays on Triton and
primitives either backend lacks. (The final libtpu / ptxas compile needs the
hardware and is not exercised here.)
"""

import re

import jax
import jax.numpy as jnp
import pytest

import kernels_pallas

CUSTOM_CALL = {"tpu": "tpu_custom_call", "cuda": "__gpu$xla.gpu.triton"}


def _lowered_custom_calls(impl, platform, dtype, kl, want_entropy, want_mean=False, **blocks):
  t, d, v, d_ref = 20, 24, 300, 32  # ragged T and V, D not a power of two

  def loss(h, w, y, hr, wr):
    o = kernels_pallas.fused_logprobs(h, w, y, ref_hidden=hr, ref_weight=wr, temperature=0.7,
                                      want_entropy=want_entropy, want_kl=kl,
                                      want_mean_logprob=want_mean, impl=impl, **blocks)
    return sum(jnp.sum(x) for x in o if x is not None)

  args = (jax.ShapeDtypeStruct((t, d), dtype), jax.ShapeDtypeStruct((d, v), dtype),
          jax.ShapeDtypeStruct((t,), jnp.int32), jax.ShapeDtypeStruct((t, d_ref), dtype),
          jax.ShapeDtypeStruct((d_ref, v), dtype))
  fn = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  text = fn.trace(*args).lower(lowering_platforms=(platform,)).as_text()
  return re.findall(r"custom_call @([\w$.]+)", text)


@pytest.mark.parametrize("impl,platform", [("tpu", "tpu"), ("gpu", "cuda")])
@pytest.mark.parametrize("dtype,kl,want_entropy,want_mean", [(jnp.float32, "full", True, True),
                                                             (jnp.bfloat16, "k3", False, False)])
def test_kernels_lower_for_their_platform(impl, platform, dtype, kl, want_entropy, want_mean):
  calls = _lowered_custom_calls(impl, platform, dtype, kl, want_entropy, want_mean)
  # forward + d_hidden + d_weight kernels, nothing silently replaced by XLA
  assert calls.count(CUSTOM_CALL[platform]) == 3, calls


@pytest.mark.parametrize("impl,platform,blocks", [("tpu", "tpu", dict(block_t=16, block_v=1024)),
                                                  ("gpu", "cuda", dict(block_t=32, block_v=128))])
def test_kernels_lower_with_larger_blocks(impl, platform, blocks):
  calls = _lowered_custom_calls(impl, platform, jnp.bfloat16, "full", True, **blocks)
  assert calls.count(CUSTOM_CALL[platform]) == 3, calls

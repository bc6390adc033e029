"""The Pallas TPU (Mosaic) and GPU (Triton) kernels, run in interpret mode on CPU."""

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

import kernels_pallas
from fused_logprob_cases import compare_to_reference, make_problem

# Small blocks so every case has several token and vocabulary blocks.
BLOCKS = {"tpu": dict(block_t=8, block_v=128), "gpu": dict(block_t=16, block_v=64)}


@pytest.mark.parametrize("impl", ["tpu", "gpu"])
def test_kernel_ragged_full_kl_other_head_entropy_temperature_f32(impl):
  # T=20 and V=300 fit neither block; D=24 and D_ref=8 are not powers of two
  # (the GPU path zero-pads them); the reference head differs from the policy's.
  p = make_problem(4, 20, 24, 300, d_ref=8)
  compare_to_reference(p, 1e-5, 1e-5, impl=impl, interpret=True, temperature=0.7,
                       want_entropy=True, want_kl="full", want_mean_logprob=True,
                       **BLOCKS[impl])


@pytest.mark.parametrize("impl", ["tpu", "gpu"])
def test_kernel_ragged_mean_logprob_only(impl):
  # Only the mean log-prob besides log p: the padded / out-of-range vocabulary
  # columns of the last block must enter neither the sum nor V.
  p = make_problem(9, 11, 16, 200)
  compare_to_reference(p, 1e-5, 1e-5, impl=impl, interpret=True, temperature=0.6,
                       want_mean_logprob=True, **BLOCKS[impl])


@pytest.mark.parametrize("impl", ["tpu", "gpu"])
def test_kernel_bf16_k3(impl):
  p = make_problem(5, 24, 16, 200, d_ref=16, dtype=jnp.bfloat16)
  outs, _ = compare_to_reference(p, 1e-5, 2e-2, impl=impl, interpret=True, temperature=1.5,
                                 want_entropy=True, want_kl="k3", **BLOCKS[impl])
  assert all(o.dtype == jnp.float32 for o in outs)


@pytest.mark.parametrize("impl", ["tpu", "gpu"])
def test_kernel_check_grads_float64(impl):
  with jax.enable_x64(True):
    p = make_problem(6, 10, 16, 150, d_ref=16, dtype=jnp.float64)

    @jax.jit
    def f(h, w):
      o = kernels_pallas.fused_logprobs(h, w, p["targets"], ref_hidden=p["ref_hidden"],
                                        ref_weight=p["ref_weight"], temperature=0.9,
                                        want_entropy=True, want_kl="full",
                                        want_mean_logprob=True, impl=impl, interpret=True,
                                        **BLOCKS[impl])
      return o.logprobs, o.entropy, o.kl, o.mean_logprob

    check_grads(f, (p["hidden"], p["weight"]), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)

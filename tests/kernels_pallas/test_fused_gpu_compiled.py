"""The Pallas GPU (Triton) kernel compiled and run on an NVIDIA GPU (not interpret mode).

Runs only where jax sees a CUDA GPU: ``benchmarks/gpu_check.sh`` installs a CUDA
jax and runs this module with ``JAXRL_REQUIRE_GPU=1``, which turns the
missing-GPU skip into a failure (so the script can never pass without the GPU).
CI has no GPU: there every test here is skipped with that reason.

The same cases as ``test_fused_pallas_interpret.py`` with ``interpret=False`` and
the kernels' default blocks too, against the dense reference. Matmuls run at
``highest`` precision on both sides: the kernel disables TF32 for float32, and the
dense reference must not use it either (XLA:GPU's default for float32 dots).
"""

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernels_pallas
from kernels_pallas import api
from fused_logprob_cases import compare_to_reference, make_problem, numpy_oracle

_HAS_GPU = any(d.platform == "gpu" for d in jax.devices())
if os.environ.get("JAXRL_REQUIRE_GPU") == "1" and not _HAS_GPU:
  raise RuntimeError(f"JAXRL_REQUIRE_GPU=1 but jax sees no GPU (devices: {jax.devices()}); "
                     f"is a CUDA jaxlib installed (pip install 'jax[cuda12]')?")
pytestmark = pytest.mark.skipif(not _HAS_GPU, reason="needs an NVIDIA GPU and a CUDA jax "
                                "(run benchmarks/gpu_check.sh on a GPU machine)")

BLOCKS = dict(block_t=16, block_v=64)


@pytest.fixture(autouse=True)
def _highest_precision():
  with jax.default_matmul_precision("highest"):
    yield


def test_ragged_full_kl_other_head_entropy_temperature_f32():
  p = make_problem(4, 20, 24, 300, d_ref=8)
  compare_to_reference(p, 1e-4, 1e-4, impl="gpu", interpret=False, temperature=0.7,
                       want_entropy=True, want_kl="full", want_mean_logprob=True, **BLOCKS)


def test_bf16_k3():
  p = make_problem(5, 24, 16, 200, d_ref=16, dtype=jnp.bfloat16)
  outs, _ = compare_to_reference(p, 1e-4, 2e-2, impl="gpu", interpret=False, temperature=1.5,
                                 want_entropy=True, want_kl="k3", **BLOCKS)
  assert all(o.dtype == jnp.float32 for o in outs)


@pytest.mark.parametrize("dtype, rtol_grads", [(jnp.float32, 1e-4), (jnp.bfloat16, 2e-2)])
def test_default_blocks_larger_problem(dtype, rtol_grads):
  # Several token and vocab blocks at the kernels' default block sizes.
  p = make_problem(7, 300, 128, 5000, d_ref=64, dtype=dtype)
  compare_to_reference(p, 1e-4, rtol_grads, impl="gpu", interpret=False, want_entropy=True,
                       want_kl="full", want_mean_logprob=True)


def test_values_against_float64_oracle():
  p = make_problem(8, 40, 32, 700, d_ref=32)
  out = kernels_pallas.fused_logprobs(p["hidden"], p["weight"], p["targets"],
                                      ref_hidden=p["ref_hidden"], ref_weight=p["ref_weight"],
                                      want_entropy=True, want_kl="full",
                                      want_mean_logprob=True, impl="gpu")
  expected = numpy_oracle(p["hidden"], p["weight"], p["targets"], p["ref_hidden"],
                          p["ref_weight"])
  for name, got in (("logprobs", out.logprobs), ("entropy", out.entropy), ("kl_full", out.kl),
                    ("mean_logprob", out.mean_logprob)):
    np.testing.assert_allclose(np.asarray(got, np.float64), expected[name], rtol=1e-4,
                               atol=1e-4 * np.max(np.abs(expected[name])), err_msg=name)


def test_auto_picks_the_compiled_gpu_kernel_without_falling_back():
  p = make_problem(9, 64, 64, 1000)
  api._pallas_kernel_usable.cache_clear()  # pylint: disable=protected-access
  with warnings.catch_warnings():
    warnings.simplefilter("error", RuntimeWarning)  # the fallback to impl='xla' warns
    out = kernels_pallas.fused_logprobs(p["hidden"], p["weight"], p["targets"])
  np.testing.assert_allclose(np.asarray(out.logprobs, np.float64),
                             numpy_oracle(p["hidden"], p["weight"], p["targets"])["logprobs"],
                             rtol=1e-4, atol=1e-4)

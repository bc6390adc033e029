"""The chunked XLA backend: values, gradients and memory against the dense reference."""

import functools

import jax
import jax.numpy as jnp
import pytest
from jax.test_util import check_grads

import kernels_pallas
from fused_logprob_cases import compare_to_reference, make_problem

CASES = {
    # ragged V: 300 = 2 * 128 + 44, the last block is clamped and overlaps
    "ragged_full_kl_other_head_tau": dict(shape=(13, 16, 300, 8), block_v=128, temperature=0.7,
                                          want_entropy=True, want_kl="full",
                                          want_mean_logprob=True),
    "ragged_k3": dict(shape=(13, 16, 300, 8), block_v=128, temperature=1.3, want_kl="k3"),
    # the mean over V must skip the overlap columns of the clamped last block
    "ragged_mean_logprob_only": dict(shape=(7, 8, 300, None), block_v=128, temperature=0.6,
                                     want_mean_logprob=True),
    "even_blocks_logprob_only": dict(shape=(9, 8, 256, None), block_v=64),
    "one_block_larger_than_vocab": dict(shape=(5, 8, 100, 8), block_v=1024, want_entropy=True,
                                        want_kl="full"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_xla_matches_reference_f32(name):
  case = dict(CASES[name])
  t, d, v, d_ref = case.pop("shape")
  compare_to_reference(make_problem(1, t, d, v, d_ref=d_ref), 1e-5, 1e-5, impl="xla", **case)


def test_xla_matches_reference_bf16():
  p = make_problem(2, 11, 16, 200, d_ref=16, dtype=jnp.bfloat16)
  outs, _ = compare_to_reference(p, 1e-5, 2e-2, impl="xla", block_v=64, temperature=0.8,
                                 want_entropy=True, want_kl="k3")
  assert all(o.dtype == jnp.float32 for o in outs)  # f32 accumulation and outputs


@pytest.mark.parametrize("kl", ["k3", "full"])
def test_xla_check_grads_float64(kl):
  with jax.enable_x64(True):
    p = make_problem(3, 6, 4, 50, d_ref=3, dtype=jnp.float64)

    @jax.jit
    def f(h, w):
      o = kernels_pallas.fused_logprobs(h, w, p["targets"], ref_hidden=p["ref_hidden"],
                                        ref_weight=p["ref_weight"], temperature=0.9,
                                        want_entropy=True, want_kl=kl, want_mean_logprob=True,
                                        impl="xla", block_v=16)
      return o.logprobs, o.entropy, o.kl, o.mean_logprob

    check_grads(f, (p["hidden"], p["weight"]), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_xla_does_not_materialise_logits():
  t, d, v = 512, 16, 8192
  args = (jax.ShapeDtypeStruct((t, d), jnp.float32), jax.ShapeDtypeStruct((d, v), jnp.float32),
          jax.ShapeDtypeStruct((t,), jnp.int32))

  def loss(impl, h, w, y):
    o = kernels_pallas.fused_logprobs(h, w, y, ref_weight=w * 0.5, want_entropy=True,
                                      want_kl="full", want_mean_logprob=True, impl=impl,
                                      block_v=128)
    return jnp.sum(o.logprobs) + jnp.sum(o.entropy) + jnp.sum(o.kl) + jnp.sum(o.mean_logprob)

  def temp_bytes(impl):
    fn = jax.jit(jax.grad(functools.partial(loss, impl), argnums=(0, 1)))
    return fn.lower(*args).compile().memory_analysis().temp_size_in_bytes

  logits_bytes = t * v * 4
  chunked, dense = temp_bytes("xla"), temp_bytes("reference")
  assert dense >= logits_bytes  # the oracle does hold [T, V] logits
  # The chunked path holds ~[T, block_v] tiles plus dW (= one [D, V] buffer, an output).
  assert chunked < logits_bytes / 4, (chunked, dense)

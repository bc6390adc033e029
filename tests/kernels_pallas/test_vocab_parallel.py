"""fused_logprobs with the vocabulary head sharded over a mesh axis (kernels_pallas.vocab_parallel).

Values against the float64 NumPy oracle and gradients against the dense reference on
the unsharded arrays, on 8 fake CPU devices (tests/conftest.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernels_pallas
from fused_logprob_cases import assert_close, make_problem, numpy_oracle
from kernels_pallas import vocab_parallel

pytestmark = pytest.mark.skipif(jax.device_count() < 8, reason="needs 8 (fake) devices")


def _mesh(shape, axis_type=jax.sharding.AxisType.Auto):
  return jax.make_mesh(shape, ("data", "fsdp", "tensor"), axis_types=(axis_type,) * 3)


def _call(problem, mesh, *, sharded, **kwargs):
  """(outputs, d hidden, d weight) under the problem's cotangent on (logp, entropy, kl, mlp)."""
  ref = dict(ref_hidden=problem["ref_hidden"], ref_weight=problem["ref_weight"]) \
      if kwargs.get("want_kl") else {}

  def outputs(h, w):
    if sharded:
      o = vocab_parallel.fused_logprobs_vocab_sharded(h, w, problem["targets"], mesh=mesh,
                                                      **ref, **kwargs)
    else:
      o = kernels_pallas.fused_logprobs(h, w, problem["targets"], impl="reference", **ref,
                                        **{k: v for k, v in kwargs.items()
                                           if k not in ("token_axes", "impl", "interpret",
                                                        "block_v", "block_t", "check_vma")})
    outs = (o.logprobs, o.entropy, o.kl, o.mean_logprob)
    return o, tuple(jnp.zeros_like(o.logprobs) if x is None else x for x in outs)

  def loss(h, w):
    _, outs = outputs(h, w)
    return sum(jnp.sum(c * x) for c, x in zip(problem["cotangent"], outs))

  out, _ = jax.jit(outputs)(problem["hidden"], problem["weight"])
  grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(problem["hidden"], problem["weight"])
  return out, grads


@pytest.mark.parametrize("shape,token_axes,kwargs", [
    ((2, 2, 2), ("data", "fsdp"), dict(want_entropy=True)),
    ((2, 2, 2), ("data", "fsdp"), dict(want_entropy=True, impl="xla", explicit=True)),
    ((1, 2, 4), "fsdp", dict(want_entropy=True, want_kl="full", temperature=0.7, impl="xla",
                             want_mean_logprob=True)),
    ((1, 1, 8), None, dict(want_mean_logprob=True, temperature=0.6, impl="xla", block_v=16)),
    ((1, 2, 4), "fsdp", dict(want_entropy=True, want_kl="full", temperature=0.7, impl="xla",
                             check_vma=False)),
    ((1, 1, 8), None, dict(want_kl="k3", impl="xla", block_v=8)),
    ((2, 1, 4), "data", dict(want_entropy=True, want_kl="full", impl="tpu", interpret=True,
                             block_v=128, want_mean_logprob=True)),
    ((1, 2, 4), "fsdp", dict(want_entropy=True, want_kl="k3", impl="gpu", interpret=True,
                             block_t=16, block_v=16, want_mean_logprob=True)),
])
def test_vocab_sharded_matches_oracle_and_dense_gradients(shape, token_axes, kwargs):
  problem = make_problem(3, 8, 16, 256, d_ref=12)
  kwargs = dict(kwargs)
  mesh = _mesh(shape, jax.sharding.AxisType.Explicit if kwargs.pop("explicit", False)
               else jax.sharding.AxisType.Auto)
  out, grads = _call(problem, mesh, sharded=True, token_axes=token_axes, **kwargs)
  oracle = numpy_oracle(problem["hidden"], problem["weight"], problem["targets"],
                        problem["ref_hidden"], problem["ref_weight"],
                        temperature=kwargs.get("temperature", 1.0))
  assert_close(out.logprobs, oracle["logprobs"], 1e-5, "logprobs")
  if kwargs.get("want_entropy"):
    assert_close(out.entropy, oracle["entropy"], 1e-5, "entropy")
  if kwargs.get("want_kl"):
    assert_close(out.kl, oracle["kl_full" if kwargs["want_kl"] == "full" else "k3"], 1e-4, "kl")
    assert_close(out.ref_logprobs, oracle["ref_logprobs"], 1e-5, "ref_logprobs")
  if kwargs.get("want_mean_logprob"):
    assert_close(out.mean_logprob, oracle["mean_logprob"], 1e-5, "mean_logprob")
  else:
    assert out.mean_logprob is None
  _, dense_grads = _call(problem, mesh, sharded=False, **kwargs)
  for name, g, e in zip(("d hidden", "d weight"), grads, dense_grads):
    assert_close(g, e, 1e-4, name)


def test_targets_split_across_shards_and_bad_arguments():
  problem = make_problem(5, 8, 16, 256)
  mesh = _mesh((1, 1, 8))
  # Every shard owns exactly one of the targets: each log-prob needs the owning shard's logit.
  targets = jnp.arange(8, dtype=jnp.int32) * 32 + 31
  out = vocab_parallel.fused_logprobs_vocab_sharded(problem["hidden"], problem["weight"],
                                                    targets, mesh=mesh)
  oracle = numpy_oracle(problem["hidden"], problem["weight"], targets)
  assert_close(out.logprobs, oracle["logprobs"], 1e-5, "logprobs")
  with pytest.raises(ValueError, match="divisible"):
    vocab_parallel.fused_logprobs_vocab_sharded(problem["hidden"], problem["weight"][:, :250],
                                                targets, mesh=mesh)
  with pytest.raises(ValueError, match="vocab_axis"):
    vocab_parallel.fused_logprobs_vocab_sharded(problem["hidden"], problem["weight"], targets,
                                                mesh=mesh, vocab_axis="model")
  with pytest.raises(ValueError, match="token_axes"):
    vocab_parallel.fused_logprobs_vocab_sharded(problem["hidden"], problem["weight"], targets,
                                                mesh=mesh, token_axes="tensor")
  with pytest.raises(ValueError, match="reference"):
    vocab_parallel.fused_logprobs_vocab_sharded(problem["hidden"], problem["weight"], targets,
                                                mesh=mesh, want_kl="k3")

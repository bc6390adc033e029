"""Shared problem builders and an independent NumPy oracle for the fused log-prob tests."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

import kernels_pallas


def make_problem(seed, t, d, v, *, d_ref=None, dtype=jnp.float32, scale=0.5):
  """Random hidden/weight/targets (+ a different reference head when d_ref is set)."""
  rng = np.random.default_rng(seed)
  p = dict(hidden=rng.normal(size=(t, d)), weight=rng.normal(size=(d, v)) * scale)
  if d_ref is not None:
    p.update(ref_hidden=rng.normal(size=(t, d_ref)), ref_weight=rng.normal(size=(d_ref, v)) * scale)
  p = {k: jnp.asarray(x, dtype) for k, x in p.items()}
  p["targets"] = jnp.asarray(rng.integers(0, v, size=t), jnp.int32)
  # One row per output (logprobs, entropy, kl, mean_logprob); rows 0..2 are the
  # same draws as before the mean log-prob existed.
  p["cotangent"] = jnp.asarray(rng.normal(size=(4, t)), jnp.float32)
  return p


def numpy_oracle(hidden, weight, targets, ref_hidden=None, ref_weight=None, temperature=1.0):
  """Float64 NumPy transcription of the definitions, one token at a time."""
  h, w = np.asarray(hidden, np.float64), np.asarray(weight, np.float64)
  out = {k: [] for k in ("logprobs", "entropy", "kl_full", "k3", "ref_logprobs",
                         "mean_logprob")}
  for i, y in enumerate(np.asarray(targets)):
    z = h[i] @ w / temperature
    logp = z - (z.max() + np.log(np.sum(np.exp(z - z.max()))))
    p = np.exp(logp)
    out["logprobs"].append(logp[y])
    out["entropy"].append(-np.sum(p * logp))
    out["mean_logprob"].append(np.sum(logp) / len(logp))  # (1/V) sum_v log p_v
    if ref_weight is not None:
      b = np.asarray(ref_hidden, np.float64)[i] @ np.asarray(ref_weight, np.float64) / temperature
      logq = b - (b.max() + np.log(np.sum(np.exp(b - b.max()))))
      out["kl_full"].append(np.sum(p * (logp - logq)))
      r = logq[y] - logp[y]
      out["k3"].append(np.exp(r) - 1.0 - r)
      out["ref_logprobs"].append(logq[y])
  return {k: np.array(x) for k, x in out.items()}


def assert_close(actual, expected, rtol, name=""):
  """Elementwise rtol plus an absolute floor of ``rtol * max|expected|``."""
  actual = np.asarray(actual, np.float64)
  expected = np.asarray(expected, np.float64)
  atol = rtol * max(float(np.max(np.abs(expected))), 1e-30)
  np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=name)


@functools.partial(jax.jit, static_argnames=("kwargs_items",))
def _outputs_and_grads(hidden, weight, targets, ref_hidden, ref_weight, cotangent, kwargs_items):
  kwargs = dict(kwargs_items)

  def outputs(h, w):
    o = kernels_pallas.fused_logprobs(h, w, targets, ref_hidden=ref_hidden,
                                      ref_weight=ref_weight, **kwargs)
    outs = (o.logprobs, o.entropy, o.kl, o.mean_logprob)
    return tuple(jnp.zeros_like(o.logprobs) if x is None else x for x in outs)

  outs, vjp = jax.vjp(outputs, hidden, weight)
  grads = vjp(tuple(c.astype(o.dtype) for c, o in zip(cotangent, outs)))
  return outs, grads


def outputs_and_grads(problem, **kwargs):
  """((logprobs, entropy, kl, mean_logprob), (d hidden, d weight)) under a random cotangent.

  An output that was not asked for is zeros (its cotangent row then has no effect).
  """
  return _outputs_and_grads(problem["hidden"], problem["weight"], problem["targets"],
                            problem.get("ref_hidden"), problem.get("ref_weight"),
                            problem["cotangent"], tuple(sorted(kwargs.items())))


def compare_to_reference(problem, rtol_values, rtol_grads, **kwargs):
  """Values and gradients of ``kwargs['impl']`` against the dense reference."""
  outs, grads = outputs_and_grads(problem, **kwargs)
  ref_kwargs = {k: x for k, x in kwargs.items()
                if k not in ("impl", "block_t", "block_v", "interpret")}
  ref_outs, ref_grads = outputs_and_grads(problem, impl="reference", **ref_kwargs)
  for name, a, e in zip(("logprobs", "entropy", "kl", "mean_logprob"), outs, ref_outs):
    assert_close(a, e, rtol_values, name)
  for name, a, e in zip(("d_hidden", "d_weight"), grads, ref_grads):
    assert a.dtype == e.dtype, name
    assert_close(a.astype(jnp.float32), e.astype(jnp.float32), rtol_grads, name)
  return outs, ref_outs

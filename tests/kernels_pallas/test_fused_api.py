"""Argument checking, defaults and ``impl="auto"`` dispatch/fallback of ``fused_logprobs``."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernels_pallas
from kernels_pallas import api
from fused_logprob_cases import assert_close, make_problem, numpy_oracle


@pytest.fixture(scope="module")
def problem():
  return make_problem(7, 9, 8, 70, d_ref=4)


@pytest.mark.parametrize("kwargs,match", [
    (dict(impl="cuda"), "impl"),
    (dict(want_kl="k2", ref_weight=True), "want_kl"),
    (dict(temperature=0.0), "temperature"),
    (dict(want_kl="k3"), "reference"),
    (dict(block_v=0), "block_v"),
    (dict(impl="tpu", block_v=100, interpret=True), "block_v"),
    (dict(impl="tpu", block_t=12, interpret=True), "block_t"),
    (dict(impl="gpu", block_t=24, interpret=True), "block_t"),
    (dict(impl="reference", impl_extra=True), None),
])
def test_bad_options_raise_value_error(problem, kwargs, match):
  kwargs = dict(kwargs)
  if kwargs.pop("impl_extra", False):
    with pytest.raises(ValueError, match="impl"):
      kernels_pallas.fused_logprobs_reference(problem["hidden"], problem["weight"],
                                              problem["targets"], impl="xla")
    return
  if kwargs.get("ref_weight") is True:
    kwargs["ref_weight"] = problem["weight"]
  with pytest.raises(ValueError, match=match):
    kernels_pallas.fused_logprobs(problem["hidden"], problem["weight"], problem["targets"],
                                  **kwargs)


def test_bad_shapes_raise_value_error(problem):
  h, w, y = problem["hidden"], problem["weight"], problem["targets"]
  with pytest.raises(ValueError, match="weight"):
    kernels_pallas.fused_logprobs(h, w[:-1], y)
  with pytest.raises(ValueError, match="targets"):
    kernels_pallas.fused_logprobs(h, w, y[:-1])
  with pytest.raises(ValueError, match="targets"):
    kernels_pallas.fused_logprobs(h, w, y.astype(jnp.float32))
  with pytest.raises(ValueError, match="ref_weight"):
    kernels_pallas.fused_logprobs(h, w, y, ref_hidden=problem["ref_hidden"],
                                  ref_weight=problem["ref_weight"][:, :-1], want_kl="k3")
  with pytest.raises(ValueError, match="ref_hidden"):
    kernels_pallas.fused_logprobs(h, w, y, ref_hidden=problem["ref_hidden"][:-1],
                                  ref_weight=problem["ref_weight"], want_kl="k3")
  with pytest.raises(ValueError, match="hidden"):
    kernels_pallas.fused_logprobs(h.astype(jnp.int32), w, y)


def test_auto_on_cpu_is_xla_without_warning(problem):
  assert api._default_platform() == "cpu"
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    out = kernels_pallas.fused_logprobs(problem["hidden"], problem["weight"], problem["targets"],
                                        want_entropy=True)
  expected = numpy_oracle(problem["hidden"], problem["weight"], problem["targets"])
  assert_close(out.logprobs, expected["logprobs"], 1e-5)
  assert_close(out.entropy, expected["entropy"], 1e-5)
  assert out.kl is None and out.ref_logprobs is None


def test_auto_falls_back_to_xla_when_kernel_does_not_compile(problem, monkeypatch):
  # Pretend to be on a TPU: the Mosaic kernel cannot compile on this CPU, so auto
  # must warn and use the chunked XLA path (with correct values and gradients).
  monkeypatch.setattr(api, "_default_platform", lambda: "tpu")
  api._pallas_kernel_usable.cache_clear()  # the probe result is memoised per config/shapes
  h, w, y = problem["hidden"], problem["weight"], problem["targets"]
  grad = lambda impl: jax.grad(
      lambda w: jnp.sum(kernels_pallas.fused_logprobs(h, w, y, impl=impl).logprobs))(w)
  with pytest.warns(RuntimeWarning, match="falling back to impl='xla'"):
    out = kernels_pallas.fused_logprobs(h, w, y)
  with warnings.catch_warnings():
    warnings.simplefilter("error")  # one warning per configuration, not per call
    assert_close(out.logprobs, numpy_oracle(h, w, y)["logprobs"], 1e-5)
    assert_close(grad("auto"), grad("reference"), 1e-5)


def test_reference_defaults_and_zero_kl_against_itself(problem):
  h, w, y = problem["hidden"], problem["weight"], problem["targets"]
  # ref_weight alone: the reference uses the policy's hidden states.
  same = kernels_pallas.fused_logprobs(h, w, y, ref_weight=w, want_kl="full", impl="xla")
  np.testing.assert_allclose(same.kl, 0.0, atol=1e-5)
  np.testing.assert_allclose(same.ref_logprobs, same.logprobs, rtol=1e-6)
  other = kernels_pallas.fused_logprobs(h, w, y, ref_weight=problem["ref_weight"][:1].repeat(8, 0),
                                        want_kl="k3", impl="xla")
  expected = numpy_oracle(h, w, y, h, problem["ref_weight"][:1].repeat(8, 0))
  assert_close(other.kl, expected["k3"], 1e-5)


@pytest.mark.parametrize("impl", ["xla", "reference"])
def test_reference_model_gets_no_gradient(problem, impl):
  def loss(hr, wr):
    o = kernels_pallas.fused_logprobs(problem["hidden"], problem["weight"], problem["targets"],
                                      ref_hidden=hr, ref_weight=wr, want_kl="full", impl=impl)
    return jnp.sum(o.kl)
  g_hr, g_wr = jax.grad(loss, argnums=(0, 1))(problem["ref_hidden"], problem["ref_weight"])
  assert not np.any(np.asarray(g_hr)) and not np.any(np.asarray(g_wr))

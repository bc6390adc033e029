"""The dense oracle against hand computations and an independent NumPy transcription."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import kernels_pallas
from fused_logprob_cases import assert_close, make_problem, numpy_oracle


def _hand_problem():
  # One token, D=1, V=2: logits (0, log 3) -> p = (1/4, 3/4); reference logits (0, 0) -> q uniform.
  hidden = jnp.ones((1, 1), jnp.float32)
  weight = jnp.array([[0.0, math.log(3.0)]], jnp.float32)
  ref_weight = jnp.zeros((1, 2), jnp.float32)
  return hidden, weight, jnp.array([1]), ref_weight


@pytest.mark.parametrize("impl", ["reference", "xla"])
def test_hand_computed_two_token_vocabulary(impl):
  hidden, weight, targets, ref_weight = _hand_problem()
  entropy = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75))
  r = math.log(0.5) - math.log(0.75)
  full = kernels_pallas.fused_logprobs(hidden, weight, targets, ref_weight=ref_weight,
                                       want_entropy=True, want_kl="full", impl=impl)
  k3 = kernels_pallas.fused_logprobs(hidden, weight, targets, ref_weight=ref_weight,
                                     want_kl="k3", impl=impl)
  np.testing.assert_allclose(full.logprobs, [math.log(0.75)], rtol=1e-6)
  np.testing.assert_allclose(full.entropy, [entropy], rtol=1e-6)
  np.testing.assert_allclose(full.kl, [math.log(2.0) - entropy], rtol=1e-5)  # KL(p || uniform)
  np.testing.assert_allclose(full.ref_logprobs, [math.log(0.5)], rtol=1e-6)
  np.testing.assert_allclose(k3.kl, [math.exp(r) - 1.0 - r], rtol=1e-5)
  assert k3.entropy is None


def test_temperature_hand_computed():
  # Logits (0, log 3) at tau = 0.5 become (0, 2 log 3): p = (1/10, 9/10).
  hidden, weight, targets, _ = _hand_problem()
  out = kernels_pallas.fused_logprobs_reference(hidden, weight, targets, temperature=0.5)
  np.testing.assert_allclose(out.logprobs, [math.log(0.9)], rtol=1e-6)


@pytest.mark.parametrize("kl", ["k3", "full"])
def test_reference_matches_numpy_transcription(kl):
  p = make_problem(0, t=7, d=5, v=37, d_ref=3)
  out = kernels_pallas.fused_logprobs_reference(
      p["hidden"], p["weight"], p["targets"], ref_hidden=p["ref_hidden"],
      ref_weight=p["ref_weight"], temperature=0.7, want_entropy=True, want_kl=kl)
  expected = numpy_oracle(p["hidden"], p["weight"], p["targets"], p["ref_hidden"],
                          p["ref_weight"], temperature=0.7)
  assert_close(out.logprobs, expected["logprobs"], 1e-5)
  assert_close(out.entropy, expected["entropy"], 1e-5)
  assert_close(out.kl, expected["kl_full" if kl == "full" else "k3"], 1e-5)
  assert_close(out.ref_logprobs, expected["ref_logprobs"], 1e-5)


_MEAN_IMPLS = [dict(impl="reference"), dict(impl="xla"), dict(impl="tpu", interpret=True),
               dict(impl="gpu", interpret=True)]


@pytest.mark.parametrize("kwargs", _MEAN_IMPLS, ids=lambda k: k["impl"])
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_mean_logprob_and_its_gradient_hand_computed(kwargs, temperature):
  # Logits (0, log 3) / tau. tau = 1: p = (1/4, 3/4); tau = 0.5: p = (1/10, 9/10).
  # mean_logprob = (log p_0 + log p_1) / 2, and with h = 1 and z = h W / tau,
  # d mean_logprob / d W_a = (1/V - p_a) / tau. V = 2 here: the Pallas kernels'
  # blocks (128 / 16 columns) are mostly padding, which must enter neither sum nor V.
  hidden, weight, targets, _ = _hand_problem()
  p = (0.25, 0.75) if temperature == 1.0 else (0.1, 0.9)
  expected = 0.5 * (math.log(p[0]) + math.log(p[1]))
  expected_grad = [[(0.5 - p[0]) / temperature, (0.5 - p[1]) / temperature]]

  def mean_logprob(w):
    out = kernels_pallas.fused_logprobs(hidden, w, targets, temperature=temperature,
                                        want_mean_logprob=True, **kwargs)
    return out.mean_logprob[0]

  np.testing.assert_allclose(mean_logprob(weight), expected, rtol=1e-6)
  np.testing.assert_allclose(jax.grad(mean_logprob)(weight), expected_grad, rtol=1e-5, atol=1e-6)


def test_mean_logprob_matches_numpy_transcription_and_is_off_by_default():
  p = make_problem(1, t=6, d=5, v=37)
  out = kernels_pallas.fused_logprobs_reference(p["hidden"], p["weight"], p["targets"],
                                                temperature=0.6, want_mean_logprob=True)
  expected = numpy_oracle(p["hidden"], p["weight"], p["targets"], temperature=0.6)
  assert_close(out.mean_logprob, expected["mean_logprob"], 1e-5)
  assert kernels_pallas.fused_logprobs_reference(p["hidden"], p["weight"],
                                                 p["targets"]).mean_logprob is None

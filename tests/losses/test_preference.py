import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from . import reference_numpy as ref

# Pair 0: rho_c = 1, rho_r = -1 (Delta = 2).  Pair 1: rho_c = -1, rho_r = 0 (Delta = -1).
PC, PR = jnp.array([-1.0, -2.0]), jnp.array([-3.0, -1.0])
RC, RR = jnp.array([-2.0, -1.0]), jnp.array([-2.0, -1.0])
BETA = 0.5


def _softplus(x):
  return math.log1p(math.exp(x))


def test_dpo_sigmoid_hand_values_and_gradient():
  out = losses.dpo_loss(PC, PR, RC, RR, beta=BETA)
  # -log sigma(beta Delta) = softplus(-beta Delta): softplus(-1) + softplus(0.5).
  np.testing.assert_allclose([out.total, out.count], [_softplus(-1.0) + _softplus(0.5), 2.0],
                             rtol=1e-6)
  np.testing.assert_allclose(out.metrics["reward_accuracy"], 0.5)
  np.testing.assert_allclose(out.metrics["reward_margin"], BETA * (2.0 - 1.0) / 2, rtol=1e-6)
  grad = jax.grad(lambda pc: losses.dpo_loss(pc, PR, RC, RR, beta=BETA).total)(PC)
  sig = lambda x: 1 / (1 + math.exp(-x))
  np.testing.assert_allclose(grad, [-BETA * sig(-1.0), -BETA * sig(0.5)], rtol=1e-6)


def test_dpo_variants_hand_values():
  ipo = losses.dpo_loss(PC, PR, RC, RR, beta=BETA, kind="ipo")
  np.testing.assert_allclose(ipo.total, (2 - 1) ** 2 + (-1 - 1) ** 2, rtol=1e-6)
  # Length-normalised (TRL): pair 0 with n_c = 2, n_r = 4: 1/2 + 1/4 = 0.75.
  ipo_n = losses.dpo_loss(PC, PR, RC, RR, beta=BETA, kind="ipo",
                          chosen_lengths=jnp.array([2, 1]), rejected_lengths=jnp.array([4, 1]))
  np.testing.assert_allclose(ipo_n.total, (0.75 - 1) ** 2 + (-1 - 1) ** 2, rtol=1e-6)
  hinge = losses.dpo_loss(PC, PR, RC, RR, beta=BETA, kind="hinge")
  np.testing.assert_allclose(hinge.total, 0.0 + 1.5, rtol=1e-6)
  eps = 0.1
  robust = losses.dpo_loss(PC, PR, RC, RR, beta=BETA, kind="robust", label_smoothing=eps)
  per = [((1 - eps) * _softplus(-x) - eps * _softplus(x)) / (1 - 2 * eps) for x in (1.0, -0.5)]
  np.testing.assert_allclose(robust.total, sum(per), rtol=1e-6)
  cdpo = losses.dpo_loss(PC, PR, RC, RR, beta=BETA, label_smoothing=eps)
  per = [(1 - eps) * _softplus(-x) + eps * _softplus(x) for x in (1.0, -0.5)]
  np.testing.assert_allclose(cdpo.total, sum(per), rtol=1e-6)


def test_dpo_matches_trl_and_openrlhf():
  rng = np.random.default_rng(0)
  pc, pr, rc, rr = (rng.normal(-20, 5, size=6) for _ in range(4))
  nc, nr = rng.integers(3, 30, size=6), rng.integers(3, 30, size=6)
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  mean = lambda out: float(out.total) / float(out.count)
  np.testing.assert_allclose(mean(losses.dpo_loss(f32(pc), f32(pr), f32(rc), f32(rr), beta=0.1)),
                             ref.trl_dpo(pc, pr, rc, rr, 0.1, "sigmoid"), rtol=1e-5)
  np.testing.assert_allclose(
      mean(losses.dpo_loss(f32(pc), f32(pr), f32(rc), f32(rr), beta=0.1, kind="ipo",
                           chosen_lengths=jnp.asarray(nc), rejected_lengths=jnp.asarray(nr))),
      ref.trl_dpo(pc, pr, rc, rr, 0.1, "ipo", nc, nr), rtol=1e-5)
  np.testing.assert_allclose(
      mean(losses.dpo_loss(f32(pc), f32(pr), f32(rc), f32(rr), beta=0.1, kind="ipo")),
      ref.openrlhf_dpo(pc, pr, rc, rr, 0.1, ipo=True), rtol=1e-5)
  np.testing.assert_allclose(
      mean(losses.dpo_loss(f32(pc), f32(pr), f32(rc), f32(rr), beta=0.1, label_smoothing=0.2)),
      ref.openrlhf_dpo(pc, pr, rc, rr, 0.1, label_smoothing=0.2), rtol=1e-5)


def test_inpo_hand_value():
  # eta = 0.5, tau = 0.25: h = 2 - 0.5 * 0 - 0.5 * 1 = 1.5; target 1/(2 eta) = 1.
  out = losses.inpo_loss(jnp.array([-1.0]), jnp.array([-3.0]), jnp.array([-2.0]),
                         jnp.array([-2.0]), jnp.array([-1.0]), jnp.array([-2.0]),
                         eta=0.5, tau=0.25)
  np.testing.assert_allclose([out.total, out.count], [0.25, 1.0], rtol=1e-6)
  with pytest.raises(ValueError, match="tau"):
    losses.inpo_loss(PC, PR, RC, RR, PC, PR, eta=0.1, tau=0.2)


def test_preference_bad_inputs():
  with pytest.raises(ValueError, match="DPO kind"):
    losses.dpo_loss(PC, PR, RC, RR, kind="kto")
  with pytest.raises(ValueError, match="ref_rejected_logps"):
    losses.dpo_loss(PC, PR, RC, jnp.zeros(3))
  with pytest.raises(ValueError, match="label_smoothing"):
    losses.dpo_loss(PC, PR, RC, RR, label_smoothing=0.5)

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


def _sig(x):
  return 1 / (1 + math.exp(-x))


# ---- SimPO -------------------------------------------------------------------------------
# Pair 0: lp_c = -2 over 2 tokens, lp_r = -4 over 4: rewards (beta=1) -1 and -1, z = -0.5.
# Pair 1: lp_c = -6 over 3 tokens, lp_r = -3 over 1: rewards -2 and -3, z = 0.5.
S_PC, S_PR = jnp.array([-2.0, -6.0]), jnp.array([-4.0, -3.0])
S_NC, S_NR = jnp.array([2, 3]), jnp.array([4, 1])


def test_simpo_hand_values_and_gradient():
  out = losses.simpo_loss(S_PC, S_PR, S_NC, S_NR, beta=1.0, gamma=0.5)
  # -log sigma(z) = softplus(-z).
  np.testing.assert_allclose([out.total, out.count], [_softplus(0.5) + _softplus(-0.5), 2.0],
                             rtol=1e-6)
  np.testing.assert_allclose(out.metrics["reward_accuracy"], 0.5)  # pair 0 is a tie
  np.testing.assert_allclose(out.metrics["reward_margin"], 0.5, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["reward_chosen"], -1.5, rtol=1e-6)
  # dL/dlp_c = -sigma(-z) * beta / n_c.
  grad = jax.grad(lambda pc: losses.simpo_loss(pc, S_PR, S_NC, S_NR, beta=1.0,
                                               gamma=0.5).total)(S_PC)
  np.testing.assert_allclose(grad, [-_sig(0.5) / 2, -_sig(-0.5) / 3], rtol=1e-6)
  eps = 0.2  # label smoothing: (1 - eps) softplus(-z) + eps softplus(z)
  smooth = losses.simpo_loss(S_PC, S_PR, S_NC, S_NR, beta=1.0, gamma=0.5, label_smoothing=eps)
  want = sum((1 - eps) * _softplus(-z) + eps * _softplus(z) for z in (-0.5, 0.5))
  np.testing.assert_allclose(smooth.total, want, rtol=1e-6)
  # beta scales the normalised log-probs before the margin: beta = 2 gives z = -0.5, 1.5.
  b2 = losses.simpo_loss(S_PC, S_PR, S_NC, S_NR, beta=2.0, gamma=0.5)
  np.testing.assert_allclose(b2.total, _softplus(0.5) + _softplus(-1.5), rtol=1e-6)


# ---- ORPO --------------------------------------------------------------------------------
# Pair 0: chosen P = 0.5 (odds 1) over 2 tokens, rejected P = 0.2 (odds 1/4) over 3 tokens.
# Pair 1: chosen P = 0.2, rejected P = 0.5, one token each.
O_PC = jnp.array([2 * math.log(0.5), math.log(0.2)])
O_PR = jnp.array([3 * math.log(0.2), math.log(0.5)])
O_NC, O_NR = jnp.array([2, 1]), jnp.array([3, 1])


def _orpo_numpy(pc, pr, nc, nr, lam):
  """Independent transcription: L = -lp_c/n_c - lam log sigma(log odds_c - log odds_r)."""
  mc, mr = np.asarray(pc, np.float64) / nc, np.asarray(pr, np.float64) / nr
  lo = lambda m: m - np.log1p(-np.exp(m))
  ratio = lo(mc) - lo(mr)
  return np.sum(-mc + lam * np.log1p(np.exp(-ratio)))


def test_orpo_hand_values_and_gradient():
  lam = 0.5
  out = losses.orpo_loss(O_PC, O_PR, O_NC, O_NR, lam=lam)
  # Pair 0: ratio = 0 - log(1/4) = log 4, -log sigma(log 4) = log(5/4); NLL log 2.
  # Pair 1: ratio = -log 4, -log sigma(-log 4) = log 5; NLL log 5.
  want = (math.log(2) + lam * math.log(1.25)) + (math.log(5) + lam * math.log(5))
  np.testing.assert_allclose([out.total, out.count], [want, 2.0], rtol=1e-5)
  np.testing.assert_allclose(out.metrics["log_odds_ratio"], 0.0, atol=1e-5)
  np.testing.assert_allclose(out.metrics["nll"], (math.log(2) + math.log(5)) / 2, rtol=1e-5)
  np.testing.assert_allclose(out.metrics["reward_accuracy"], 0.5)
  # d/dlp_c = (1/n_c) (-1 - lam sigma(-ratio) / (1 - P_c)): pair 0: P_c = 1/2, sigma(-log 4) = 1/5.
  grad = jax.grad(lambda pc: losses.orpo_loss(pc, O_PR, O_NC, O_NR, lam=lam).total)(O_PC)
  g1 = (-1 - lam * (4 / 5) / (1 - 0.2)) / 1  # pair 1: sigma(log 4) = 4/5, P_c = 0.2
  np.testing.assert_allclose(grad, [(-1 - lam * 0.2 / 0.5) / 2, g1], rtol=1e-5)


def test_orpo_matches_numpy_transcription_and_finite_difference():
  rng = np.random.default_rng(1)
  nc, nr = rng.integers(1, 9, size=5), rng.integers(1, 9, size=5)
  pc, pr = -rng.uniform(0.05, 3, size=5) * nc, -rng.uniform(0.05, 3, size=5) * nr
  f = lambda x: jnp.asarray(x, jnp.float32)
  out = losses.orpo_loss(f(pc), f(pr), jnp.asarray(nc), jnp.asarray(nr), lam=0.3)
  np.testing.assert_allclose(out.total, _orpo_numpy(pc, pr, nc, nr, 0.3), rtol=1e-5)
  grad = jax.grad(lambda x: losses.orpo_loss(x, f(pr), jnp.asarray(nc), jnp.asarray(nr),
                                             lam=0.3).total)(f(pr * 0 + pc))
  h = 1e-5
  fd = [(_orpo_numpy(pc + h * e, pr, nc, nr, 0.3) - _orpo_numpy(pc - h * e, pr, nc, nr, 0.3))
        / (2 * h) for e in np.eye(5)]
  np.testing.assert_allclose(grad, fd, rtol=1e-3, atol=1e-5)


def test_orpo_log_odds_is_finite_at_probability_one():
  out = losses.orpo_loss(jnp.array([0.0, -80.0]), jnp.array([-1.0, -1.0]), jnp.array([1, 1]),
                         jnp.array([1, 1]))
  grad = jax.grad(lambda pc: losses.orpo_loss(pc, jnp.array([-1.0, -1.0]), jnp.array([1, 1]),
                                              jnp.array([1, 1])).total)(jnp.array([0.0, -80.0]))
  assert np.isfinite(out.total) and np.all(np.isfinite(grad))
  # Deep in the tail log odds(m) ~ m: -80 - log(1 - e^-80) = -80.
  np.testing.assert_allclose(losses.preference.log_odds(jnp.array([-80.0])), [-80.0], rtol=1e-6)


# ---- KTO ---------------------------------------------------------------------------------
# r = lp - lp_ref = [1, 0, -2]; labels: desirable, undesirable, undesirable.
K_LP, K_REF = jnp.array([-1.0, -2.0, -3.0]), jnp.array([-2.0, -2.0, -1.0])
K_LABELS = jnp.array([True, False, False])


def test_kto_hand_values_and_gradient():
  kl_p, kl_r = jnp.array([-1.0, -1.0]), jnp.array([-2.0, -2.0])  # z0 = mean(1, 1) = 1
  out = losses.kto_loss(K_LP, K_REF, K_LABELS, kl_p, kl_r, beta=1.0, desirable_weight=2.0,
                        undesirable_weight=0.5)
  # Desirable: 2 (1 - sigma(1 - 1)); undesirable: 0.5 (1 - sigma(1 - 0)), 0.5 (1 - sigma(1 + 2)).
  want = 2 * 0.5 + 0.5 * (1 - _sig(1.0)) + 0.5 * (1 - _sig(3.0))
  np.testing.assert_allclose([out.total, out.count], [want, 3.0], rtol=1e-6)
  np.testing.assert_allclose([out.metrics["kl"], out.metrics["reward_chosen"],
                              out.metrics["reward_rejected"], out.metrics["desirable_frac"]],
                             [1.0, 1.0, -1.0, 1 / 3], rtol=1e-6)
  g_lp, g_kl = jax.grad(lambda lp, klp: losses.kto_loss(
      lp, K_REF, K_LABELS, klp, kl_r, beta=1.0, desirable_weight=2.0,
      undesirable_weight=0.5).total, argnums=(0, 1))(K_LP, kl_p)
  dsig = lambda x: _sig(x) * (1 - _sig(x))
  np.testing.assert_allclose(g_lp, [-2 * dsig(0.0), 0.5 * dsig(1.0), 0.5 * dsig(3.0)], rtol=1e-6)
  np.testing.assert_array_equal(g_kl, [0.0, 0.0])  # the reference point is not differentiated


def test_kto_reference_point_is_clipped_at_zero():
  # KL terms 1 and -3: mean -1 -> z0 = 0. beta = 0.5: 1 - sigma(0.5), 1 - sigma(0), 1 - sigma(-1).
  out = losses.kto_loss(K_LP, K_REF, K_LABELS, jnp.array([-1.0, -5.0]), jnp.array([-2.0, -2.0]),
                        beta=0.5)
  want = (1 - _sig(0.5)) + (1 - _sig(0.0)) + (1 - _sig(1.0))
  np.testing.assert_allclose(out.total, want, rtol=1e-6)
  np.testing.assert_allclose(out.metrics["kl"], 0.0)


def test_inpo_gradient_hand_value():
  # Same row as test_inpo_hand_value: dL/dlp_w = 2 (h - 1/(2 eta)) = 1, dL/dlp_l = -1;
  # no gradient into the constant reference and previous iterate.
  args = [jnp.array([x]) for x in (-1.0, -3.0, -2.0, -2.0, -1.0, -2.0)]
  grads = jax.grad(lambda *a: losses.inpo_loss(*a, eta=0.5, tau=0.25).total,
                   argnums=tuple(range(6)))(*args)
  np.testing.assert_allclose(np.concatenate(grads), [1.0, -1.0, 0, 0, 0, 0], atol=1e-6)


# ---- registry ----------------------------------------------------------------------------


def test_preference_registry_rows_and_errors():
  from jaxrl_llm.losses import preference
  table = preference.PREFERENCE_LOSSES
  assert {"dpo", "ipo", "robust", "simpo", "orpo", "kto", "inpo"} <= set(table)
  assert table["dpo"].needs_reference and not table["dpo"].needs_lengths
  assert not table["simpo"].needs_reference and table["simpo"].needs_lengths
  assert not table["orpo"].needs_reference and not table["kto"].paired
  assert table["inpo"].needs_previous and table["inpo"].needs_reference
  with pytest.raises(ValueError, match="known: dpo, hinge, inpo"):
    preference.get_preference_loss("cpo")
  with pytest.raises(ValueError, match="options of preference loss 'simpo'.*beta, gamma"):
    preference.check_preference_options("simpo", {"gama": 1.0})
  # The rows are the pure functions with their kind fixed: ipo is TRL's length-normalised IPO.
  ipo = table["ipo"].fn(PC, PR, ref_chosen_logps=RC, ref_rejected_logps=RR,
                        chosen_lengths=jnp.array([2, 1]), rejected_lengths=jnp.array([4, 1]),
                        beta=BETA)
  np.testing.assert_allclose(ipo.total, (0.75 - 1) ** 2 + (-1 - 1) ** 2, rtol=1e-6)
  with pytest.raises(ValueError, match="chosen_lengths"):
    losses.simpo_loss(S_PC, S_PR, jnp.array([1, 2, 3]), S_NR)
  with pytest.raises(ValueError, match="ref_kl_logps"):
    losses.kto_loss(K_LP, K_REF, K_LABELS, jnp.zeros(2), jnp.zeros(3))

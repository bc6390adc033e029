"""SAPO, GMPO (geo_mean), Clip-Cov, KL-Cov and the shared pg_clip_metrics helper.

Expected values are worked by hand in the comments (or written as an explicit
per-token transcription of the formula with ``math``), never taken from the code.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from jaxrl_llm.losses import policy


def _sig(x):
  return 1.0 / (1.0 + math.exp(-x))


def _mean(out):
  return losses.safe_mean(out.total, out.count)


# ---------------------------------------------------------------- pg_clip_metrics


def test_pg_clip_metrics_sign_aware_and_plain():
  # ratios 1.5 (A>0: high side), 0.5 (A<0: low side), 1.1 (inside), 0.7 (A>0: below low, but
  # a PPO clip on the low side binds only for A<0).  Bounds [0.8, 1.2].
  ratio = jnp.array([[1.5, 0.5, 1.1, 0.7], [9.0, 9.0, 9.0, 9.0]])
  log_ratio = jnp.log(ratio)
  adv = jnp.array([[1.0, -1.0, -1.0, 1.0], [1.0] * 4])
  mask = jnp.array([[1.0] * 4, [0.0] * 4])     # second row masked: ignored everywhere
  clipped, m = policy.pg_clip_metrics(ratio, log_ratio, adv, mask, low=0.8, high=1.2)
  np.testing.assert_array_equal(clipped, [[1, 1, 0, 0], [0, 0, 0, 0]])
  np.testing.assert_allclose([m["clip_frac"], m["clip_frac_low"], m["clip_frac_high"]],
                             [0.5, 0.25, 0.25])
  np.testing.assert_allclose(m["approx_kl"], -math.log(1.5 * 0.5 * 1.1 * 0.7) / 4, rtol=1e-6)
  np.testing.assert_allclose([m["ratio_mean"], m["ratio_max"], m["ratio_min"]],
                             [(1.5 + 0.5 + 1.1 + 0.7) / 4, 1.5, 0.5], rtol=1e-6)
  _, m = policy.pg_clip_metrics(ratio, log_ratio, adv, mask, low=0.8, high=1.2,
                                sign_aware=False, ratio_prefix=None)
  # Plain sides: low {0.5, 0.7}, high {1.5}.
  np.testing.assert_allclose([m["clip_frac"], m["clip_frac_low"], m["clip_frac_high"]],
                             [0.75, 0.5, 0.25])
  assert "ratio_mean" not in m


# ---------------------------------------------------------------- SAPO


def test_sapo_hand_values_and_gradient():
  # Row 0: ratios 1.5, 0.5, 1 with A = +1, -1, +2.  Row 1 fully masked (garbage -inf).
  #   t0: tau 1:    L = -1 * sigmoid(0.5) * 4
  #   t1: tau 1.05: L = +1 * sigmoid(1.05 * -0.5) * 4 / 1.05
  #   t2: tau 1:    L = -2 * sigmoid(0) * 4 = -4
  # seq-mean-token-mean: one non-empty row, mean of its 3 tokens.
  logp = jnp.array([[math.log(1.5), math.log(0.5), 0.0], [-jnp.inf] * 3])
  old = jnp.array([[0.0] * 3, [-jnp.inf] * 3])
  adv = jnp.array([[1.0, -1.0, 2.0], [1.0] * 3])
  mask = jnp.array([[1.0] * 3, [0.0] * 3])
  f = lambda lp: _mean(policy.sapo_policy_loss(lp, old, adv, mask))
  t = [-_sig(0.5) * 4, _sig(-0.525) * 4 / 1.05, -4.0]
  np.testing.assert_allclose(f(logp), sum(t) / 3, rtol=1e-6)
  # d/dlp of -A sigmoid(tau (r - 1)) 4 / tau = -A * 4 s (1 - s) * r   (tau cancels), / 3.
  g = [-1 * 4 * _sig(0.5) * (1 - _sig(0.5)) * 1.5,
       1 * 4 * _sig(-0.525) * (1 - _sig(-0.525)) * 0.5,
       -2 * 4 * 0.25 * 1.0]
  np.testing.assert_allclose(jax.grad(f)(logp), [[x / 3 for x in g], [0.0] * 3], rtol=1e-5)
  out = policy.sapo_policy_loss(logp, old, adv, mask, agg_mode="token-mean")
  assert float(out.count) == 3.0 and float(out.metrics["clip_frac"]) == 0.0
  gw = [4 * _sig(0.5) * (1 - _sig(0.5)), 4 * _sig(-0.525) * (1 - _sig(-0.525)), 1.0]
  np.testing.assert_allclose(out.metrics["gate_weight_mean"], sum(gw) / 3, rtol=1e-6)


def test_sapo_on_policy_gradient_equals_reinforce():
  # At r = 1 the gate's slope is 4 * 1/4 = 1: same gradient as -A lp (any tau).
  rng = np.random.default_rng(0)
  lp = jnp.asarray(rng.normal(-1.0, 0.3, size=(3, 4)), jnp.float32)
  adv = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
  mask = jnp.ones((3, 4))
  g = jax.grad(lambda x: _mean(policy.sapo_policy_loss(x, lp, adv, mask, tau_neg=3.0)))(lp)
  g_pg = jax.grad(lambda x: _mean(losses.reinforce_loss(x, None, adv, mask,
                                                        agg_mode="seq-mean-token-mean")))(lp)
  np.testing.assert_allclose(g, g_pg, rtol=1e-5, atol=1e-7)


def test_sapo_log_ratio_clamp():
  # log-ratio 30 clamps to 20: gate sigmoid(e^20 - 1) = 1, loss -A * 4, zero gradient.
  out = policy.sapo_policy_loss(jnp.array([[30.0]]), jnp.zeros((1, 1)), jnp.array([1.0]),
                                jnp.ones((1, 1)))
  np.testing.assert_allclose(_mean(out), -4.0)
  g = jax.grad(lambda x: _mean(policy.sapo_policy_loss(x, jnp.zeros((1, 1)), jnp.array([1.0]),
                                                       jnp.ones((1, 1)))))(jnp.array([[30.0]]))
  assert float(g[0, 0]) == 0.0


# ---------------------------------------------------------------- GMPO


def test_gmpo_hand_values_and_gradient():
  # eps = 0.4 both sides, sequence advantages.
  # Row 0: lr [0.5, -0.1], A = +1 -> upper clip only: lr* = [0.4, -0.1], rho = e^0.15, L = -e^0.15
  # Row 1: lr [-0.6, 0.2], A = -2 -> lower clip only: lr* = [-0.4, 0.2], rho = e^-0.1, L = 2 e^-0.1
  # Row 2: empty: L = 0 but it counts: mean over B = 3 rows.
  old = jnp.array([[-1.0, -1.0], [-2.0, -2.0], [0.0, 0.0]])
  lr = jnp.array([[0.5, -0.1], [-0.6, 0.2], [0.0, 0.0]])
  adv = jnp.array([1.0, -2.0, 5.0])
  mask = jnp.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
  f = lambda lp: policy.gmpo_policy_loss(lp, old, adv, mask)
  out = f(old + lr)
  np.testing.assert_allclose([out.total, out.count],
                             [-math.exp(0.15) + 2 * math.exp(-0.1), 3.0], rtol=1e-6)
  # Gradient of (1/3) sum_i -Abar_i rho_i: clipped tokens get 0; unclipped token t of row i
  # gets -Abar_i rho_i / n_i / 3.
  g = jax.grad(lambda lp: _mean(f(lp)))(old + lr)
  np.testing.assert_allclose(g, [[0.0, -math.exp(0.15) / 2 / 3], [0.0, 2 * math.exp(-0.1) / 2 / 3],
                                 [0.0, 0.0]], rtol=1e-5)
  m = out.metrics
  np.testing.assert_allclose([m["clip_frac_high"], m["clip_frac_low"], m["clip_frac"]],
                             [0.25, 0.25, 0.5])
  np.testing.assert_allclose([m["seq_ratio_max"], m["seq_ratio_min"]],
                             [math.exp(0.15), math.exp(-0.1)], rtol=1e-6)


def test_gmpo_token_advantages_and_is_weights():
  # Token advantages [2, 0]: Abar = 1; the A = 0 token has sgn 0, so lr* = 0 there.
  # lr = [0.1, 0.3]: rho = exp((0.1 + 0) / 2); is_weights [0.5, 1.5] average to 1 -> unchanged;
  # [1, 3] average to 2 -> doubles.
  old = jnp.zeros((1, 2))
  lp = jnp.array([[0.1, 0.3]])
  adv = jnp.array([[2.0, 0.0]])
  mask = jnp.ones((1, 2))
  out = policy.gmpo_policy_loss(lp, old, adv, mask, is_weights=jnp.array([[0.5, 1.5]]))
  np.testing.assert_allclose(out.total, -math.exp(0.05), rtol=1e-6)
  out = policy.gmpo_policy_loss(lp, old, adv, mask, is_weights=jnp.array([[1.0, 3.0]]))
  np.testing.assert_allclose(out.total, -2 * math.exp(0.05), rtol=1e-6)


# ---------------------------------------------------------------- Clip-Cov


# One row, token advantages A = [3, 1, -1, -3] (mean 0), lp = [-1, -2, -3.5, -1.5] (mean -2):
# cov = A * (lp + 2) = [3, 0, 1.5, -1.5].  Token 0 has ratio 1.5 with A > 0: PPO-clipped at 1.2.
COV_LP = jnp.array([[-1.0, -2.0, -3.5, -1.5]])
COV_ADV = jnp.array([[3.0, 1.0, -1.0, -3.0]])
COV_OLD = COV_LP - jnp.array([[math.log(1.5), 0.0, 0.0, 0.0]])


def test_clip_cov_excludes_clipped_and_out_of_band_tokens():
  mask = jnp.ones((1, 4))
  f = lambda lp, **kw: policy.clip_cov_policy_loss(lp, COV_OLD, COV_ADV, mask, clip_low=0.2,
                                                   clip_cov_ratio=1.0, **kw)
  # k = 4 covers every candidate.  Candidates: cov in (1, 5) and not clipped: only token 2.
  # Per token: t0 max(-4.5, -3.6) = -3.6, t1 -1, t2 zeroed, t3 +3  -> mean -0.6 / 4.
  out = f(COV_LP)
  np.testing.assert_allclose(_mean(out), (-3.6 - 1.0 + 0.0 + 3.0) / 4, rtol=1e-6)
  np.testing.assert_allclose([out.metrics["cov_clip_frac"], out.metrics["clip_frac"]],
                             [0.25, 0.25])
  # Gradient -A r / 4 on unclipped, unselected tokens: t1 -1/4, t3 3/4.
  g = jax.grad(lambda lp: _mean(f(lp)))(COV_LP)
  np.testing.assert_allclose(g, [[0.0, -0.25, 0.0, 0.75]], rtol=1e-6, atol=1e-8)
  # ub = 1.4 < cov(t2) = 1.5: nothing selected, t2 keeps its loss -(-1) * 1 = 1.
  out = f(COV_LP, clip_cov_ub=1.4)
  np.testing.assert_allclose(_mean(out), (-3.6 - 1.0 + 1.0 + 3.0) / 4, rtol=1e-6)
  assert float(out.metrics["cov_clip_frac"]) == 0.0


def test_clip_cov_random_subset_is_a_deterministic_function_of_seed_and_step():
  # Rows: lp [-1, -1] with A = +2 and lp [-3, -3] with A = -2; ratio 1 everywhere.
  # mean A = 0, mean lp = -2: cov = 2 * 1 = 2 on row 0 and (-2)(-1) = 2 on row 1, all four
  # in (1, 5).  ratio 0.5 of N = 4 -> k = 2 tokens zeroed per call.
  lp = jnp.array([[-1.0, -1.0], [-3.0, -3.0]])
  adv = jnp.array([2.0, -2.0])
  mask = jnp.ones((2, 2))

  def zeroed(step, seed=0):
    g = jax.grad(lambda x: policy.clip_cov_policy_loss(
        x, lp, adv, mask, step=step, seed=seed, clip_cov_ratio=0.5).total)(lp)
    return g == 0

  sel = jax.jit(jax.vmap(zeroed))(jnp.arange(400))
  assert np.all(np.sum(np.asarray(sel), axis=(1, 2)) == 2)
  np.testing.assert_array_equal(zeroed(7), sel[7])               # same (seed, step), same set
  assert len({tuple(np.asarray(s).ravel()) for s in sel}) == 6   # all C(4, 2) subsets occur
  # Uniform: each token is dropped in about half of the steps (binomial sd 0.025).
  np.testing.assert_allclose(np.mean(np.asarray(sel), axis=0), 0.5, atol=0.1)
  assert not np.array_equal(np.asarray(jax.vmap(lambda s: zeroed(s, seed=1))(jnp.arange(20))),
                            np.asarray(sel[:20]))


# ---------------------------------------------------------------- KL-Cov


def test_kl_cov_hand_values_and_gradient():
  # Same cov = [3, 0, 1.5, -1.5]; lr = [0.1, -0.2, 0.3, 0]; a second, fully masked garbage row.
  # k = max(1, floor(4 * 0.5)) = 2: tokens 0 and 2 get + 0.1 |lr|.
  lr = jnp.array([[0.1, -0.2, 0.3, 0.0]])
  lp = jnp.concatenate([COV_LP, jnp.full((1, 4), -jnp.inf)])
  old = jnp.concatenate([COV_LP - lr, jnp.full((1, 4), -jnp.inf)])
  adv = jnp.concatenate([COV_ADV, jnp.full((1, 4), 50.0)])
  mask = jnp.array([[1.0] * 4, [0.0] * 4])
  f = lambda x: policy.kl_cov_policy_loss(x, old, adv, mask, kl_cov_ratio=0.5, ppo_kl_coef=0.1)
  out = f(lp)
  t = [-3 * math.exp(0.1) + 0.01, -1 * math.exp(-0.2), math.exp(0.3) + 0.03, 3.0]
  np.testing.assert_allclose(_mean(out), sum(t) / 4, rtol=1e-5)   # float32 cancellation
  np.testing.assert_allclose([out.metrics["kl_cov_frac"], out.metrics["abs_kl"]],
                             [0.5, 0.6 / 4], rtol=1e-6)
  # d/dlp: -A r, plus 0.1 sign(lr) on the selected tokens; / 4.
  g = [-3 * math.exp(0.1) + 0.1, -math.exp(-0.2), math.exp(0.3) + 0.1, 3.0]
  np.testing.assert_allclose(jax.grad(lambda x: _mean(f(x)))(lp), [[x / 4 for x in g], [0] * 4],
                             rtol=1e-5)


def test_kl_cov_count_uses_float64_floor():
  # 10 tokens, ratio 0.7: float64 floor(7.0) = 7 although float32(0.7) * 10 = 6.9999998.
  lp = jnp.linspace(-3.0, -1.0, 10)[None]
  adv = jnp.linspace(-1.0, 1.0, 10)[None]
  out = policy.kl_cov_policy_loss(lp, lp, adv, jnp.ones((1, 10)), kl_cov_ratio=0.7)
  np.testing.assert_allclose(out.metrics["kl_cov_frac"], 0.7, rtol=1e-6)
  # At least one token even when ratio * N < 1.
  out = policy.kl_cov_policy_loss(lp, lp, adv, jnp.ones((1, 10)), kl_cov_ratio=1e-4)
  np.testing.assert_allclose(out.metrics["kl_cov_frac"], 0.1, rtol=1e-6)


# ---------------------------------------------------------------- shared


@pytest.mark.parametrize("fn", [policy.sapo_policy_loss, policy.gmpo_policy_loss,
                                policy.clip_cov_policy_loss, policy.kl_cov_policy_loss])
def test_all_masked_batch_and_jit(fn):
  lp = jnp.full((2, 3), -jnp.inf)
  out = jax.jit(fn)(lp, lp, jnp.ones((2,)), jnp.zeros((2, 3)))
  assert float(losses.safe_mean(out.total, out.count)) == 0.0
  assert all(np.isfinite(float(v)) for v in out.metrics.values())
  g = jax.grad(lambda x: losses.safe_mean(*fn(x, lp, jnp.ones((2,)), jnp.zeros((2, 3)))[:2]))(
      jnp.zeros((2, 3)))
  np.testing.assert_array_equal(g, 0.0)


def test_bad_options_raise():
  lp = jnp.zeros((2, 3))
  adv = jnp.zeros((2,))
  with pytest.raises(ValueError, match="tau_pos"):
    policy.sapo_policy_loss(lp, lp, adv, lp, tau_neg=0.0)
  with pytest.raises(ValueError, match="clip_low"):
    policy.gmpo_policy_loss(lp, lp, adv, lp, clip_low=-0.1)
  with pytest.raises(ValueError, match="clip_cov_lb"):
    policy.clip_cov_policy_loss(lp, lp, adv, lp, clip_cov_lb=5.0, clip_cov_ub=1.0)
  with pytest.raises(ValueError, match="clip_cov_ratio"):
    policy.clip_cov_policy_loss(lp, lp, adv, lp, clip_cov_ratio=0.0)
  with pytest.raises(ValueError, match="kl_cov_ratio"):
    policy.kl_cov_policy_loss(lp, lp, adv, lp, kl_cov_ratio=-1.0)
  with pytest.raises(ValueError, match="advantages"):
    policy.gmpo_policy_loss(lp, lp, jnp.zeros((3,)), lp)
  with pytest.raises(ValueError, match="old_logprobs"):
    policy.kl_cov_policy_loss(lp, jnp.zeros((2, 4)), adv, lp)


# ---------------------------------------------------------------- random batches vs verl loops


def _verl_batch(seed, b=5, t=6):
  rng = np.random.default_rng(seed)
  old = rng.normal(-1.5, 0.5, size=(b, t))
  logp = old + rng.normal(0.0, 0.4, size=(b, t))
  adv = np.repeat(rng.normal(size=(b, 1)), t, axis=1)
  mask = np.ones((b, t))
  mask[1, 4:] = 0
  mask[2, 1:] = 0
  mask[3] = 0                       # fully masked row
  return old, logp, adv, mask


def _verl_sapo(old, logp, adv, mask, tau_pos=1.0, tau_neg=1.05):
  """verl 0.9.1 ``sapo``: per-token gate loss, forced seq-mean-token-mean."""
  rows = []
  for i in range(logp.shape[0]):
    n = mask[i].sum()
    if n == 0:
      continue
    s = 0.0
    for j in range(logp.shape[1]):
      if mask[i, j]:
        r = math.exp(min(max(logp[i, j] - old[i, j], -20.0), 20.0))
        tau = tau_pos if adv[i, j] > 0 else tau_neg
        s += -adv[i, j] * _sig(tau * (r - 1.0)) * 4.0 / tau
    rows.append(s / n)
  return sum(rows) / len(rows)


def _verl_geo_mean(old, logp, adv, mask, eps_l, eps_h):
  """verl 0.9.1 ``geo_mean``: torch.mean over every row."""
  total = 0.0
  for i in range(logp.shape[0]):
    n = mask[i].sum()
    acc, a_sum = 0.0, 0.0
    for j in range(logp.shape[1]):
      lr = logp[i, j] - old[i, j]
      sgn = np.sign(adv[i, j])
      lr_c = min(max(lr, -eps_l), eps_h)
      acc += sgn * min(sgn * lr, sgn * lr_c) * mask[i, j]
      a_sum += adv[i, j] * mask[i, j]
    total += -(a_sum / (n + 1e-8)) * math.exp(acc / (n + 1e-8))
  return total / logp.shape[0]


def _verl_kl_cov(old, logp, adv, mask, ratio, coef):
  """verl 0.9.1 ``kl_cov`` with token-mean aggregation (top-k over the valid tokens)."""
  valid = [(i, j) for i in range(logp.shape[0]) for j in range(logp.shape[1]) if mask[i, j]]
  a = np.array([adv[i, j] for i, j in valid])
  lp = np.array([logp[i, j] for i, j in valid])
  cov = (a - a.mean()) * (lp - lp.mean())
  k = max(1, int(len(valid) * ratio))
  top = set(np.argsort(-cov, kind="stable")[:k].tolist())
  total = 0.0
  for idx, (i, j) in enumerate(valid):
    lr = logp[i, j] - old[i, j]
    total += -adv[i, j] * math.exp(lr) + (coef * abs(lr) if idx in top else 0.0)
  return total / len(valid)


def _fd_grad(f, x, h=1e-6):
  g = np.zeros_like(x)
  for idx in np.ndindex(x.shape):
    up, dn = x.copy(), x.copy()
    up[idx] += h
    dn[idx] -= h
    g[idx] = (f(up) - f(dn)) / (2 * h)
  return g


@pytest.mark.parametrize("name", ["sapo", "gmpo", "kl_cov"])
def test_matches_verl_loop_value_and_finite_difference_gradient(name):
  old, logp, adv, mask = _verl_batch({"sapo": 0, "gmpo": 1, "kl_cov": 2}[name])
  if name == "sapo":
    ref = lambda lp: _verl_sapo(old, lp, adv, mask)
    ours = lambda lp: policy.sapo_policy_loss(lp, jnp.asarray(old, jnp.float32),
                                              jnp.asarray(adv[:, 0], jnp.float32), jnp.asarray(mask))
  elif name == "gmpo":
    ref = lambda lp: _verl_geo_mean(old, lp, adv, mask, 0.2, 0.3)
    ours = lambda lp: policy.gmpo_policy_loss(lp, jnp.asarray(old, jnp.float32),
                                              jnp.asarray(adv[:, 0], jnp.float32), jnp.asarray(mask),
                                              clip_low=0.2, clip_high=0.3)
  else:
    ref = lambda lp: _verl_kl_cov(old, lp, adv, mask, 0.25, 0.5)
    ours = lambda lp: policy.kl_cov_policy_loss(lp, jnp.asarray(old, jnp.float32),
                                                jnp.asarray(adv[:, 0], jnp.float32),
                                                jnp.asarray(mask), kl_cov_ratio=0.25,
                                                ppo_kl_coef=0.5)
  f = lambda lp: losses.safe_mean(*ours(lp)[:2])
  lp32 = jnp.asarray(logp, jnp.float32)
  np.testing.assert_allclose(float(f(lp32)), ref(logp), rtol=2e-5, atol=1e-6)
  np.testing.assert_allclose(jax.grad(f)(lp32), _fd_grad(ref, logp), rtol=1e-3, atol=1e-5)


def test_clip_cov_matches_verl_loop_when_every_candidate_is_dropped():
  # clip_cov_ratio 1 -> k = N >= #candidates: the random subset is all candidates, so the
  # loss is deterministic and equals verl's with corr = 0 on every candidate.
  old, logp, adv, mask = _verl_batch(3)
  logp[0, 0] = old[0, 0] + 0.8            # a clipped token
  valid = mask > 0
  a_mean = adv[valid].mean()
  lp_mean = logp[valid].mean()
  expected, n = 0.0, 0
  for i in range(logp.shape[0]):
    for j in range(logp.shape[1]):
      if not mask[i, j]:
        continue
      r = math.exp(logp[i, j] - old[i, j])
      l1 = -adv[i, j] * r
      l2 = -adv[i, j] * min(max(r, 0.8), 1.2)
      cov = (adv[i, j] - a_mean) * (logp[i, j] - lp_mean)
      dropped = (not l2 > l1) and 0.05 < cov < 5.0
      expected += 0.0 if dropped else max(l1, l2)
      n += 1
  out = policy.clip_cov_policy_loss(jnp.asarray(logp, jnp.float32), jnp.asarray(old, jnp.float32),
                                    jnp.asarray(adv[:, 0], jnp.float32), jnp.asarray(mask),
                                    clip_cov_ratio=1.0, clip_cov_lb=0.05)
  assert 0 < float(out.metrics["cov_clip_frac"]) < 1
  np.testing.assert_allclose(float(out.total) / float(out.count), expected / n, rtol=2e-5)

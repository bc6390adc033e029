"""PACS (arXiv 2509.02522): score, psi, class weights and the BCE loss.

Expected values are worked by hand below or come from the explicit NumPy loop
``_numpy_pacs`` (an independent transcription of the spec's formulas).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.losses import pacs

# Five rows, T = 2, groups 7 = {0, 2, 4} and 3 = {1, 3} (non-contiguous ids).
# Per-token log-ratios lp - lp_old; masked positions hold garbage (-inf log-probs).
DIFF = np.array([[0.2, 0.1], [-0.1, 0.5], [0.0, -0.3], [0.4, 0.0], [0.1, 0.2]])
MASK = np.array([[1, 1], [1, 0], [1, 1], [1, 1], [1, 0]], np.float32)
OLD = np.full((5, 2), -1.0)
LOGP = OLD + DIFF
LOGP_GARBAGE = np.where(MASK > 0, LOGP, -np.inf)
OLD_GARBAGE = np.where(MASK > 0, OLD, -np.inf)
GROUPS = np.array([7, 3, 7, 3, 7], np.int32)
REWARDS = np.array([1.0, 0.0, 0.0, 1.0, 0.0], np.float32)


def _call(logp=LOGP_GARBAGE, old=OLD_GARBAGE, rewards=REWARDS, groups=GROUPS, **kw):
  return pacs.pacs_loss(jnp.asarray(logp, jnp.float32), jnp.asarray(old, jnp.float32),
                        jnp.zeros(5), jnp.asarray(MASK), rewards=jnp.asarray(rewards),
                        group_ids=jnp.asarray(groups), **kw)


def test_hand_computed_rows_rloo_question_weights():
  # rhat = masked row sums of DIFF: [0.3, -0.1, -0.3, 0.4, 0.1].
  # RLOO, group 7 (0.3, -0.3, 0.1; sum 0.1):
  #   psi0 = 0.3 - (-0.3 + 0.1)/2 = 0.4,  psi2 = -0.3 - (0.3 + 0.1)/2 = -0.5,
  #   psi4 = 0.1 - (0.3 - 0.3)/2 = 0.1
  # group 3 (-0.1, 0.4): psi1 = -0.1 - 0.4 = -0.5, psi3 = 0.4 + 0.1 = 0.5
  # Labels: group 7 [1, 0, 0] (n = 3, n_pos = 1, n_neg = 2): w_pos = 3/2, w_neg = 3/4;
  #         group 3 [0, 1]: w = 2/2 = 1.
  # BCE(psi, r) = softplus(psi) - r psi:  r = 1 -> log(1 + e^-psi);  r = 0 -> log(1 + e^psi).
  out = _call()
  bce = [math.log1p(math.exp(-0.4)), math.log1p(math.exp(-0.5)), math.log1p(math.exp(-0.5)),
         math.log1p(math.exp(-0.5)), math.log1p(math.exp(0.1))]
  w = [1.5, 1.0, 0.75, 1.0, 0.75]
  np.testing.assert_allclose(float(out.total), sum(a * b for a, b in zip(w, bce)), rtol=1e-6)
  assert float(out.count) == 5.0                      # BCE mean over rows, not over sum(w)
  m = out.metrics
  np.testing.assert_allclose(m["pacs_score_mean"], (0.3 - 0.1 - 0.3 + 0.4 + 0.1) / 5, rtol=1e-6)
  np.testing.assert_allclose(m["pacs_psi_mean"], (0.4 - 0.5 - 0.5 + 0.5 + 0.1) / 5, atol=1e-7)
  np.testing.assert_allclose(m["pacs_weight_mean"], sum(w) / 5, rtol=1e-6)
  # psi > 0 predicts r = 1: rows 0-3 right, row 4 (psi 0.1, r = 0) wrong.
  np.testing.assert_allclose(m["pacs_accuracy"], 0.8, rtol=1e-6)
  np.testing.assert_allclose(m["pacs_bce"], sum(bce) / 5, rtol=1e-6)


def _numpy_pacs(logp, old, mask, rewards, groups, beta=1.0, psi="rloo", weights="question",
                eps=1e-6):
  """Loop transcription of the spec: returns (total, d total / d logp)."""
  b = logp.shape[0]
  rhat = np.array([beta * sum((logp[i, t] - old[i, t]) for t in range(logp.shape[1])
                              if mask[i, t]) for i in range(b)])
  members = {g: [j for j in range(b) if groups[j] == g] for g in set(groups.tolist())}
  # psi_i and its Jacobian J[i, j] = d psi_i / d rhat_j
  out, jac = np.zeros(b), np.zeros((b, b))
  for i in range(b):
    grp = members[groups[i]]
    n = len(grp)
    if psi == "rloo":
      if n == 1:
        out[i], jac[i, i] = rhat[i], 1.0
      else:
        out[i] = rhat[i] - sum(rhat[j] for j in grp if j != i) / (n - 1)
        for j in grp:
          jac[i, j] = 1.0 if j == i else -1.0 / (n - 1)
    elif psi == "grpo":
      x = rhat[grp]
      mu, sd = x.mean(), x.std(ddof=1)
      out[i] = (rhat[i] - mu) / (sd + eps)
      for jj, j in enumerate(grp):   # quotient rule; d sd / d x_j = (x_j - mu) / ((n-1) sd)
        dmu = 1.0 / n
        dsd = (x[jj] - mu) / ((n - 1) * sd)
        jac[i, j] = (((1.0 if j == i else 0.0) - dmu) * (sd + eps)
                     - (rhat[i] - mu) * dsd) / (sd + eps) ** 2
  w = np.ones(b)
  if weights == "question":
    for i in range(b):
      labels = [rewards[j] for j in members[groups[i]]]
      n_pos = sum(labels)
      n_neg = len(labels) - n_pos
      if n_pos and n_neg:
        w[i] = len(labels) / (2 * (n_pos if rewards[i] == 1 else n_neg))
  sig = 1 / (1 + np.exp(-out))
  total = sum(w[i] * -(rewards[i] * math.log(sig[i]) + (1 - rewards[i]) * math.log(1 - sig[i]))
              for i in range(b))
  dpsi = w * (sig - rewards)                       # d BCE_i / d psi_i
  drhat = jac.T @ dpsi
  grad = beta * drhat[:, None] * mask
  return total, grad


@pytest.mark.parametrize("psi", ["rloo", "grpo"])
def test_gradient_matches_numpy_transcription(psi):
  expected_total, expected_grad = _numpy_pacs(LOGP, OLD, MASK, REWARDS, GROUPS, beta=2.0, psi=psi)
  f = lambda lp: _call(lp, beta=2.0, psi=psi)
  np.testing.assert_allclose(float(f(jnp.asarray(LOGP_GARBAGE, jnp.float32)).total),
                             expected_total, rtol=1e-5)
  g = jax.grad(lambda lp: f(lp).total)(jnp.asarray(LOGP_GARBAGE, jnp.float32))
  np.testing.assert_allclose(g, expected_grad, rtol=1e-4, atol=1e-6)   # garbage gets 0


def test_psi_variants_and_singletons():
  scores = jnp.array([0.3, -0.3, 0.1, 2.0])
  groups = jnp.array([0, 0, 0, 5])                 # row 3 alone in its group
  psi, _ = pacs.pacs_psi(scores, groups, psi="grpo_mean")
  np.testing.assert_allclose(psi, [0.3 - 0.1 / 3, -0.3 - 0.1 / 3, 0.1 - 0.1 / 3, 2.0], rtol=1e-6)
  psi, _ = pacs.pacs_psi(scores, groups, psi="naive")
  np.testing.assert_allclose(psi, scores)
  psi, _ = pacs.pacs_psi(scores, groups, psi="rloo")
  np.testing.assert_allclose(psi[3], 2.0)          # singleton: baseline 0
  psi, _ = pacs.pacs_psi(scores, groups, psi="grpo")
  mu, sd = 0.1 / 3, np.std([0.3, -0.3, 0.1], ddof=1)
  np.testing.assert_allclose(psi, [(0.3 - mu) / (sd + 1e-6), (-0.3 - mu) / (sd + 1e-6),
                                   (0.1 - mu) / (sd + 1e-6), 2.0 / (1 + 1e-6)], rtol=1e-5)


def test_grpo_psi_all_equal_group_has_finite_gradient():
  # On-policy first minibatch: lp == lp_old, every rhat = 0, group std 0.
  f = lambda lp: _call(lp, OLD, psi="grpo").total
  g = jax.grad(f)(jnp.asarray(OLD, jnp.float32))
  assert np.all(np.isfinite(g))
  np.testing.assert_allclose(float(_call(OLD, OLD, psi="grpo").metrics["pacs_psi_mean"]), 0.0)


def test_class_weight_modes():
  r = jnp.array([1.0, 1.0, 1.0, 0.0, 1.0, 1.0])
  g = jnp.array([0, 0, 0, 0, 1, 1])
  # group 0: 3 positives, 1 negative, n = 4: w_pos = 4/6, w_neg = 4/2; group 1 all positive: 1.
  w, m = pacs.pacs_class_weights(r, g, mode="question")
  np.testing.assert_allclose(w, [2 / 3, 2 / 3, 2 / 3, 2.0, 1.0, 1.0], rtol=1e-6)
  np.testing.assert_allclose(m["pacs_weight_mean"], (2.0 + 2.0 + 2.0) / 6, rtol=1e-6)
  np.testing.assert_allclose(pacs.pacs_class_weights(r, g, mode="only_positive")[0],
                             [1, 1, 1, 0, 1, 1])
  np.testing.assert_allclose(pacs.pacs_class_weights(r, g, mode="only_negative")[0],
                             [0, 0, 0, 1, 0, 0])
  np.testing.assert_allclose(pacs.pacs_class_weights(r, g, mode="none")[0], 1.0)


def test_scores_mean_logprob_and_unmasked_official_sum():
  lp = jnp.array([[-1.0, -3.0, -0.5]])
  old = jnp.array([[-1.5, -2.0, -9.0]])
  mask = jnp.array([[1.0, 1.0, 0.0]])
  s, _ = pacs.pacs_score(lp, None, mask, beta=2.0, score="mean_logprob")
  np.testing.assert_allclose(s, [2.0 * (-1.0 - 3.0) / 2], rtol=1e-6)
  s, _ = pacs.pacs_score(lp, None, mask, beta=2.0, score="mean_logprob", mask_score=False)
  np.testing.assert_allclose(s, [2.0 * (-1.0 - 3.0 - 0.5) / 2], rtol=1e-6)   # padding leaks in
  s, m = pacs.pacs_score(lp, old, mask)
  np.testing.assert_allclose(s, [0.5 - 1.0], rtol=1e-6)
  np.testing.assert_allclose(m["approx_kl"], (-0.5 + 1.0) / 2, rtol=1e-6)
  s, _ = pacs.pacs_score(lp, old, mask, mask_score=False)
  np.testing.assert_allclose(s, [0.5 - 1.0 + 8.5], rtol=1e-6)                 # official code
  g = jax.grad(lambda x: pacs.pacs_score(x, old, mask, beta=3.0)[0][0])(lp)
  np.testing.assert_allclose(g, [[3.0, 3.0, 0.0]])


def test_jit_and_fully_masked_row_counts():
  mask = MASK.copy()
  mask[1] = 0.0
  out = jax.jit(lambda lp, r: pacs.pacs_loss(lp, jnp.asarray(OLD), None, jnp.asarray(mask),
                                             rewards=r, group_ids=jnp.asarray(GROUPS)))(
      jnp.asarray(LOGP, jnp.float32), jnp.asarray(REWARDS))
  assert float(out.count) == 5.0 and np.isfinite(float(out.total))
  assert all(np.isfinite(float(v)) for v in out.metrics.values())


def test_bad_inputs_raise():
  with pytest.raises(ValueError, match="binary rewards"):
    _call(rewards=np.array([1.0, 0.5, 0.0, 1.0, 0.0], np.float32))
  with pytest.raises(ValueError, match="PACS psi"):
    _call(psi="gae")
  with pytest.raises(ValueError, match="PACS score"):
    _call(score="logit")
  with pytest.raises(ValueError, match="class_weights"):
    _call(class_weights="balanced")
  with pytest.raises(ValueError, match="rewards"):
    _call(rewards=np.zeros(4, np.float32))
  with pytest.raises(ValueError, match="group_ids"):
    _call(groups=np.zeros(5, np.float32))
  with pytest.raises(ValueError, match="beta"):
    _call(beta=0.0)
  with pytest.raises(ValueError, match="is_weights"):
    _call(is_weights=jnp.ones((5, 2)))
  with pytest.raises(ValueError, match="old_logprobs"):
    pacs.pacs_score(jnp.zeros((1, 2)), None, jnp.ones((1, 2)))

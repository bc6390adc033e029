"""PACS: RLVR as supervised learning of the outcome from an implicit policy score.

Li et al. 2025, "Implicit Actor Critic Coupling via a Supervised Learning
Framework for RLVR" (PACS), arXiv 2509.02522. The policy's own log-ratio is a
score ``rhat_i`` of response ``i``; a group-relative transform of it, ``psi_i``,
is a logit, and the verifiable outcome ``r_i in {0, 1}`` is its label::

    rhat_i = beta * sum_t m_it (lp_it - lp_old_it)                  (score="log_ratio")
    psi_i  = rhat_i - (1/(n_g - 1)) sum_{j in g, j != i} rhat_j      (psi="rloo")
    L      = (1/B) sum_i w_i * BCE(psi_i, r_i),
    BCE(psi, r) = -(r log sigmoid(psi) + (1 - r) log(1 - sigmoid(psi)))

so the gradient of ``L`` couples an actor term (through ``lp``) and a critic-like
target (the outcome). This replaces the PPO loss entirely: no clipping, no value
network, the advantages the trainer computes are not used.

Each piece is a pure function: :func:`pacs_score`, :func:`pacs_psi` and
:func:`pacs_class_weights` return ``(value, metrics)``; :func:`pacs_loss` returns
a :class:`LossOutput` with ``total = sum_i w_i BCE_i`` and ``count = B``
(``BCEWithLogitsLoss`` mean reduction: the weights are not renormalised).

Groups are the rows sharing a ``group_ids`` value (any integers, not
necessarily contiguous) *within the arrays passed*: the official code asserts
that every micro-batch holds whole groups, so a trainer that splits groups
across minibatches changes psi (a group member left alone is its own group).
"""

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.advantages import group_index
from jaxrl_llm.losses.aggregation import masked_mean
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient

PACS_SCORES = ("log_ratio", "mean_logprob")
PACS_PSI = ("rloo", "grpo", "grpo_mean", "naive")
PACS_CLASS_WEIGHTS = ("question", "none", "only_positive", "only_negative")


def _upcast(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def pacs_score(logprobs: jax.Array, old_logprobs: Optional[jax.Array], mask: jax.Array, *,
               beta: float = 1.0, score: str = "log_ratio",
               mask_score: bool = True) -> tuple[jax.Array, dict]:
  """The implicit reward ``rhat [B]`` of each response (differentiable in ``logprobs``).

  ::

      log_ratio:     rhat_i = beta * sum_t m_it (lp_it - lp_old_it)
      mean_logprob:  rhat_i = beta * (sum_t m_it lp_it) / max(n_i, 1),  n_i = sum_t m_it

  ``mask_score=False`` reproduces the official code (``ritzz-ai/PACS`` @bbe1dc6,
  ``compute_reward``), which sums over *all* ``T`` positions without the response
  mask, so padded positions contribute their (finite) log-probs; the paper's
  formula and the default sum over the response only. ``mean_logprob`` needs no
  ``old_logprobs`` (may be None).

  Returns:
    ``rhat [B]`` and metrics ``pacs_score_mean``, ``approx_kl`` (``log_ratio``:
    token mean over the mask of ``lp_old - lp``).
  """
  _checks.check_choice(score, PACS_SCORES, "PACS score")
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  _checks.check_shape(mask, logprobs.shape, "mask")
  if not beta > 0:
    raise ValueError(f"beta must be > 0, got {beta}")
  lp = _upcast(logprobs)
  m = jnp.asarray(mask).astype(lp.dtype)
  weight = m if mask_score else jnp.ones_like(m)
  metrics = {}
  if score == "log_ratio":
    if old_logprobs is None:
      raise ValueError("score='log_ratio' needs old_logprobs")
    _checks.check_shape(old_logprobs, logprobs.shape, "old_logprobs")
    old = _upcast(old_logprobs).astype(lp.dtype)
    diff = lp - old
    if mask_score:  # padded garbage (e.g. -inf) cannot reach the value or the gradient
      diff = jnp.where(m > 0, diff, 0.0)
    rhat = beta * jnp.sum(diff * weight, axis=-1)
    metrics["approx_kl"] = masked_mean(sg(-diff), m)
  else:
    vals = jnp.where(m > 0, lp, 0.0) if mask_score else lp
    rhat = beta * jnp.sum(vals * weight, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
  metrics["pacs_score_mean"] = sg(jnp.mean(rhat))
  return rhat, metrics


def _group_sums(x, idx):
  return jax.ops.segment_sum(x, idx, num_segments=x.shape[0])[idx]


def pacs_psi(scores: jax.Array, group_ids: jax.Array, *, psi: str = "rloo",
             eps: float = 1e-6) -> tuple[jax.Array, dict]:
  """Group-relative logit ``psi [B]`` from the scores ``rhat [B]`` (gradient flows through all).

  ::

      rloo:      psi_i = rhat_i - (1/(n_g - 1)) sum_{j in g, j != i} rhat_j
      grpo:      psi_i = (rhat_i - mean_g rhat) / (std_g rhat + eps)   (std unbiased, n - 1)
      grpo_mean: psi_i = rhat_i - mean_g rhat
      naive:     psi_i = rhat_i

  A singleton group has baseline 0 (and std 1 for grpo), as verl's estimators
  the official code copies. ``grpo`` at an all-equal group (e.g. the first
  on-policy minibatch, where every ``rhat`` is exactly 0) has std 0: its value is
  0 and the std's gradient is taken as 0, but the gradient of ``psi`` is then
  ``1/eps`` times the centred score gradient; ``rloo`` (the default) has no such
  scale. ``eps`` is the official 1e-6.

  Returns:
    ``psi [B]`` and metrics ``pacs_psi_mean``, ``pacs_psi_abs_mean``.
  """
  _checks.check_choice(psi, PACS_PSI, "PACS psi")
  _checks.check_rank(scores, 1, "scores")
  _checks.check_floating(scores, "scores")
  idx = group_index(scores.shape[0], group_ids)
  if psi == "naive":
    out = scores
  else:
    count = _group_sums(jnp.ones_like(scores), idx)
    total = _group_sums(scores, idx)
    single = count < 2
    if psi == "rloo":
      baseline = jnp.where(single, 0.0, (total - scores) / jnp.maximum(count - 1.0, 1.0))
      out = scores - baseline
    else:
      mean = jnp.where(single, 0.0, total / count)
      out = scores - mean
      if psi == "grpo":
        var = _group_sums(jnp.square(scores - total / count), idx) / jnp.maximum(count - 1.0, 1.0)
        positive = var > 0
        std = jnp.where(positive, jnp.sqrt(jnp.where(positive, var, 1.0)), 0.0)
        out = out / (jnp.where(single, 1.0, std) + eps)
  return out, {"pacs_psi_mean": sg(jnp.mean(out)), "pacs_psi_abs_mean": sg(jnp.mean(jnp.abs(out)))}


def pacs_class_weights(rewards: jax.Array, group_ids: jax.Array, *,
                       mode: str = "question") -> tuple[jax.Array, dict]:
  """Per-response BCE weights ``w [B]`` (constants).

  ::

      question:       w_i = n_g / (2 n_{g,c(i)}) in a group holding both labels, else 1
                      (sklearn 'balanced' within the group; n_{g,c} = members of class c)
      none:           w_i = 1
      only_positive:  w_i = 1[r_i = 1]
      only_negative:  w_i = 1[r_i = 0]

  A response is positive when ``r_i > 0.5`` (the labels are meant to be 0/1).

  Returns:
    ``w [B]`` and metrics ``pacs_weight_mean``.
  """
  _checks.check_choice(mode, PACS_CLASS_WEIGHTS, "PACS class_weights")
  _checks.check_rank(rewards, 1, "rewards")
  r = _upcast(rewards)
  pos = (r > 0.5).astype(r.dtype)
  if mode == "none":
    w = jnp.ones_like(r)
  elif mode == "only_positive":
    w = pos
  elif mode == "only_negative":
    w = 1.0 - pos
  else:
    idx = group_index(r.shape[0], group_ids)
    n = _group_sums(jnp.ones_like(r), idx)
    n_pos = _group_sums(pos, idx)
    n_neg = n - n_pos
    both = (n_pos > 0) & (n_neg > 0)
    n_own = jnp.where(pos > 0, n_pos, n_neg)
    w = jnp.where(both, n / (2.0 * jnp.maximum(n_own, 1.0)), 1.0)
  w = sg(w)
  return w, {"pacs_weight_mean": jnp.mean(w)}


def _check_binary(rewards):
  """Rewards must be 0/1; checked only on concrete values (not under jit, where it would cost
  a host sync)."""
  if isinstance(rewards, jax.core.Tracer):
    return
  r = np.asarray(rewards)
  if not np.all((r == 0) | (r == 1)):
    bad = sorted(set(np.unique(r[(r != 0) & (r != 1)]).tolist()))[:5]
    raise ValueError(f"PACS needs binary rewards (0 or 1) as BCE labels, got values {bad}")


def pacs_loss(logprobs: jax.Array, old_logprobs: Optional[jax.Array], advantages: jax.Array,
              mask: jax.Array, *, rewards: jax.Array, group_ids: jax.Array, beta: float = 1.0,
              score: str = "log_ratio", psi: str = "rloo", class_weights: str = "question",
              mask_score: bool = True, eps: float = 1e-6,
              is_weights: Optional[jax.Array] = None) -> LossOutput:
  """PACS loss: weighted BCE of the group-relative implicit score against the outcome.

  Li et al. 2025, "Implicit Actor Critic Coupling via a Supervised Learning
  Framework for RLVR", arXiv 2509.02522 (official code ``ritzz-ai/PACS``
  @bbe1dc6, ``compute_pacs_loss``)::

      rhat_i = beta * sum_t m_it (lp_it - lp_old_it)                 (pacs_score)
      psi_i  = group-relative rhat (rloo by default)                 (pacs_psi)
      w_i    = class weight (balanced within the group)              (pacs_class_weights)
      L      = (1/B) sum_i w_i [softplus(psi_i) - r_i psi_i]        (BCE with logits)

  ``total = sum_i w_i BCE_i`` and ``count = B`` (every row, also a fully masked
  one, whose score is 0: ``BCEWithLogitsLoss`` mean reduction, not divided by
  ``sum w``). ``advantages`` are ignored (the trainer's estimator is unused).
  Defaults are the official ``pacs_beta_1.0.sh``: ``beta=1``, rloo, question
  weights; ``mask_score=False`` reproduces the official unmasked score sum.

  Args:
    logprobs: ``[B, T]`` current-policy log-probs (differentiated).
    old_logprobs: ``[B, T]`` behaviour-policy log-probs (None for ``mean_logprob``).
    advantages: unused.
    mask: ``[B, T]`` response tokens (the batch's ``loss_mask``).
    rewards: ``[B]`` binary outcome labels (checked to be 0/1 when concrete, i.e.
      outside jit; under jit a non-binary reward is used as a soft label).
    group_ids: ``[B]`` integer prompt group of each row.
    beta, score, mask_score: see :func:`pacs_score`.
    psi, eps: see :func:`pacs_psi`.
    class_weights: see :func:`pacs_class_weights`.
    is_weights: must be None: PACS has no per-token loss to reweight.

  Returns:
    LossOutput with metrics ``pacs_score_mean``, ``pacs_psi_mean``,
    ``pacs_psi_abs_mean``, ``pacs_weight_mean``, ``pacs_accuracy`` (fraction of
    rows with ``(psi > 0) == (r = 1)``: the BCE classifier's accuracy),
    ``pacs_bce`` (unweighted mean BCE) and ``approx_kl`` (log_ratio score).
  """
  del advantages
  if is_weights is not None:
    raise ValueError("pacs_loss takes no is_weights (sequence-level BCE; turn off rl.tis_cap)")
  _checks.check_rank(logprobs, 2, "logprobs")
  b = logprobs.shape[0]
  _checks.check_shape(rewards, (b,), "rewards")
  _checks.check_shape(group_ids, (b,), "group_ids")
  _check_binary(rewards)
  rhat, metrics = pacs_score(logprobs, old_logprobs, mask, beta=beta, score=score,
                             mask_score=mask_score)
  logits, psi_metrics = pacs_psi(rhat, group_ids, psi=psi, eps=eps)
  w, w_metrics = pacs_class_weights(rewards, group_ids, mode=class_weights)
  label = sg(_upcast(rewards).astype(logits.dtype))
  bce = jax.nn.softplus(logits) - label * logits
  metrics.update(psi_metrics)
  metrics.update(w_metrics)
  metrics["pacs_accuracy"] = jnp.mean(((logits > 0) == (label > 0.5)).astype(logits.dtype))
  metrics["pacs_bce"] = jnp.mean(bce)
  return LossOutput(jnp.sum(w * bce), jnp.asarray(b, logits.dtype),
                    {k: sg(v) for k, v in metrics.items()})

"""Preference objectives on sequence log-probabilities: the DPO family, SimPO,
ORPO, KTO and INPO, and the :data:`PREFERENCE_LOSSES` table that names them.

Inputs are per-sequence **summed** log-probs ``[B]`` of the responses under the
policy (differentiated) and constant reference model(s); losses that
length-normalise take the response token counts (``*_lengths``). Paired losses
take the chosen and rejected responses of ``B`` pairs; KTO takes ``B`` unpaired
responses with a desirable/undesirable label. Each returns a
:class:`LossOutput` with ``total = sum of the per-pair (per-example) losses``
and ``count = B``.
"""

import inspect
import types
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.types import LossOutput

DPO_KINDS = ("sigmoid", "ipo", "hinge", "robust")

sg = jax.lax.stop_gradient


def _check_pairs(**arrays):
  first_name, first = next(iter(arrays.items()))
  _checks.check_rank(first, 1, first_name)
  for name, a in arrays.items():
    if a is not None:
      _checks.check_shape(a, first.shape, name)


def dpo_loss(policy_chosen_logps: jax.Array, policy_rejected_logps: jax.Array,
             ref_chosen_logps: jax.Array, ref_rejected_logps: jax.Array, *,
             beta: float = 0.1, kind: str = "sigmoid", label_smoothing: float = 0.0,
             chosen_lengths: Optional[jax.Array] = None,
             rejected_lengths: Optional[jax.Array] = None) -> LossOutput:
  """DPO and variants, per pair, with ``rho_c = lp(c) - lp_ref(c)``, ``rho_r`` likewise,
  ``Delta = rho_c - rho_r`` and label smoothing ``eps``:

  * ``sigmoid`` (DPO, Rafailov et al. 2023, arXiv 2305.18290; with ``eps > 0`` the
    conservative cDPO): ``-(1-eps) log sigma(beta Delta) - eps log sigma(-beta Delta)``.
    Equals TRL 1.16 ``sigmoid`` at ``eps = 0`` and OpenRLHF's ``DPOLoss``.
  * ``ipo`` (Azar et al. 2023, arXiv 2310.12036): ``(Delta - 1/(2 beta))^2``. If
    ``chosen_lengths``/``rejected_lengths`` are given, ``rho`` is divided by the
    token counts first (TRL 1.16 ``ipo``); without them it is OpenRLHF's IPO.
  * ``hinge`` (SLiC, Zhao et al. 2023, arXiv 2305.10425): ``relu(1 - beta Delta)``.
  * ``robust`` (rDPO, Chowdhury et al. 2024, arXiv 2403.00409):
    ``[-(1-eps) log sigma(beta Delta) + eps log sigma(-beta Delta)] / (1 - 2 eps)``
    (TRL ``robust``).

  Metrics: ``reward_chosen`` / ``reward_rejected`` (means of ``beta rho``),
  ``reward_accuracy`` (fraction with ``rho_c > rho_r``), ``reward_margin``.
  """
  _checks.check_choice(kind, DPO_KINDS, "DPO kind")
  _check_pairs(policy_chosen_logps=policy_chosen_logps,
               policy_rejected_logps=policy_rejected_logps,
               ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps,
               chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
  if beta <= 0:
    raise ValueError(f"beta must be positive, got {beta}")
  if not 0.0 <= label_smoothing < 0.5:
    raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
  if (chosen_lengths is None) != (rejected_lengths is None):
    raise ValueError("give both chosen_lengths and rejected_lengths, or neither")
  rho_c = policy_chosen_logps - sg(ref_chosen_logps)
  rho_r = policy_rejected_logps - sg(ref_rejected_logps)
  delta = rho_c - rho_r
  eps = label_smoothing
  if kind == "sigmoid":
    losses = -(1 - eps) * jax.nn.log_sigmoid(beta * delta) - eps * jax.nn.log_sigmoid(-beta * delta)
  elif kind == "ipo":
    if chosen_lengths is not None:
      delta_n = (rho_c / jnp.maximum(chosen_lengths, 1).astype(rho_c.dtype)
                 - rho_r / jnp.maximum(rejected_lengths, 1).astype(rho_r.dtype))
    else:
      delta_n = delta
    losses = jnp.square(delta_n - 1.0 / (2.0 * beta))
  elif kind == "hinge":
    losses = jax.nn.relu(1.0 - beta * delta)
  else:  # robust
    losses = ((-(1 - eps) * jax.nn.log_sigmoid(beta * delta)
               + eps * jax.nn.log_sigmoid(-beta * delta)) / (1.0 - 2.0 * eps))
  metrics = {
      "reward_chosen": jnp.mean(beta * rho_c),
      "reward_rejected": jnp.mean(beta * rho_r),
      "reward_accuracy": jnp.mean((rho_c > rho_r).astype(rho_c.dtype)),
      "reward_margin": jnp.mean(beta * delta),
  }
  return LossOutput(jnp.sum(losses), jnp.asarray(losses.shape[0], losses.dtype),
                    {k: sg(v) for k, v in metrics.items()})


def inpo_loss(policy_chosen_logps: jax.Array, policy_rejected_logps: jax.Array,
              ref_chosen_logps: jax.Array, ref_rejected_logps: jax.Array,
              prev_chosen_logps: jax.Array, prev_rejected_logps: jax.Array, *,
              eta: float, tau: float) -> LossOutput:
  """INPO (Zhang et al. 2025, "Iterative Nash Policy Optimization", arXiv 2407.00617)::

      h = log pi(y_w)/pi(y_l) - (tau/eta) log pi_ref(y_w)/pi_ref(y_l)
          - ((eta - tau)/eta) log pi_t(y_w)/pi_t(y_l)
      L = (h - 1/(2 eta))^2

  ``pi_t`` is the previous iterate (``prev_*``), constant like the reference.
  Requires ``0 < tau < eta``. (The paper's constants could not be checked
  against the paper text; a reimplementation uses ``eta = 7.5e-3``, ``tau = eta/3``.)
  """
  _check_pairs(policy_chosen_logps=policy_chosen_logps,
               policy_rejected_logps=policy_rejected_logps,
               ref_chosen_logps=ref_chosen_logps, ref_rejected_logps=ref_rejected_logps,
               prev_chosen_logps=prev_chosen_logps, prev_rejected_logps=prev_rejected_logps)
  if not 0 < tau < eta:
    raise ValueError(f"need 0 < tau < eta, got tau={tau}, eta={eta}")
  pol = policy_chosen_logps - policy_rejected_logps
  ref = sg(ref_chosen_logps - ref_rejected_logps)
  prev = sg(prev_chosen_logps - prev_rejected_logps)
  h = pol - (tau / eta) * ref - ((eta - tau) / eta) * prev
  losses = jnp.square(h - 1.0 / (2.0 * eta))
  metrics = {"h_mean": sg(jnp.mean(h)),
             "reward_accuracy": sg(jnp.mean((h > 0).astype(h.dtype)))}
  return LossOutput(jnp.sum(losses), jnp.asarray(losses.shape[0], losses.dtype), metrics)


def _lengths(lengths: jax.Array, dtype) -> jax.Array:
  """Token counts as floats, at least 1 (an empty response divides by 1, not 0)."""
  return jnp.maximum(lengths, 1).astype(dtype)


def _count(losses: jax.Array) -> jax.Array:
  return jnp.asarray(losses.shape[0], losses.dtype)


def simpo_loss(policy_chosen_logps: jax.Array, policy_rejected_logps: jax.Array,
               chosen_lengths: jax.Array, rejected_lengths: jax.Array, *,
               beta: float = 2.0, gamma: float = 1.0,
               label_smoothing: float = 0.0) -> LossOutput:
  """SimPO (Meng, Xia & Chen 2024, "SimPO: Simple Preference Optimization with a
  Reference-Free Reward", arXiv 2405.14734), per pair::

      z = (beta / |y_w|) log pi(y_w|x) - (beta / |y_l|) log pi(y_l|x) - gamma
      L = -(1 - eps) log sigma(z) - eps log sigma(-z)

  No reference model: the implicit reward is the length-normalised log-likelihood
  ``beta/|y| log pi(y|x)`` and ``gamma`` is the target reward margin (the paper's
  gamma; implementations that take ``gamma_beta_ratio`` use ``gamma = beta * ratio``).
  ``eps = label_smoothing`` (0 in the paper). Verification: implemented from the
  paper's equation (its Eq. for L_SimPO); the defaults ``beta = 2``, ``gamma = 1``
  (ratio 0.5) are a typical setting of the paper's ranges (beta 2-2.5, gamma/beta
  about 0.3-0.8), not checked against its tables; no framework cross-check here.

  Metrics: ``reward_chosen`` / ``reward_rejected`` (means of ``beta lp/|y|``),
  ``reward_accuracy`` (fraction with the chosen reward higher), ``reward_margin``.
  """
  _check_pairs(policy_chosen_logps=policy_chosen_logps,
               policy_rejected_logps=policy_rejected_logps,
               chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
  if beta <= 0:
    raise ValueError(f"beta must be positive, got {beta}")
  if not 0.0 <= label_smoothing < 0.5:
    raise ValueError(f"label_smoothing must be in [0, 0.5), got {label_smoothing}")
  r_c = beta * policy_chosen_logps / _lengths(chosen_lengths, policy_chosen_logps.dtype)
  r_r = beta * policy_rejected_logps / _lengths(rejected_lengths, policy_rejected_logps.dtype)
  z = r_c - r_r - gamma
  eps = label_smoothing
  losses = -(1 - eps) * jax.nn.log_sigmoid(z) - eps * jax.nn.log_sigmoid(-z)
  metrics = {"reward_chosen": jnp.mean(r_c), "reward_rejected": jnp.mean(r_r),
             "reward_accuracy": jnp.mean((r_c > r_r).astype(z.dtype)),
             "reward_margin": jnp.mean(r_c - r_r)}
  return LossOutput(jnp.sum(losses), _count(losses), {k: sg(v) for k, v in metrics.items()})


# Mean token log-probs are clipped to at most -ORPO_MAX_MEAN_LOGP before log(1 - p):
# p = exp(mean logp) = 1 exactly (a float32 log-softmax of a dominant logit) would
# give log(0).
ORPO_MAX_MEAN_LOGP = 1e-6


def log_odds(mean_logps: jax.Array) -> jax.Array:
  """``log(p / (1 - p))`` for ``p = exp(mean_logps)`` (mean token log-probs <= 0).

  ``log(1 - p)`` is ``log(-expm1(x))`` for ``x > -log 2`` and ``log1p(-exp(x))``
  below (both accurate there); ``x`` is clipped to ``<= -1e-6``
  (:data:`ORPO_MAX_MEAN_LOGP`) so neither branch sees ``p = 1``.
  """
  x = jnp.minimum(mean_logps, -ORPO_MAX_MEAN_LOGP)
  log1m = jnp.where(x > -jnp.log(2.0), jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))
  return x - log1m


def orpo_loss(policy_chosen_logps: jax.Array, policy_rejected_logps: jax.Array,
              chosen_lengths: jax.Array, rejected_lengths: jax.Array, *,
              lam: float = 0.1) -> LossOutput:
  """ORPO (Hong, Lee & Thorne 2024, "ORPO: Monolithic Preference Optimization without
  Reference Model", arXiv 2403.07691), per pair, with the length-normalised
  likelihood ``P(y|x) = exp(log pi(y|x) / |y|)`` and ``odds(y) = P / (1 - P)``::

      L_SFT = -log pi(y_w|x) / |y_w|                       (token-mean NLL of the chosen)
      L_OR  = -log sigma(log odds(y_w) - log odds(y_l))
      L     = L_SFT + lam * L_OR

  No reference model. ``lam`` is the paper's lambda (TRL's ORPO calls it ``beta``,
  default 0.1). Verification: from the paper's equations; TRL's ORPOTrainer uses the
  same odds-ratio term but takes its NLL as the token mean over the whole batch's
  chosen tokens, where this is the mean over pairs of per-response token means (equal
  when all chosen responses have one length). Mean log-probs are clipped at
  ``-1e-6`` inside ``log(1 - P)`` (:func:`log_odds`).

  Metrics: ``nll`` (mean L_SFT), ``log_odds_ratio`` (mean), ``log_odds_chosen`` /
  ``log_odds_rejected``, ``reward_chosen`` / ``reward_rejected`` (means of
  ``lam log P``, TRL's rewards), ``reward_accuracy`` (fraction with
  ``log odds(y_w) > log odds(y_l)``), ``reward_margin``.
  """
  _check_pairs(policy_chosen_logps=policy_chosen_logps,
               policy_rejected_logps=policy_rejected_logps,
               chosen_lengths=chosen_lengths, rejected_lengths=rejected_lengths)
  if lam < 0:
    raise ValueError(f"lam must be >= 0, got {lam}")
  mean_c = policy_chosen_logps / _lengths(chosen_lengths, policy_chosen_logps.dtype)
  mean_r = policy_rejected_logps / _lengths(rejected_lengths, policy_rejected_logps.dtype)
  odds_c, odds_r = log_odds(mean_c), log_odds(mean_r)
  ratio = odds_c - odds_r
  nll = -mean_c
  losses = nll - lam * jax.nn.log_sigmoid(ratio)
  metrics = {"nll": jnp.mean(nll), "log_odds_ratio": jnp.mean(ratio),
             "log_odds_chosen": jnp.mean(odds_c), "log_odds_rejected": jnp.mean(odds_r),
             "reward_chosen": jnp.mean(lam * mean_c), "reward_rejected": jnp.mean(lam * mean_r),
             "reward_accuracy": jnp.mean((ratio > 0).astype(ratio.dtype)),
             "reward_margin": jnp.mean(lam * (mean_c - mean_r))}
  return LossOutput(jnp.sum(losses), _count(losses), {k: sg(v) for k, v in metrics.items()})


def _subset_mean(x: jax.Array, where: jax.Array) -> jax.Array:
  w = where.astype(x.dtype)
  return jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1.0)


def kto_loss(policy_logps: jax.Array, ref_logps: jax.Array, labels: jax.Array,
             policy_kl_logps: jax.Array, ref_kl_logps: jax.Array, *, beta: float = 0.1,
             desirable_weight: float = 1.0, undesirable_weight: float = 1.0) -> LossOutput:
  """KTO (Ethayarajh et al. 2024, "KTO: Model Alignment as Prospect Theoretic
  Optimization", arXiv 2402.01306) on ``B`` unpaired responses, per response::

      r    = log pi(y|x) - log pi_ref(y|x)
      z0   = sg[max(0, mean_j (log pi(y'_j|x_j) - log pi_ref(y'_j|x_j)))]
      L    = lambda_D (1 - sigma(beta (r - z0)))   if y is desirable (label True)
             lambda_U (1 - sigma(beta (z0 - r)))   if y is undesirable

  (the paper's ``lambda_y - v(x, y)``). ``z0`` is the reference point: a batch
  estimate of ``KL(pi || pi_ref)`` from mismatched pairs ``(x_j, y'_j)`` (a
  prompt with another example's response: ``policy_kl_logps`` / ``ref_kl_logps``,
  ``[M]``), clipped at 0 and not differentiated, as in the paper and TRL's
  KTOTrainer (which takes ``y'_j`` from the previous example of the batch and computes
  those log-probs without gradient). Verification: from the paper's equations and
  TRL's documented semantics; no numerical cross-check here. ``desirable_weight`` /
  ``undesirable_weight`` are lambda_D / lambda_U (the paper suggests keeping
  ``lambda_D n_D / (lambda_U n_U)`` in [1, 4/3]).

  Metrics: ``kl`` (z0), ``reward_chosen`` / ``reward_rejected`` (means of
  ``beta r`` over the desirable / undesirable responses, 0 when there are none),
  ``desirable_frac``.
  """
  _check_pairs(policy_logps=policy_logps, ref_logps=ref_logps, labels=labels)
  _checks.check_rank(policy_kl_logps, 1, "policy_kl_logps")
  _checks.check_shape(ref_kl_logps, policy_kl_logps.shape, "ref_kl_logps")
  if beta <= 0:
    raise ValueError(f"beta must be positive, got {beta}")
  if desirable_weight < 0 or undesirable_weight < 0:
    raise ValueError(f"desirable_weight and undesirable_weight must be >= 0, got "
                     f"{desirable_weight}, {undesirable_weight}")
  desirable = labels.astype(bool)
  z0 = sg(jnp.maximum(jnp.mean(policy_kl_logps - ref_kl_logps), 0.0))
  r = policy_logps - sg(ref_logps)
  losses = jnp.where(desirable, desirable_weight * (1.0 - jax.nn.sigmoid(beta * (r - z0))),
                     undesirable_weight * (1.0 - jax.nn.sigmoid(beta * (z0 - r))))
  metrics = {"kl": z0, "reward_chosen": _subset_mean(beta * r, desirable),
             "reward_rejected": _subset_mean(beta * r, ~desirable),
             "desirable_frac": jnp.mean(desirable.astype(r.dtype))}
  return LossOutput(jnp.sum(losses), _count(losses), {k: sg(v) for k, v in metrics.items()})


# ---- the registry ------------------------------------------------------------------------


def dpo_sigmoid_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                     ref_rejected_logps, *, beta: float = 0.1,
                     label_smoothing: float = 0.0) -> LossOutput:
  """:func:`dpo_loss` ``kind="sigmoid"`` (DPO; cDPO with ``label_smoothing > 0``)."""
  return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                  ref_rejected_logps, beta=beta, label_smoothing=label_smoothing)


def ipo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps,
             chosen_lengths, rejected_lengths, *, beta: float = 0.1) -> LossOutput:
  """:func:`dpo_loss` ``kind="ipo"`` on length-normalised log-ratios (TRL 1.16 ``ipo``)."""
  return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                  ref_rejected_logps, beta=beta, kind="ipo", chosen_lengths=chosen_lengths,
                  rejected_lengths=rejected_lengths)


def robust_dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                    ref_rejected_logps, *, beta: float = 0.1,
                    label_smoothing: float = 0.1) -> LossOutput:
  """:func:`dpo_loss` ``kind="robust"`` (rDPO; ``label_smoothing`` is the assumed
  label-flip rate, 0.1 here as an example: TRL defaults it to 0, where rDPO is DPO)."""
  return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                  ref_rejected_logps, beta=beta, kind="robust", label_smoothing=label_smoothing)


def hinge_dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                   ref_rejected_logps, *, beta: float = 0.1) -> LossOutput:
  """:func:`dpo_loss` ``kind="hinge"`` (SLiC)."""
  return dpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                  ref_rejected_logps, beta=beta, kind="hinge")


def inpo_default_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                      ref_rejected_logps, prev_chosen_logps, prev_rejected_logps, *,
                      eta: float = 7.5e-3, tau: float = 2.5e-3) -> LossOutput:
  """:func:`inpo_loss` with the SECONDARY defaults ``eta = 7.5e-3``, ``tau = eta / 3``
  (a third-party reimplementation's "paper default"; unverified against the paper)."""
  return inpo_loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                   ref_rejected_logps, prev_chosen_logps, prev_rejected_logps, eta=eta, tau=tau)


# What a preference step can pass a loss beyond the policy's own log-probs.
PAIRED_INPUTS = ("ref_chosen_logps", "ref_rejected_logps",    # [B] frozen reference
                 "chosen_lengths", "rejected_lengths",        # [B] response token counts
                 "prev_chosen_logps", "prev_rejected_logps")  # [B] previous iterate (INPO)
UNPAIRED_INPUTS = ("ref_logps", "labels",                     # [B] reference, desirable
                   "policy_kl_logps", "ref_kl_logps")         # [M] mismatched pairs (KTO z0)


class PreferenceLoss(NamedTuple):
  """A registered preference loss and what it reads.

  Paired (``paired=True``): ``fn(policy_chosen_logps, policy_rejected_logps, *,
  <inputs>, **options)``. Unpaired (KTO): ``fn(policy_logps, *, <inputs>, **options)``.
  ``inputs`` name entries of :data:`PAIRED_INPUTS` / :data:`UNPAIRED_INPUTS`, passed
  as keyword arguments; ``options`` come from the config.
  """

  fn: Callable[..., LossOutput]
  inputs: tuple = ()
  paired: bool = True

  def __call__(self, *args, **kwargs):
    return self.fn(*args, **kwargs)

  @property
  def needs_reference(self) -> bool:
    return any(n.startswith("ref_") for n in self.inputs)

  @property
  def needs_lengths(self) -> bool:
    return any(n.endswith("_lengths") for n in self.inputs)

  @property
  def needs_previous(self) -> bool:
    return any(n.startswith("prev_") for n in self.inputs)

  @property
  def options(self) -> tuple:
    return tuple(p.name for p in inspect.signature(self.fn).parameters.values()
                 if p.kind == p.KEYWORD_ONLY)


_REF = ("ref_chosen_logps", "ref_rejected_logps")
_LEN = ("chosen_lengths", "rejected_lengths")


def _check_rows(rows):
  for name, row in rows.items():
    known = PAIRED_INPUTS if row.paired else UNPAIRED_INPUTS
    bad = sorted(set(row.inputs) - set(known))
    if bad:
      raise ValueError(f"preference loss {name!r} asks for unknown inputs {bad}; known: "
                       f"{', '.join(known)}")
  return types.MappingProxyType(rows)


PREFERENCE_LOSSES = _check_rows({
    "dpo": PreferenceLoss(dpo_sigmoid_loss, _REF),
    "ipo": PreferenceLoss(ipo_loss, _REF + _LEN),
    "robust": PreferenceLoss(robust_dpo_loss, _REF),
    "hinge": PreferenceLoss(hinge_dpo_loss, _REF),
    "simpo": PreferenceLoss(simpo_loss, _LEN),
    "orpo": PreferenceLoss(orpo_loss, _LEN),
    "kto": PreferenceLoss(kto_loss, ("ref_logps", "labels", "policy_kl_logps", "ref_kl_logps"),
                          paired=False),
    "inpo": PreferenceLoss(inpo_default_loss,
                           _REF + ("prev_chosen_logps", "prev_rejected_logps")),
})


def get_preference_loss(name: str) -> PreferenceLoss:
  """The :class:`PreferenceLoss` registered under ``name``."""
  if name not in PREFERENCE_LOSSES:
    raise ValueError(f"unknown preference loss {name!r}; known: "
                     f"{', '.join(sorted(PREFERENCE_LOSSES))}")
  return PREFERENCE_LOSSES[name]


def check_preference_options(name: str, options) -> dict:
  """``dict(options)`` after checking each is a keyword option of loss ``name``."""
  entry = get_preference_loss(name)
  options = dict(options or {})
  bad = sorted(set(options) - set(entry.options))
  if bad:
    raise ValueError(f"{bad} are not options of preference loss {name!r}; its options: "
                     f"{', '.join(entry.options) or 'none'}")
  return options

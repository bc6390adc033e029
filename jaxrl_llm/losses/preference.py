"""Preference objectives on sequence log-probabilities: the DPO family and INPO.

Inputs are per-pair **summed** log-probs of the chosen and rejected responses
``[B]`` under the policy (differentiated) and constant reference model(s).
Each returns a :class:`LossOutput` with ``total = sum_pairs loss`` and
``count = B``.
"""

from typing import Optional

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

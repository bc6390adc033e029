"""ROVER: Random Policy Valuation (He et al. 2025, arXiv 2509.24981).

"Random Policy Valuation is Enough for LLM Reasoning with Verifiable Rewards":
in a deterministic tree MDP with a binary terminal reward, acting (softly)
greedily on the Q-function of the *uniform random* policy is optimal, so ROVER
fits that Q-function instead of running policy iteration. Q is parameterised
intrinsically by the policy's own log-probabilities relative to the behaviour
policy, and the value of the next state under the uniform policy is the mean of
Q over the whole vocabulary::

    Q(s_t, a_t)  = rho (log pi(a_t | s_t) - log pi_old(a_t | s_t))
    V(s_{t+1})   = (1/|V|) sum_a Q(s_{t+1}, a)
                 = rho (mlp_theta(s_{t+1}) - mlp_old(s_{t+1})),
    mlp(s)       = (1/|V|) sum_a log pi(a | s)  = mean(z) - logsumexp(z)

with ``z`` the logits at the sampling temperature; the target of ``Q(s_t, a_t)`` is
the (mean-centred) outcome reward plus ``V(s_{t+1})`` (0 after the last token).

Shapes: ``[B, N]`` over completion positions. Column ``t`` of ``mean_logprobs`` is
the statistic of the distribution that predicts completion token ``t`` (state
``s_t``); the value of the *next* state is therefore column ``t + 1``.

Provenance: the formulas follow the official code (``tinnerhrhe/ROVER`` @b0fa587,
``Math/verl/workers/actor/dp_actor.py``, the "ROVER start/end" block; spec §2 and
its addendum), paper notation from secondary summaries. The options
``response_level``, ``target_adv_only`` and ``clip_eps`` are the code's variants
(flags ``response_level_rover_loss``, ``target_adv_only``, ``use_rover_clip``).
"""

from typing import Optional

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.aggregation import masked_mean, masked_sum
from jaxrl_llm.losses.types import LossOutput

sg = jax.lax.stop_gradient


def _upcast(x):
  x = jnp.asarray(x)
  return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def rover_q_values(logprobs: jax.Array, old_logprobs: jax.Array, *,
                   rho: float = 1.0) -> tuple[jax.Array, dict]:
  """Intrinsic Q: ``Q[i, t] = rho (lp[i, t] - lp_old[i, t])``; ``(Q [B, N], metrics)``.

  He et al. 2025, "Random Policy Valuation is Enough for LLM Reasoning with
  Verifiable Rewards", arXiv 2509.24981 (``rho`` is the code's ``rover_t``).
  ``old_logprobs`` is a constant (no gradient).
  """
  _checks.check_rank(logprobs, 2, "logprobs")
  _checks.check_floating(logprobs, "logprobs")
  _checks.check_shape(old_logprobs, logprobs.shape, "old_logprobs")
  if not rho > 0:
    raise ValueError(f"rho must be > 0, got {rho!r}")
  lp = _upcast(logprobs)
  return rho * (lp - sg(_upcast(old_logprobs).astype(lp.dtype))), {}


def rover_next_values(mean_logprobs: jax.Array, old_mean_logprobs: jax.Array,
                      mask: jax.Array, *, rho: float = 1.0) -> tuple[jax.Array, dict]:
  """Uniform-policy value of the next state, shifted onto the current token.

  ``(V_next [B, N], metrics)`` with, for ``t < N - 1``::

      V_next[i, t] = rho (mlp[i, t+1] - mlp_old[i, t+1]) m[i, t+1],   V_next[i, N-1] = 0

  where ``mlp[i, t] = (1/|V|) sum_a log pi(a | s_{i,t})`` (``mean_logprobs``) and
  ``mlp_old`` the same under the behaviour policy. ``m[i, t+1] = 0`` after a
  completion's last token, so the value after it is 0. He et al. 2025,
  arXiv 2509.24981. Returned without gradient (it is part of the regression target).
  """
  _checks.check_rank(mean_logprobs, 2, "mean_logprobs")
  _checks.check_floating(mean_logprobs, "mean_logprobs")
  shape = mean_logprobs.shape
  _checks.check_shape(old_mean_logprobs, shape, "old_mean_logprobs")
  _checks.check_shape(mask, shape, "mask")
  if not rho > 0:
    raise ValueError(f"rho must be > 0, got {rho!r}")
  mlp = _upcast(mean_logprobs)
  diff = rho * (mlp - _upcast(old_mean_logprobs).astype(mlp.dtype))
  m = jnp.asarray(mask).astype(mlp.dtype)
  nxt = jnp.where(m[:, 1:] != 0, diff[:, 1:], 0) * m[:, 1:]  # NaN-safe past the end
  v_next = jnp.concatenate([nxt, jnp.zeros_like(nxt[:, :1])], axis=1)
  return sg(v_next), {}


def rover_clip_q(q: jax.Array, target: jax.Array, mask: jax.Array, *,
                 clip_eps: float) -> tuple[jax.Array, dict]:
  """Trust-region clip of Q towards its target: ``(Q_clipped, metrics)``.

  With ``hi = log(1 + eps)``, ``lo = log(1 - eps)``::

      Q_clipped = hi   (constant)  where target > Q and Q > hi
                = lo   (constant)  where target < Q and Q < lo
                = Q                otherwise

  i.e. once Q has left ``[lo, hi]`` in the direction of its target it gets no more
  gradient that way; a Q that overshot its target is still pulled back. The
  official code's ``use_rover_clip`` (``clip_ratio`` = ``eps``); SECONDARY for the
  paper, which does not describe it. Metrics: the clipped token fractions.
  """
  if not 0 < clip_eps < 1:
    raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps!r}")
  hi = jnp.log1p(jnp.asarray(clip_eps, q.dtype))
  lo = jnp.log1p(-jnp.asarray(clip_eps, q.dtype))
  high = (target > q) & (q > hi)
  low = (target < q) & (q < lo)
  clipped = jnp.where(high, hi, jnp.where(low, lo, q))
  f = lambda c: masked_mean(c.astype(q.dtype), mask)
  return clipped, {"rover_clip_high_frac": f(high), "rover_clip_low_frac": f(low)}


def rover_loss(logprobs: jax.Array, old_logprobs: Optional[jax.Array], advantages: jax.Array,
               mask: jax.Array, *, mean_logprobs: jax.Array, old_mean_logprobs: jax.Array,
               rho: float = 1.0, response_level: bool = False, target_adv_only: bool = False,
               clip_eps: Optional[float] = None,
               is_weights: Optional[jax.Array] = None) -> LossOutput:
  """ROVER's Q regression onto the uniform-policy Bellman target.

  He et al. 2025, "Random Policy Valuation is Enough for LLM Reasoning with
  Verifiable Rewards", arXiv 2509.24981 (official code ``tinnerhrhe/ROVER`` @b0fa587)::

      Q[i, t]      = rho (lp[i, t] - lp_old[i, t])                       (rover_q_values)
      V_next[i, t] = rho (mlp[i, t+1] - mlp_old[i, t+1]) m[i, t+1],  0 at t = N-1
      target[i, t] = A[i, t] + V_next[i, t]      (A[i, t] only, if target_adv_only)
      L            = sum_{i,t} m[i,t] (Q[i,t] - sg(target[i,t]))^2 / sum m      (token mean)

  ``response_level`` (the code's ``response_level_rover_loss``) instead regresses each
  response's mean Q on its advantage, without the V term::

      L = (1/B') sum_i (sum_t m Q / sum_t m - A_i)^2    (B' = rows with a counted token)

  With ``clip_eps`` Q is first clipped by :func:`rover_clip_q` (both modes, as in
  the code). The gradient is ``dL/dQ = 2 m (Q - target) / count`` (times
  ``rho`` to ``lp``); ``mean_logprobs`` enters only the stop-gradient target.

  Args:
    logprobs: ``[B, N]`` log-probs of the sampled tokens, current policy.
    old_logprobs: ``[B, N]`` behaviour log-probs (None: ``sg(logprobs)``, the
      code's pure on-policy case, so ``Q = 0`` at the update).
    advantages: ``[B]`` or ``[B, N]`` ``A_i``: the paper's mean-centred group
      reward, the code's GRPO advantage with std (the configured estimator).
    mask: ``[B, N]`` tokens that get a loss.
    mean_logprobs: ``[B, N]`` ``mlp`` of the current policy (column t: state s_t).
    old_mean_logprobs: ``[B, N]`` the same under the behaviour policy.
    rho: Q temperature (``rover_t``, default 1.0).
    response_level, target_adv_only, clip_eps: the code's variants (see above;
      SECONDARY: in the official code, not in the paper's main method).
    is_weights: must be None (ROVER has no importance weighting; turn off TIS).

  Returns:
    ``LossOutput(total, count, metrics)``: token-level ``count = sum m``;
    response-level ``count`` = rows with a counted token. Metrics (token means):
    ``rover_q_mean``, ``rover_q_abs_mean``, ``rover_next_v_mean``,
    ``rover_target_mean``, ``rover_td_abs_mean`` (|Q - target|), and with
    ``clip_eps`` the clip fractions.
  """
  if is_weights is not None:
    raise ValueError("rover_loss takes no is_weights (no importance weighting in ROVER; "
                     "turn off truncated importance sampling, rl.tis)")
  _checks.check_rank(logprobs, 2, "logprobs")
  shape = logprobs.shape
  _checks.check_shape(mask, shape, "mask")
  if old_logprobs is None:
    old_logprobs = sg(logprobs)
  q, _ = rover_q_values(logprobs, old_logprobs, rho=rho)
  m = jnp.asarray(mask).astype(q.dtype)
  adv = _checks.per_sequence_to_tokens(advantages, shape, "advantages")
  adv = sg(_upcast(adv).astype(q.dtype))
  v_next, _ = rover_next_values(mean_logprobs, old_mean_logprobs, mask, rho=rho)
  target = adv if target_adv_only else adv + v_next.astype(q.dtype)
  target = sg(target)
  metrics = {}
  if clip_eps is not None:
    q, clip_metrics = rover_clip_q(q, target, m, clip_eps=clip_eps)
    metrics.update(clip_metrics)
  metrics.update(rover_q_mean=masked_mean(q, m), rover_q_abs_mean=masked_mean(jnp.abs(q), m),
                 rover_next_v_mean=masked_mean(v_next.astype(q.dtype), m),
                 rover_target_mean=masked_mean(target, m),
                 rover_td_abs_mean=masked_mean(jnp.abs(q - target), m))
  if response_level:
    tokens = jnp.sum(m, axis=1)
    has = tokens > 0
    denom = jnp.where(has, tokens, 1.0)
    q_mean = masked_sum(q, m, axis=1) / denom
    a_row = masked_sum(adv, m, axis=1) / denom  # A_i (constant over a row's tokens)
    per_row = jnp.where(has, (q_mean - a_row) ** 2, 0.0)
    total, count = jnp.sum(per_row), jnp.sum(has.astype(q.dtype))
  else:
    total, count = masked_sum((q - target) ** 2, m), jnp.sum(m)
  return LossOutput(total, count, {k: sg(v) for k, v in metrics.items()})

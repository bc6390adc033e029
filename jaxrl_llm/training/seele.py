"""SEELE: per-problem hint lengths that keep rollout accuracy in the "sweet spot".

Spec: /work/shared/reference/rlvr_methods.md section 12 ("Staying in the Sweet Spot",
arXiv 2509.06923; PAPER level). The descent bound of the paper,
``(1/(2 beta)) E_x[a(x)(1 - a(x))]``, is largest at rollout accuracy ``a* = 0.5``; SEELE
steers each problem's accuracy there by forcing a prefix of its reference solution
``y`` (the hint) in front of what the policy generates.

Per training step and per problem ``x``, ``m`` rounds of ``n`` rollouts:

  round 1:    p = the rate stored for ``x`` by an earlier step, or the cold-start rate
              ``(|y| - 1) / |y|`` (near-full hint);
  round i>1:  fit the three-parameter logistic (3PL) accuracy model
                  f(p) = b + (1 - b) / (1 + exp(-k (p + mu)))
              to the pairs ``C_x`` of this step's rounds (augmented with the margin points
              (0, 0) and (1, 1) when p = 0 / p = 1 were not evaluated) and take
                  p = f^{-1}(a*) = -mu - (1/k) log((1 - b)/(a* - b) - 1),   clipped to [0, 1];
  every round: hint length ``l = round(p |y|)`` (half up); the hint ``y[:l]`` is a FORCED
              completion prefix (kept in the completion, out of ``loss_mask``); sample n
              outputs; ``a = mean accuracy``; add ``(l / |y|, a)`` to ``C_x``.

After the last round the fit on all ``m`` pairs gives the rate stored for ``x``
(``method_state["hint_rate"][x.prompt]``, JSON), the next step's round-1 rate. The step's
group of ``x`` is all ``m * n`` outputs (``rl.group_size = m * n``), for the Dr. GRPO
advantage ``r - mean`` over them (``rl.advantage = "dr_grpo"``) and the ``"seele"`` policy
loss (:func:`jaxrl_llm.losses.seele.seele_loss`).

Choices, documented:

* ``|y|`` is counted in ``length_unit``: ``"tokens"`` (default; the policy tokenizer's
  tokens of ``y``, the hint decoded from the first ``l``; the sampler re-encodes that text,
  which a BPE tokenizer may split differently) or ``"chars"``. The paper counts
  solution *steps* (its solutions were decomposed into steps by DeepSeek-V3); Countdown's
  one-line expressions have no steps.
* The pair recorded is the realised rate ``l / |y|`` (after rounding and after cutting the
  hint to ``max_new_tokens - 1`` tokens, so at least one token is generated), not the
  requested ``p``; "p = 0 / p = 1 evaluated" refers to these realised rates.
* Accuracy is the fraction of rewards ``>= 1`` (the repo's ``accuracy``); with a binary
  verifier it is the spec's mean reward.
* The fit is a projected Levenberg-Marquardt in NumPy from a few starting points, with box
  bounds (``k`` in [0.1, 200], ``mu`` in [-2, 1], ``b`` in [0, 0.999]); when it is degenerate
  (non-finite, fewer than two distinct rates, or flat: ``f(1) - f(0) < 0.05``) the rate
  comes from linear interpolation of the (monotonised) pairs instead
  (:func:`interpolate_rate`).
* Inverse outside the formula's range: ``a* <= b`` (even no hint reaches a*) gives 0;
  ``a* >= 1`` gives 1; the formula's value is clipped to [0, 1].
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import numpy as np

from jaxrl_llm.training.demonstration import reference_solution

K_BOUNDS = (0.1, 200.0)
MU_BOUNDS = (-2.0, 1.0)
B_BOUNDS = (0.0, 0.999)
LENGTH_UNITS = ("tokens", "chars")


# ---- the 3PL accuracy model -------------------------------------------------------------


class ThreePL(NamedTuple):
  """Parameters ``phi = (k, mu, b)`` of ``f(p) = b + (1 - b) / (1 + exp(-k (p + mu)))``."""

  k: float
  mu: float
  b: float


def _sigmoid(z):
  z = np.asarray(z, np.float64)
  return np.where(z >= 0, 1.0 / (1.0 + np.exp(-np.abs(z))),
                  np.exp(-np.abs(z)) / (1.0 + np.exp(-np.abs(z))))


def three_pl(p, phi: ThreePL) -> np.ndarray:
  """``f(p) = b + (1 - b) sigmoid(k (p + mu))`` (SEELE, arXiv 2509.06923), elementwise."""
  k, mu, b = phi
  return b + (1.0 - b) * _sigmoid(k * (np.asarray(p, np.float64) + mu))


def three_pl_inverse(target: float, phi: ThreePL) -> float:
  """The hint rate with predicted accuracy ``target``, clipped to [0, 1]:

      p = -mu - (1/k) log((1 - b) / (a* - b) - 1)      for b < a* < 1

  ``a* <= b`` (the floor already reaches the target) gives 0, ``a* >= 1`` gives 1.
  """
  k, mu, b = phi
  if not k > 0:
    raise ValueError(f"three_pl_inverse needs k > 0, got {k}")
  if target <= b:
    return 0.0
  if target >= 1.0:
    return 1.0
  p = -mu - math.log((1.0 - b) / (target - b) - 1.0) / k
  return float(min(1.0, max(0.0, p)))


def _model_and_jacobian(p, theta):
  """``f`` ``[S, n]`` and its partials wrt (k, mu, b) ``[S, n, 3]``; ``p`` ``[S, n]``,
  ``theta`` ``[S, 3]``."""
  k, mu, b = theta[:, 0:1], theta[:, 1:2], theta[:, 2:3]
  s = _sigmoid(k * (p + mu))
  ds = s * (1.0 - s)
  f = b + (1.0 - b) * s
  return f, np.stack([(1.0 - b) * ds * (p + mu), (1.0 - b) * ds * k, 1.0 - s], axis=2)


_LO = np.array([K_BOUNDS[0], MU_BOUNDS[0], B_BOUNDS[0]])
_HI = np.array([K_BOUNDS[1], MU_BOUNDS[1], B_BOUNDS[1]])


def _lm(p, a, w, theta0, *, max_iter: int, tol: float):
  """Projected Levenberg-Marquardt on S independent problems at once: rows of ``p``, ``a``
  ``[S, n]`` with weights ``w`` (1 = a data point, 0 = padding), starts ``theta0`` ``[S, 3]``;
  returns ``(theta [S, 3], sse [S])``. One damped Gauss-Newton trial per row and iteration:
  accepted (SSE decreases) -> damping / 3, else damping x 4; a row stops when an accepted
  step gains less than ``tol`` (absolute) or its damping exceeds 1e10."""
  theta = np.clip(np.asarray(theta0, np.float64), _LO, _HI)
  f, jac = _model_and_jacobian(p, theta)
  r = (f - a) * w
  jac = jac * w[..., None]
  sse = np.sum(r * r, axis=1)
  lam = np.full(theta.shape[0], 1e-2)
  active = np.ones(theta.shape[0], bool)
  eye = np.eye(3)[None]
  for _ in range(max_iter):
    if not active.any():
      break
    jtj = np.einsum("snk,snl->skl", jac, jac)
    grad = np.einsum("snk,sn->sk", jac, r)
    damp = lam[:, None, None] * (jtj * eye + 1e-9 * eye)
    step = np.linalg.solve(jtj + damp, -grad[..., None])[..., 0]
    cand = np.clip(theta + step, _LO, _HI)
    fc, jc = _model_and_jacobian(p, cand)
    rc = (fc - a) * w
    sc = np.sum(rc * rc, axis=1)
    ok = active & np.isfinite(sc) & (sc < sse)
    gain = np.where(ok, sse - sc, 0.0)
    theta = np.where(ok[:, None], cand, theta)
    jac = np.where(ok[:, None, None], jc * w[..., None], jac)
    r = np.where(ok[:, None], rc, r)
    sse = np.where(ok, sc, sse)
    lam = np.where(ok, np.maximum(lam / 3.0, 1e-12), lam * 4.0)
    active &= ~(ok & (gain < tol)) & (lam < 1e10) & (sse > 1e-28)
  return theta, sse


def pool_pairs(rates: Sequence[float], accuracies: Sequence[float],
               margins: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Sorted distinct rates and the mean accuracy at each (spec: ``ahat`` = mean over rounds
  with the same p), plus the margin points (0, 0) / (1, 1) where p = 0 / p = 1 is absent."""
  rates = np.asarray(rates, np.float64).reshape(-1)
  accuracies = np.asarray(accuracies, np.float64).reshape(-1)
  if rates.shape != accuracies.shape:
    raise ValueError(f"pool_pairs: {rates.size} rates and {accuracies.size} accuracies")
  keys = np.round(rates, 9)
  ps = np.unique(keys)
  acc = np.array([accuracies[keys == q].mean() for q in ps])
  if margins:
    if not np.any(ps == 0.0):
      ps, acc = np.concatenate([[0.0], ps]), np.concatenate([[0.0], acc])
    if not np.any(ps == 1.0):
      ps, acc = np.concatenate([ps, [1.0]]), np.concatenate([acc, [1.0]])
  order = np.argsort(ps, kind="stable")
  return ps[order], acc[order]


class Fit(NamedTuple):
  phi: Optional[ThreePL]   # None when the fit is degenerate
  sse: float
  degenerate: bool


def fit_three_pl(p, a, *, max_iter: int = 100, tol: float = 1e-9,
                 flat_tol: float = 0.05) -> Fit:
  """Least-squares fit ``phi = argmin sum_j (f_phi(p_j) - a_j)^2`` (SEELE's TRF/LMFIT fit,
  here projected Levenberg-Marquardt within the module's bounds), best of six starts
  (midpoint at the half-way crossing of the interpolated pairs and at 0.5; k0 = 4, 12, 40;
  b0 = the lowest accuracy).

  Degenerate (``phi=None``): fewer than two distinct ``p``, a non-finite result, or a fitted
  curve flat on [0, 1] (``f(1) - f(0) < flat_tol``; 0.05 is below the 1/8 resolution of an
  accuracy over 8 rollouts).
  """
  return fit_three_pl_many([(p, a)], max_iter=max_iter, tol=tol, flat_tol=flat_tol)[0]


_K_STARTS = (4.0, 12.0, 40.0)


def fit_three_pl_many(problems, *, max_iter: int = 100, tol: float = 1e-9,
                      flat_tol: float = 0.05) -> list:
  """:func:`fit_three_pl` of each ``(p, a)`` in ``problems``, all solved in one vectorised
  Levenberg-Marquardt (a step's fits cost one loop, not one per problem)."""
  out = [None] * len(problems)
  rows, owners = [], []
  for i, (p, a) in enumerate(problems):
    p = np.asarray(p, np.float64).reshape(-1)
    a = np.asarray(a, np.float64).reshape(-1)
    if p.shape != a.shape or p.size == 0:
      raise ValueError(f"fit_three_pl: {p.size} rates and {a.size} accuracies (need >= 1, "
                       "equal)")
    if np.unique(np.round(p, 9)).size < 2:
      out[i] = Fit(None, float("nan"), True)
      continue
    b0 = float(np.clip(a.min(), 0.0, 0.9))
    mid0 = float(np.clip(interpolate_rate(p, a, 0.5 * (a.min() + a.max())), 0.05, 0.95))
    for mid in sorted({round(mid0, 6), 0.5}):
      for k0 in _K_STARTS:
        rows.append((p, a, (k0, -mid, b0)))
        owners.append(i)
  if rows:
    width = max(r[0].size for r in rows)
    ps = np.zeros((len(rows), width))
    acc = np.zeros((len(rows), width))
    w = np.zeros((len(rows), width))
    for j, (p, a, _) in enumerate(rows):
      ps[j, :p.size], acc[j, :p.size], w[j, :p.size] = p, a, 1.0
    thetas, sses = _lm(ps, acc, w, np.array([r[2] for r in rows]), max_iter=max_iter, tol=tol)
    owners = np.asarray(owners)
    for i in np.unique(owners):
      idx = np.flatnonzero(owners == i)
      ok = np.all(np.isfinite(thetas[idx]), axis=1) & np.isfinite(sses[idx])
      if not ok.any():
        out[i] = Fit(None, float("nan"), True)
        continue
      best = idx[int(np.argmin(np.where(ok, sses[idx], np.inf)))]
      phi = ThreePL(*map(float, thetas[best]))
      flat = float(three_pl(1.0, phi) - three_pl(0.0, phi)) < flat_tol
      out[i] = Fit(None if flat else phi, float(sses[best]), flat)
  return out


def interpolate_rate(p, a, target: float) -> float:
  """Fallback: the first rate where the linear interpolation of the monotonised pairs
  (running max of the accuracies in rate order) reaches ``target``; the lowest rate if it
  already does (0 with the margin point), 1 if none does."""
  p = np.asarray(p, np.float64)
  a = np.maximum.accumulate(np.asarray(a, np.float64)[np.argsort(p, kind="stable")])
  p = np.sort(p)
  if a[0] >= target:
    return float(np.clip(p[0], 0.0, 1.0))
  for i in range(1, p.size):
    if a[i] >= target:
      t = (target - a[i - 1]) / (a[i] - a[i - 1])
      return float(np.clip(p[i - 1] + t * (p[i] - p[i - 1]), 0.0, 1.0))
  return 1.0


def next_hint_rate(rates: Sequence[float], accuracies: Sequence[float],
                   target: float = 0.5) -> tuple[float, bool]:
  """``(p, fell_back)``: ``f_phi^{-1}(a*)`` of the 3PL fit on the pooled, margin-augmented
  pairs, or :func:`interpolate_rate` on them when the fit is degenerate."""
  return next_hint_rates([(rates, accuracies)], target)[0]


def next_hint_rates(pairs, target: float = 0.5) -> list:
  """:func:`next_hint_rate` of each ``(rates, accuracies)`` in ``pairs`` (one vectorised fit)."""
  if not 0.0 < target < 1.0:
    raise ValueError(f"target_accuracy must be in (0, 1), got {target}")
  pooled = [pool_pairs(r, a) for r, a in pairs]
  fits = fit_three_pl_many(pooled)
  return [(interpolate_rate(ps, acc, target), True) if fit.degenerate
          else (three_pl_inverse(target, fit.phi), False)
          for (ps, acc), fit in zip(pooled, fits)]


def cold_start_rate(length: int) -> float:
  """The first-epoch rate ``(|y| - 1) / |y|`` (0 for an empty solution)."""
  return (length - 1) / length if length > 0 else 0.0


def hint_length(rate: float, length: int) -> int:
  """``l = round(p |y|)``, half up, in [0, |y|]."""
  return int(min(length, max(0, math.floor(rate * length + 0.5))))


# ---- the rollout method -----------------------------------------------------------------


def _solution_units(tokenizer, solution: str, unit: str):
  if unit == "tokens":
    return tokenizer.encode(solution, add_bos=False)
  return solution


def _hint(tokenizer, units, l: int, unit: str, cap: int) -> tuple[str, int]:
  """The hint text of the first ``l`` units, cut to ``cap`` tokens; ``(text, realised l)``."""
  if unit == "tokens":
    l = min(l, cap)
    return (tokenizer.decode(units[:l]) if l else ""), l
  text = units[:l]
  ids = tokenizer.encode(text, add_bos=False) if text else []
  if len(ids) > cap:
    text = tokenizer.decode(ids[:cap])
    while text and not units.startswith(text):  # a decoded cut that is not a prefix of y
      text = text[:-1]
  return text, len(text)


def check_seele_source(source, *, solution_field: str = "completion", probe: int = 8,
                       **options) -> None:
  """Start-of-run check (``RolloutMethod.check``): the options are valid and the first
  ``probe`` training examples carry a reference solution in ``solution_field``."""
  _check_options(**{k: v for k, v in options.items()
                    if k in ("rounds", "target_accuracy", "length_unit")})
  examples = source.examples(0, 0, probe)
  for i, ex in enumerate(examples):
    if not reference_solution(ex, solution_field):
      raise ValueError(
          f"rl.rollout_method 'seele' needs a reference solution per example in "
          f"Example.{solution_field} (example {i}, prompt {ex.prompt!r} has none); choose "
          f"another field with rl.rollout_method_kwargs.solution_field")


def _check_options(rounds: int = 4, target_accuracy: float = 0.5, length_unit: str = "tokens"):
  if int(rounds) < 1:
    raise ValueError(f"rl.rollout_method_kwargs.rounds must be >= 1, got {rounds}")
  if not 0.0 < target_accuracy < 1.0:
    raise ValueError(f"rl.rollout_method_kwargs.target_accuracy must be in (0, 1), got "
                     f"{target_accuracy}")
  if length_unit not in LENGTH_UNITS:
    raise ValueError(f"rl.rollout_method_kwargs.length_unit must be one of {LENGTH_UNITS}, got "
                     f"{length_unit!r}")


def init_seele_state(source, **options) -> dict:
  """No stored rates: every problem starts cold."""
  del source, options
  return {"hint_rate": {}}


def seele_rollouts(ctx, source, position, key, method_state, *, rounds: int = 4,
                   target_accuracy: float = 0.5, solution_field: str = "completion",
                   length_unit: str = "tokens"):
  """SEELE's ``m = rounds`` rounds of ``n = rl.group_size / m`` hinted rollouts per problem.

  ``(Rollouts, method_state)``; the batch holds each problem's ``m * n`` rows contiguously
  (round-major inside the group), the hint tokens forced (``loss_mask`` False). Metrics:
  ``hint_rate`` (mean realised rate over problems and rounds), ``hint_tokens``,
  ``accuracy_round<i>`` (i = 1..m), ``accuracy_gap`` (mean ``|a - a*|`` over problems and
  rounds), ``stored_hint_rate`` (mean rate stored for the next step), ``fit_fallback_frac``.
  """
  import jax
  import jax.numpy as jnp

  from jaxrl_llm import data, losses
  from jaxrl_llm.training import rollout as rollout_lib
  from jaxrl_llm.training.batch import make_rollout_batch

  _check_options(rounds, target_accuracy, length_unit)
  opts = dict(ctx.options)
  m, g = int(rounds), int(opts["group_size"])
  if g % m:
    raise ValueError(f"rl.group_size={g} must be rl.rollout_method_kwargs.rounds={m} times the "
                     "rollouts per round n (SEELE's group is all m * n outputs of a problem)")
  n = g // m
  if opts.get("dynamic_sampling"):
    raise ValueError("rl.dynamic_sampling cannot be combined with rl.rollout_method='seele'")
  if opts.get("prompt_transform", "identity") not in ("identity", "", None):
    raise ValueError("rl.prompt_transform must be 'identity' with rl.rollout_method='seele' "
                     "(the hint is SEELE's forced prefix)")
  max_new = int(opts["max_new_tokens"])
  next_examples = opts.get("next_examples", data.take_batch)
  shaping = losses.get_reward_shaping(opts.get("reward_shaping", "none"))
  shaping_kwargs = losses.check_options(shaping, opts.get("reward_shaping_kwargs"),
                                        "reward shaping", skip=2)
  sample_kw = {k: opts[k] for k in ("temperature", "top_p", "top_k", "min_p", "stop_tokens",
                                    "stop_strings", "add_bos", "mesh", "sample_chunk")
               if opts.get(k) is not None}

  examples, position = next_examples(source, position, int(opts["num_prompts"]))
  tok = ctx.tokenizer
  units = [_solution_units(tok, reference_solution(ex, solution_field), length_unit)
           for ex in examples]
  sizes = [len(u) for u in units]
  stored = dict((method_state or {}).get("hint_rate", {}))
  pairs = [([], []) for _ in examples]
  prompts = [ex.prompt for ex in examples]
  rds, round_rewards, round_acc, fallbacks, hint_toks = [], [], [], 0, []
  for i in range(m):
    hints = []
    if i == 0:
      rates = [float(stored.get(ex.prompt, cold_start_rate(sizes[j])))
               for j, ex in enumerate(examples)]
    else:
      fitted = next_hint_rates(pairs, target=target_accuracy)
      rates = [r for r, _ in fitted]
      fallbacks += sum(int(fb) for _, fb in fitted)
    for j, ex in enumerate(examples):
      rate = rates[j]
      text, l = _hint(tok, units[j], hint_length(rate, sizes[j]), length_unit, max_new - 1)
      hints.append(text)
      pairs[j][0].append(l / sizes[j] if sizes[j] else 0.0)
    key, sub = jax.random.split(key)
    rd = rollout_lib.sample_groups(ctx.config, ctx.params, tok, examples, sub, group_size=n,
                                   max_new_tokens=max_new,
                                   plan=rollout_lib.PromptPlan(prompts, hints), **sample_kw)
    r = rollout_lib.score(ctx.reward_fn, rd.texts, examples, n)
    acc = (r.reshape(len(examples), n) >= 1.0).mean(axis=1)
    for j in range(len(examples)):
      pairs[j][1].append(float(acc[j]))
    rds.append(rd)
    round_rewards.append(r)
    round_acc.append(acc)
    hint_toks.append(np.asarray(jnp.sum(rd.out.forced, axis=1)).mean())
  new_rates = {}
  for ex, (rate, fb) in zip(examples, next_hint_rates(pairs, target=target_accuracy)):
    fallbacks += int(fb)
    new_rates[ex.prompt] = float(rate)
  stored.update(new_rates)

  # Rows: round-major (i, problem, sample) -> problem-major (problem, i, sample).
  bsz = len(examples)
  rows = (np.arange(m)[None, :, None] * (bsz * n) + np.arange(bsz)[:, None, None] * n
          + np.arange(n)[None, None, :]).reshape(-1)
  take = lambda parts: jnp.take(jnp.concatenate(parts, 0), jnp.asarray(rows), axis=0)
  tokens = take([rd.out.tokens for rd in rds])
  mask = take([rd.mask for rd in rds])
  forced = take([rd.out.forced for rd in rds])
  sampler_logprobs = jnp.where(mask, take([rd.out.temperature_logprobs for rd in rds]), 0.0)
  task_rewards = np.concatenate(round_rewards)[rows]
  texts = [t for rd in rds for t in rd.texts]
  texts = [texts[i] for i in rows]
  prompt_tokens = np.repeat(rds[0].prompt_tokens, g, axis=0)
  prompt_mask = np.repeat(rds[0].prompt_mask, g, axis=0)
  shaped, shaping_metrics = shaping(jnp.asarray(task_rewards), mask, **shaping_kwargs)
  batch = make_rollout_batch(
      jnp.asarray(prompt_tokens, jnp.int32), jnp.asarray(prompt_mask, jnp.int32),
      tokens.astype(jnp.int32), mask, sampler_logprobs.astype(jnp.float32),
      shaped.astype(jnp.float32), group_ids=jnp.arange(rows.size, dtype=jnp.int32) // g,
      loss_mask=mask & ~forced, is_off_policy=jnp.zeros(rows.shape, bool))
  lengths = jnp.sum(mask, axis=1)
  dev = jax.device_get({"reward_mean": jnp.mean(batch.rewards),
                        "response_length": jnp.mean(lengths),
                        "truncated_frac": jnp.mean(lengths >= max_new),
                        "generated_tokens": jnp.sum(lengths), **shaping_metrics})
  metrics = {k: float(v) for k, v in dev.items()}
  tg = task_rewards.reshape(-1, g)
  acc_all = np.stack(round_acc)  # [m, B]
  rates_all = np.array([pr[0] for pr in pairs])  # [B, m]
  metrics.update({
      "task_reward_mean": float(task_rewards.mean()),
      "accuracy": float((task_rewards >= 1.0).mean()),
      "sampling_rounds": float(m), "prompts_sampled": float(bsz),
      "informative_group_frac": float((tg.max(1) > tg.min(1)).mean()),
      "hint_rate": float(rates_all.mean()),
      "hint_tokens": float(np.mean(hint_toks)),
      "accuracy_gap": float(np.abs(acc_all - target_accuracy).mean()),
      "stored_hint_rate": float(np.mean(list(new_rates.values()))),
      "fit_fallback_frac": float(fallbacks / (bsz * m)),
  })
  for i in range(m):
    metrics[f"accuracy_round{i + 1}"] = float(acc_all[i].mean())
  ro = rollout_lib.Rollouts(batch, texts, task_rewards, metrics, position, list(examples))
  return ro, {**(method_state or {}), "hint_rate": stored}

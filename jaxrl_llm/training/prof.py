"""PROF as a rollout method: oversample ``n`` per prompt, keep ``m = rl.group_size`` by process consistency.

PROF (Process Consistency Filter), arXiv 2509.03403 (spec §15, SECONDARY; the
selection rule is :mod:`jaxrl_llm.losses.prof`). ``rl.rollout_method = "prof"``
samples ``num_samples`` (n) completions per prompt with the run's sampler settings
(:func:`~jaxrl_llm.training.rollout.collect_rollouts` with ``group_size = n``),
scores each completion's steps with a rule-based step scorer
(``rewards.STEP_SCORERS``: the project has no learned PRM, so exact per-step checks
stand in for one), splits by outcome (correct: task reward >= ``correct_threshold``),
and keeps ``m`` rows per prompt. The kept rows form the batch (contiguous groups of
``m``), so ``prepare`` computes the advantages on the kept set only.

Logged (``train/<name>``): ``reward_mean`` / ``task_reward_mean`` / ``accuracy`` /
``response_length`` / ``informative_group_frac`` of the kept set, ``prof_sampled_accuracy``
and ``prof_sampled_reward_mean`` of all n, ``prof_kept_frac`` (m / n), ``prof_pos_kept_frac``
/ ``prof_neg_kept_frac`` (kept share of G+ / G-), ``prof_kept_correct_frac`` (k+ / m),
``prof_steps_mean``, ``prof_step_score_mean``, ``prof_r_pro_kept_mean`` / ``_dropped_mean``.
The method keeps no state across iterations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm import losses, rewards
from jaxrl_llm.training import process_reward
from jaxrl_llm.training.batch import take_rows


def check_prof_options(source, *, num_samples: int = 8, variant: str = "pos",
                       lam: float = 0.5, h_lambda: int = 8, scorer: str = "countdown_steps",
                       correct_threshold: float = 1.0):
  """Start-up check: valid options, and the scorer can read the task's examples."""
  del correct_threshold
  if variant not in losses.PROF_VARIANTS:
    raise ValueError(f"rl.rollout_method_kwargs.variant must be one of {losses.PROF_VARIANTS}, "
                     f"got {variant!r}")
  if int(num_samples) < 2:
    raise ValueError(f"rl.rollout_method_kwargs.num_samples must be >= 2, got {num_samples}")
  if lam < 0 or h_lambda < 2:
    raise ValueError(f"rl.rollout_method_kwargs: need lam >= 0 and h_lambda >= 2, got "
                     f"lam={lam}, h_lambda={h_lambda}")
  process_reward.check_step_scorer(source, scorer, "rl.rollout_method_kwargs")


def prof_rollouts(ctx, source, position, key, method_state, *, num_samples: int = 8,
                  variant: str = "pos", lam: float = 0.5, h_lambda: int = 8,
                  scorer: str = "countdown_steps", correct_threshold: float = 1.0):
  """One PROF iteration: ``(Rollouts of the kept P x m rows, method_state)``.

  Options: ``num_samples`` n (>= ``rl.group_size`` m), ``variant`` ``"pos"`` (random
  incorrect rows) or ``"both"`` (incorrect rows with the lowest process score),
  ``lam`` and ``h_lambda`` of the step-count penalty (unverified defaults 0.5 and 8),
  ``scorer`` (``rewards.STEP_SCORERS``), ``correct_threshold``.
  """
  from jaxrl_llm.training import rollout as rollout_lib  # rollout imports this module
  m, n = int(ctx.options["group_size"]), int(num_samples)
  if n < m:
    raise ValueError(f"prof: rl.rollout_method_kwargs.num_samples={n} must be >= "
                     f"rl.group_size={m} (the kept group size)")
  sample_key, select_key = jax.random.split(key)
  ro = rollout_lib.collect_rollouts(ctx.config, ctx.params, ctx.tokenizer, source, position,
                                    ctx.reward_fn, sample_key, **dict(ctx.options, group_size=n))
  fn = rewards.get_step_scorer(scorer)
  steps = [[s.score for s in fn(t, ro.examples[i // n])] for i, t in enumerate(ro.completions)]
  step_mean, num_steps = losses.step_score_stats(steps)
  correct = np.asarray(ro.task_rewards) >= correct_threshold
  r_pro = losses.prof_process_scores(step_mean, num_steps, correct, lam=lam, h_lambda=h_lambda)
  rows, counts = losses.prof_select(r_pro, correct, num_samples=n, keep=m, variant=variant,
                                    key=select_key)
  num_groups = len(ro.examples)
  batch = take_rows(ro.batch, rows).replace(
      group_ids=jnp.arange(num_groups * m, dtype=jnp.int32) // m)
  task_rewards = np.asarray(ro.task_rewards)[rows]
  kept = np.zeros(r_pro.shape, bool)
  kept[rows] = True
  lengths = np.asarray(jax.device_get(jnp.sum(batch.completion_mask, axis=1)))
  max_new = ctx.options.get("max_new_tokens", lengths.max() if lengths.size else 0)
  tg = task_rewards.reshape(num_groups, m)
  n_pos, n_neg = counts["n_pos"].sum(), (n - counts["n_pos"]).sum()
  metrics = dict(ro.metrics)
  metrics.update({
      "reward_mean": float(np.mean(np.asarray(jax.device_get(batch.rewards)))),
      "task_reward_mean": float(task_rewards.mean()),
      "accuracy": float((task_rewards >= 1.0).mean()),
      "response_length": float(lengths.mean()),
      "truncated_frac": float((lengths >= max_new).mean()),
      "informative_group_frac": float((tg.max(1) > tg.min(1)).mean()),
      "prof_sampled_accuracy": ro.metrics["accuracy"],
      "prof_sampled_reward_mean": ro.metrics["reward_mean"],
      "prof_kept_frac": m / n,
      "prof_pos_kept_frac": float(counts["k_pos"].sum() / max(n_pos, 1)),
      "prof_neg_kept_frac": float(counts["k_neg"].sum() / max(n_neg, 1)),
      "prof_kept_correct_frac": float(counts["k_pos"].sum() / (num_groups * m)),
      "prof_steps_mean": float(num_steps.mean()),
      "prof_step_score_mean": float(step_mean.mean()),
      "prof_r_pro_kept_mean": float(r_pro[kept].mean()),
      "prof_r_pro_dropped_mean": float(r_pro[~kept].mean()) if (~kept).any() else 0.0,
  })
  out = rollout_lib.Rollouts(batch, [ro.completions[i] for i in rows], task_rewards, metrics,
                             ro.position, list(ro.examples))
  return out, method_state

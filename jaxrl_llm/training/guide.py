"""Guide's hinted rerolls: all-fail groups re-sampled from a hint-augmented prompt.

Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement Learning of
Reasoning Models", arXiv 2506.13923 (spec: /work/shared/reference/rlvr_methods.md
section 11, read in ``vaskar-open-source-research/guide_rl`` @2f27715,
``ray_trainer.py`` hint reroll loop). Per prompt group of G:

 1. G on-policy samples from the plain prompt ``q`` (the standard rollouts).
 2. If the group's accuracy (share of rows with task reward >= 1) is
    ``<= reroll_threshold`` (0.001: all fail), G new samples are drawn from the
    hinted prompt ``q_h = hint_template.format(prompt=q, hint=<the example's hint>)``.
    The hinted group replaces the original one only if its accuracy is in
    ``(keep_low, keep_high)`` = (0.001, 0.999); otherwise the ORIGINAL (all-fail,
    zero-advantage) group is kept, so the batch keeps its size.
 3. A kept hinted row stores the ORIGINAL prompt ``q`` (left-padded to the batch's
    prompt width, as the plain rows) and the hinted completion ``o`` (padded to
    ``max_new_tokens``), ``is_off_policy = True``, and as ``sampler_logprobs`` the
    sampler's log-probs under the hinted context, ``log pi_old(o_t | q_h, o_<t)``:
    the old log-probs :func:`jaxrl_llm.losses.guide.guide_loss` uses on those rows.
 4. Advantages are computed by the run's estimator within each group (a hinted
    group with its own rewards).

Hints come from a dataset field (``hint_field``: an ``Example`` attribute such as
``"completion"`` or ``"metadata.<key>"``); :func:`check_hint_source` fails at start
naming the field when the examples lack it. The hinted prompts are sampled in a
batch of a power-of-two number of groups (padded with repeats whose samples are
discarded) so the sampler compiles for few shapes.

This module imports :mod:`jaxrl_llm.training.rollout` (which registers the method)
and reads its attributes only at call time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm import losses
from jaxrl_llm.training import rollout as rollout_lib
from jaxrl_llm.training.batch import check_rollout_batch
from jaxrl_llm.training.demonstration import reference_solution

DEFAULT_HINT_TEMPLATE = "Hint: {hint}\n{prompt}"


def hint_text(example, field: str = "completion") -> str:
  """An example's hint: attribute ``field`` or ``"metadata.<key>"`` (``""`` when absent)."""
  return reference_solution(example, field)


def hinted_prompt(prompt: str, hint: str, template: str = DEFAULT_HINT_TEMPLATE) -> str:
  """``template.format(prompt=prompt, hint=hint)``."""
  return template.format(prompt=prompt, hint=hint)


def _check_template(template: str) -> None:
  if "{prompt}" not in template or "{hint}" not in template:
    raise ValueError(f"hint_template {template!r} must contain '{{prompt}}' and '{{hint}}'")
  try:
    template.format(prompt="", hint="")
  except (KeyError, IndexError, ValueError) as e:
    raise ValueError(f"hint_template {template!r} is not a format string with only "
                     f"{{prompt}} and {{hint}}: {e!r}") from None


def check_hint_source(source, *, hint_field: str = "completion",
                      hint_template: str = DEFAULT_HINT_TEMPLATE, probe: int = 8,
                      **options) -> None:
  """Start-of-run check (``RolloutMethod.check``): the template is valid and the first
  ``probe`` training examples carry a hint in ``hint_field``; other options ignored."""
  del options
  _check_template(hint_template)
  _check_hints(source.examples(0, 0, probe), hint_field, "training example")


def _check_hints(examples, field: str, what: str) -> None:
  for i, ex in enumerate(examples):
    if not hint_text(ex, field):
      raise ValueError(
          f"rl.rollout_method='guide' needs a hint in Example.{field} for every example; "
          f"{what} {i} (prompt {ex.prompt!r}) has none (choose the field with "
          f"rl.rollout_method_kwargs.hint_field)")


def _bucket(n: int, cap: int, floor: int = 1) -> int:
  """The next power of two >= n (at least ``floor``), at most ``max(cap, n)``."""
  return min(max(1 << max(n - 1, 0).bit_length(), floor), max(cap, n))


def _group_accuracy(task_rewards: np.ndarray, g: int) -> np.ndarray:
  return (np.asarray(task_rewards) >= 1.0).reshape(-1, g).mean(axis=1)


def guide_rollouts(ctx, source, position, key, method_state, *,
                   hint_field: str = "completion",
                   hint_template: str = DEFAULT_HINT_TEMPLATE,
                   reroll_threshold: float = 0.001, keep_low: float = 0.001,
                   keep_high: float = 0.999, min_reroll_groups: int = 1):
  """Standard rollouts, then hinted rerolls of the all-fail groups (module docstring).

  Options: ``hint_field``, ``hint_template`` (``{prompt}`` and ``{hint}``;
  ``{prompt}`` is the prompt the run's prompt transform gives), ``reroll_threshold``
  (reroll a group whose accuracy is ``<=`` it), ``keep_low``/``keep_high`` (keep a
  hinted group whose accuracy is strictly between them, else keep the original),
  ``min_reroll_groups`` (the hinted sampler gets at least this many groups, padded with
  repeats whose samples are discarded: fewer batch shapes to compile, e.g.
  ``num_prompts`` for a single shape in a short run).

  Metrics (logged as ``train/<name>``): ``guide_rerolled_frac`` (share of the
  batch's groups re-sampled with a hint), ``guide_hinted_accuracy`` (mean accuracy
  of the hinted groups; 0 when none), ``guide_kept_frac`` (share of the hinted
  groups kept; 0 when none), ``guide_hinted_group_frac`` (share of the batch's
  groups that are hinted), ``guide_batch_reward_mean`` (the final batch's reward
  mean). The standard metrics (``accuracy``, ``reward_mean`` ...) describe the
  plain-prompt samples; ``generated_tokens`` also counts the hinted ones.
  The method state is unused (passed through).
  """
  _check_template(hint_template)
  opts = dict(ctx.options)
  g = opts["group_size"]
  key, plain_key, hint_key = jax.random.split(key, 3)
  ro = rollout_lib.collect_rollouts(ctx.config, ctx.params, ctx.tokenizer, source, position,
                                    ctx.reward_fn, plain_key, **opts)
  num_groups = len(ro.examples)
  acc = _group_accuracy(ro.task_rewards, g)
  fail = np.nonzero(acc <= reroll_threshold)[0]
  metrics = dict(ro.metrics)
  metrics.update({"guide_rerolled_frac": float(len(fail) / num_groups),
                  "guide_hinted_accuracy": 0.0, "guide_kept_frac": 0.0,
                  "guide_hinted_group_frac": 0.0})
  if len(fail) == 0:
    metrics["guide_batch_reward_mean"] = float(jnp.mean(ro.batch.rewards))
    return ro._replace(metrics=metrics), method_state

  # Hinted prompts (from the prompts the run's transform gives the failed examples).
  failed = [ro.examples[i] for i in fail]
  nb = _bucket(len(failed), opts["num_prompts"], min_reroll_groups)
  padded = failed + [failed[-1]] * (nb - len(failed))
  base = rollout_lib.get_prompt_transform(opts.get("prompt_transform", "identity"))(
      padded, **(opts.get("prompt_transform_kwargs") or {}))
  _check_hints(failed, hint_field, "rollout group")
  plan = rollout_lib.PromptPlan(
      [hinted_prompt(p, hint_text(ex, hint_field), hint_template)
       for p, ex in zip(base.prompts, padded)], base.prefixes)
  sample_kw = {k: opts[k] for k in ("max_new_tokens", "temperature", "top_p", "top_k", "min_p",
                                    "stop_tokens", "stop_strings", "add_bos", "mesh",
                                    "sample_chunk")
               if k in opts}
  rd = rollout_lib.sample_groups(ctx.config, ctx.params, ctx.tokenizer, padded, hint_key,
                                 group_size=g, plan=plan, **sample_kw)
  k = len(failed)
  hint_rewards = rollout_lib.score(ctx.reward_fn, rd.texts[:k * g], failed, g)
  hint_acc = _group_accuracy(hint_rewards, g)
  keep = (hint_acc > keep_low) & (hint_acc < keep_high)
  metrics["guide_hinted_accuracy"] = float(hint_acc.mean())
  metrics["guide_kept_frac"] = float(keep.mean())
  metrics["guide_hinted_group_frac"] = float(keep.sum() / num_groups)
  metrics["generated_tokens"] = float(metrics.get("generated_tokens", 0.0)
                                      + float(jnp.sum(rd.mask[:k * g])))
  if not keep.any():
    metrics["guide_batch_reward_mean"] = float(jnp.mean(ro.batch.rewards))
    return ro._replace(metrics=metrics), method_state

  # Rows: batch row fail[j] * g + i  <-  hinted row j * g + i, for kept groups j.
  kept = np.nonzero(keep)[0]
  src = (kept[:, None] * g + np.arange(g)[None]).reshape(-1)
  dst = (fail[kept][:, None] * g + np.arange(g)[None]).reshape(-1)
  b = ro.batch
  n = b.completion_tokens.shape[1]
  if rd.out.tokens.shape[1] != n:
    raise ValueError(f"guide: hinted completions have width {rd.out.tokens.shape[1]}, the "
                     f"batch {n} (both should be max_new_tokens)")
  src_j, dst_j = jnp.asarray(src), jnp.asarray(dst)
  mask = jnp.take(rd.mask, src_j, axis=0)
  forced = jnp.take(rd.out.forced, src_j, axis=0)
  lp_hint = jnp.where(mask, jnp.take(rd.out.temperature_logprobs, src_j, axis=0), 0.0)
  shaping = losses.get_reward_shaping(opts.get("reward_shaping", "none"))
  shaped, _ = shaping(jnp.asarray(hint_rewards[src]), mask,
                      **(opts.get("reward_shaping_kwargs") or {}))

  def put(x, values):
    x = jnp.asarray(x)
    return x.at[dst_j].set(jnp.asarray(values).astype(x.dtype))

  batch = b.replace(
      completion_tokens=put(b.completion_tokens, jnp.take(rd.out.tokens, src_j, axis=0)),
      completion_mask=put(b.completion_mask, mask),
      loss_mask=put(b.loss_mask, mask & ~forced),
      sampler_logprobs=put(b.sampler_logprobs, lp_hint),
      rewards=put(b.rewards, shaped),
      is_off_policy=put(b.is_off_policy, np.ones(len(dst), bool)))
  check_rollout_batch(batch, group_size=g)
  task_rewards = np.array(ro.task_rewards, copy=True)
  task_rewards[dst] = hint_rewards[src]
  texts = list(ro.completions)
  for s, d in zip(src, dst):
    texts[d] = rd.texts[s]
  metrics["guide_batch_reward_mean"] = float(jnp.mean(batch.rewards))
  return ro._replace(batch=batch, completions=texts, task_rewards=task_rewards,
                     metrics=metrics), method_state

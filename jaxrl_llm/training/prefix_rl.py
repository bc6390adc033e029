"""PrefixRL: on-policy RL on problems prefixed with a part of a stored correct trace.

Setlur et al. 2026, "Reuse your FLOPs" (PrefixRL), arXiv 2601.18795 (spec:
/work/shared/reference/rlvr_methods.md section 10, SECONDARY: abstract and review
only; the mix ratio and the choice of h are unknown, so both are options here).

* Traces: correct completions ``y_x`` of a problem ``x``. The method keeps the
  ones it finds (plain-prompt rows with task reward >= 1) in its state,
  ``{"traces": {example key: [text, ...]}}`` (JSON; at most ``max_traces`` texts
  per example, newest kept, and ``max_examples`` examples, oldest evicted), and
  optionally seeds them from a dataset field (``seed_field``, e.g. ``"completion"``
  or ``"metadata.solution"``) the first time an example is drawn.
* Prefixed problem ``x' = x ++ y_x[1:h]``: for a fraction ``prefix_frac`` of the
  drawn problems that have a trace, the completion is FORCED to start with the
  first ``h = floor(prefix_ratio * len(y_x))`` tokens of one of its traces (at most
  ``max_new_tokens - min_generated``), through the ``"prefix_rl"`` prompt transform
  (``PromptPlan.prefixes``). Forced tokens stay in the completion (context for the
  rest, and the reward sees prefix + generated text, ``r(x, y_x[1:h] ++ z)``) but
  are out of ``loss_mask``: no loss, no importance ratio and no gradient on them.
* The rest is the run's standard on-policy RL (its loss and advantage).

The example key is the example's prompt text. The prefix is cut in tokens and
decoded to text for the plan, which re-encodes it: exact for the character
tokenizer; a BPE tokenizer may re-split the cut text slightly differently.

This module imports :mod:`jaxrl_llm.training.rollout` (which registers the method
and the transform) and reads its attributes only at call time.
"""

from __future__ import annotations

import zlib
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.training import rollout as rollout_lib
from jaxrl_llm.training.demonstration import reference_solution


def example_key(example) -> str:
  """The key an example's traces are stored under: its prompt text."""
  return example.prompt


def init_prefix_state(source=None, **options) -> dict:
  """The empty trace store ``{"traces": {}}`` (seeding happens when examples are drawn)."""
  del source, options
  return {"traces": {}}


def add_trace(traces: dict, key: str, text: str, *, max_traces: int = 2,
              max_examples: int = 4096) -> dict:
  """A new store with ``text`` appended to ``traces[key]`` (a repeat moves to the end;
  the oldest beyond ``max_traces`` dropped; the oldest example beyond ``max_examples``
  evicted). ``traces`` itself is not modified."""
  out = {k: list(v) for k, v in traces.items()}
  have = [t for t in out.pop(key, []) if t != text] + [text]
  out[key] = have[-max_traces:]
  while len(out) > max_examples:
    out.pop(next(iter(out)))
  return out


def _candidates(example, traces: dict, seed_field: str) -> list:
  stored = traces.get(example_key(example), [])
  if stored:
    return list(stored)
  seeded = reference_solution(example, seed_field) if seed_field else ""
  return [seeded] if seeded else []


def choose_prefix(example, traces: dict, tokenizer, *, seed: int, prefix_frac: float,
                  prefix_ratio: float, max_prefix_tokens: int, seed_field: str = "") -> str:
  """The forced prefix text of ``example`` at this step (``""``: none).

  With probability ``prefix_frac`` (a generator seeded by ``(seed, crc32(key))``, so
  the same example at the same step always gets the same answer) one of its traces
  is chosen and cut to its first ``h = min(floor(prefix_ratio * n), max_prefix_tokens)``
  of ``n`` tokens; ``h = 0`` gives no prefix.
  """
  cands = _candidates(example, traces, seed_field)
  if not cands:
    return ""
  rng = np.random.default_rng([seed, zlib.crc32(example_key(example).encode("utf-8"))])
  if rng.random() >= prefix_frac:
    return ""
  ids = tokenizer.encode(cands[int(rng.integers(len(cands)))], add_bos=False)
  h = min(int(np.floor(prefix_ratio * len(ids))), max_prefix_tokens)
  return tokenizer.decode(ids[:h]) if h > 0 else ""


def prefix_rl_prompts(examples, *, traces: dict, tokenizer, seed: int, prefix_frac: float,
                      prefix_ratio: float, max_prefix_tokens: int, seed_field: str = "",
                      base: str = "identity", base_kwargs: Optional[dict] = None):
  """Prompt transform ``"prefix_rl"``: the ``base`` transform's prompts, and as forced
  prefixes :func:`choose_prefix` of each example (where it gives none, the base's)."""
  plan = rollout_lib.get_prompt_transform(base)(examples, **(base_kwargs or {}))
  base_prefixes = plan.prefixes or [""] * len(examples)
  prefixes = [choose_prefix(ex, traces, tokenizer, seed=seed, prefix_frac=prefix_frac,
                            prefix_ratio=prefix_ratio, max_prefix_tokens=max_prefix_tokens,
                            seed_field=seed_field) or bp
              for ex, bp in zip(examples, base_prefixes)]
  return rollout_lib.PromptPlan(plan.prompts, prefixes if any(prefixes) else None)


def _check_options(prefix_frac, prefix_ratio, max_traces, max_examples, min_generated):
  if not 0.0 <= prefix_frac <= 1.0:
    raise ValueError(f"prefix_frac must be in [0, 1], got {prefix_frac}")
  if not 0.0 <= prefix_ratio <= 1.0:
    raise ValueError(f"prefix_ratio must be in [0, 1], got {prefix_ratio}")
  if max_traces < 1 or max_examples < 1:
    raise ValueError(f"max_traces and max_examples must be >= 1, got {max_traces}, "
                     f"{max_examples}")
  if min_generated < 1:
    raise ValueError(f"min_generated must be >= 1, got {min_generated}")


def check_prefix_source(source, *, prefix_frac: float = 0.5, prefix_ratio: float = 0.5,
                        max_traces: int = 2, max_examples: int = 4096, min_generated: int = 1,
                        seed_field: str = "", probe: int = 8, **options) -> None:
  """Start-of-run check (``RolloutMethod.check``): the options are in range and, with
  ``seed_field``, the first ``probe`` training examples carry a trace there."""
  del options
  _check_options(prefix_frac, prefix_ratio, max_traces, max_examples, min_generated)
  if seed_field:
    for i, ex in enumerate(source.examples(0, 0, probe)):
      if not reference_solution(ex, seed_field):
        raise ValueError(
            f"rl.rollout_method='prefix_rl' seeds traces from Example.{seed_field}, but "
            f"training example {i} (prompt {ex.prompt!r}) has none (set "
            f"rl.rollout_method_kwargs.seed_field='' to start from no traces)")


def prefix_rl_rollouts(ctx, source, position, key, method_state, *, prefix_frac: float = 0.5,
                       prefix_ratio: float = 0.5, max_traces: int = 2,
                       max_examples: int = 4096, min_generated: int = 1,
                       seed_field: str = "", store_prefixed: bool = False):
  """One iteration of PrefixRL rollouts (module docstring).

  Options: ``prefix_frac`` (share of drawn problems with a trace that get a prefix),
  ``prefix_ratio`` (h as a fraction of the trace's tokens), ``max_traces`` per
  example, ``max_examples`` stored, ``min_generated`` (tokens left to generate after
  the longest prefix), ``seed_field`` (dataset field that seeds an example's traces
  when it has none; ``""``: off), ``store_prefixed`` (also store correct prefixed
  completions as traces; default only plain-prompt ones).

  Metrics: ``prefix_rl_prefixed_frac`` (share of groups with a forced prefix),
  ``prefix_rl_forced_tokens_mean`` (forced tokens per prefixed row),
  ``prefix_rl_accuracy_prefixed`` / ``prefix_rl_accuracy_plain`` (accuracy of the
  prefixed / plain rows; 0 when there are none), ``prefix_rl_stored_traces`` and
  ``prefix_rl_stored_examples`` (store size after this iteration),
  ``prefix_rl_new_traces`` (net change of the stored texts this iteration).
  """
  _check_options(prefix_frac, prefix_ratio, max_traces, max_examples, min_generated)
  opts = dict(ctx.options)
  g, n_new = opts["group_size"], opts["max_new_tokens"]
  traces = {k: list(v) for k, v in (method_state or {}).get("traces", {}).items()}
  key, sub = jax.random.split(key)
  seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
  tkw = dict(traces=traces, tokenizer=ctx.tokenizer, seed=seed, prefix_frac=prefix_frac,
             prefix_ratio=prefix_ratio, max_prefix_tokens=n_new - min_generated,
             seed_field=seed_field)
  opts["prompt_transform_kwargs"] = dict(
      tkw, base=opts.get("prompt_transform", "identity") or "identity",
      base_kwargs=opts.get("prompt_transform_kwargs") or {})
  opts["prompt_transform"] = "prefix_rl"
  ro = rollout_lib.collect_rollouts(ctx.config, ctx.params, ctx.tokenizer, source, position,
                                    ctx.reward_fn, sub, **opts)
  prefixed = np.asarray([bool(choose_prefix(ex, **tkw)) for ex in ro.examples])
  rows_prefixed = np.repeat(prefixed, g)
  correct = np.asarray(ro.task_rewards) >= 1.0

  # Store: seeded traces of newly seen examples, then correct completions found.
  n_before = sum(len(v) for v in traces.values())
  for ex in ro.examples:
    k = example_key(ex)
    if seed_field and k not in traces:
      seeded = reference_solution(ex, seed_field)
      if seeded:
        traces = add_trace(traces, k, seeded, max_traces=max_traces, max_examples=max_examples)
  for row in np.nonzero(correct & (store_prefixed | ~rows_prefixed))[0]:
    text = ro.completions[row]
    if text:
      traces = add_trace(traces, example_key(ro.examples[row // g]), text,
                         max_traces=max_traces, max_examples=max_examples)

  forced = jnp.sum(ro.batch.completion_mask.astype(bool) & ~ro.batch.loss_mask.astype(bool))
  metrics = dict(ro.metrics)
  metrics.update({
      "prefix_rl_prefixed_frac": float(prefixed.mean()),
      "prefix_rl_forced_tokens_mean": float(forced) / max(int(rows_prefixed.sum()), 1),
      "prefix_rl_accuracy_prefixed": (float(correct[rows_prefixed].mean())
                                      if rows_prefixed.any() else 0.0),
      "prefix_rl_accuracy_plain": (float(correct[~rows_prefixed].mean())
                                   if (~rows_prefixed).any() else 0.0),
      "prefix_rl_stored_traces": float(sum(len(v) for v in traces.values())),
      "prefix_rl_stored_examples": float(len(traces)),
      "prefix_rl_new_traces": float(sum(len(v) for v in traces.values()) - n_before),
  })
  return ro._replace(metrics=metrics), {"traces": traces}

"""Prompt curricula as rollout methods: SELF's greedy-solved filter and DRIVE's
retained hard set.

* SELF ("The Reasoning Boundary Paradox: How Reinforcement Learning
  Constrains Language Models", arXiv 2510.02230; spec: rlvr_methods.md section 19, read in
  ``mail-research/SELF-llm-interference`` ``RayMaxPPOTrainer.fit``): before the normal
  rollout the *current* policy greedy-decodes one response per drawn prompt; prompts whose
  greedy answer is correct (``reward >= correct_threshold``; the official ``reward == 1``)
  are dropped; GRPO groups are sampled on the rest (:func:`self_rollouts`).
* DRIVE (Tencent Hunyuan, arXiv 2511.06307, stage 2 "hard-focus curriculum"; spec section 25,
  SECONDARY: the HF ``tencent/DRIVE-RL`` README): a small set of hard prompts is kept and
  trained on continually, prompts that become solved are dropped and the set is refilled
  from the stream (:func:`drive_rollouts`, rule :func:`drive_update`). The README gives no
  thresholds or window; the defaults here are this implementation's.

Both are ``training.rollout.ROLLOUT_METHODS`` entries (``rl.rollout_method = "self"`` /
``"drive"``); the GRPO groups themselves come from :func:`rollout.collect_rollouts` on the
chosen examples, so sampling, scoring, reward shaping and the batch are the standard ones
(with ``dynamic_sampling`` off: the chosen prompts are the batch).
"""

from __future__ import annotations

from typing import Sequence

import jax
import numpy as np

from jaxrl_llm import data
from jaxrl_llm.training import rollout as rollout_lib

TOP_UPS = ("solved", "repeat")
_SAMPLE_KEYS = ("max_new_tokens", "stop_tokens", "stop_strings", "prompt_transform",
                "prompt_transform_kwargs", "add_bos", "mesh", "rules")


def _from_list(examples, position, n):
  """``next_examples`` over a fixed list (the prompts a method chose)."""
  return list(examples[position:position + n]), position + n


def rollouts_on(ctx: rollout_lib.RolloutContext, examples: Sequence, key,
                position) -> rollout_lib.Rollouts:
  """The standard groups (:func:`rollout.collect_rollouts` with the run's options) on exactly
  ``examples``, one group each, in order; ``Rollouts.position`` is ``position`` (the
  source's position after the method's own draws)."""
  opts = dict(ctx.options, num_prompts=len(examples), dynamic_sampling=False,
              next_examples=_from_list)
  ro = rollout_lib.collect_rollouts(ctx.config, ctx.params, ctx.tokenizer, list(examples), 0,
                                    ctx.reward_fn, key, **opts)
  return ro._replace(position=position)


# ---- SELF ---------------------------------------------------------------------------------


def greedy_filter(greedy_rewards, correct_threshold: float = 1.0) -> np.ndarray:
  """``keep [B] bool``: SELF keeps a prompt iff its greedy response is *not* correct,
  ``keep_b = r_b < correct_threshold`` (arXiv 2510.02230; official: drop ``reward == 1``)."""
  r = np.asarray(greedy_rewards, np.float64)
  if r.ndim != 1:
    raise ValueError(f"greedy_rewards must be [B], got shape {r.shape}")
  return r < correct_threshold


def fill_prompts(kept: Sequence, solved: Sequence, num: int,
                 top_up: str = "solved") -> tuple[list, int]:
  """``(chosen, topped_up)``: ``num`` prompts, the kept ones first (in draw order).

  When fewer than ``num`` were kept after the round limit the batch is topped up
  (the official trainer instead skips the step, which a fixed-size step cannot):
  ``"solved"`` with the greedy-solved prompts in draw order (what SELF would have
  dropped; GRPO still gives them a gradient where their group is mixed), ``"repeat"``
  by cycling the kept prompts (``"solved"`` when none was kept). ``topped_up`` counts
  the added prompts."""
  if top_up not in TOP_UPS:
    raise ValueError(f"top_up must be one of {TOP_UPS}, got {top_up!r}")
  if num < 1:
    raise ValueError(f"num must be >= 1, got {num}")
  chosen = list(kept[:num])
  need = num - len(chosen)
  if need == 0:
    return chosen, 0
  pool = list(kept) if top_up == "repeat" and kept else list(solved)
  if not pool:
    raise ValueError("no prompt to top up from")
  chosen += [pool[i % len(pool)] for i in range(need)]
  return chosen, need


def check_self(source, *, max_rounds: int = 4, correct_threshold: float = 1.0,
               top_up: str = "solved"):
  del source, correct_threshold
  if max_rounds < 1:
    raise ValueError(f"rl.rollout_method_kwargs.max_rounds must be >= 1, got {max_rounds}")
  if top_up not in TOP_UPS:
    raise ValueError(f"rl.rollout_method_kwargs.top_up must be one of {TOP_UPS}, got {top_up!r}")


def self_rollouts(ctx: rollout_lib.RolloutContext, source, position, key, method_state, *,
                  max_rounds: int = 4, correct_threshold: float = 1.0, top_up: str = "solved"):
  """SELF: greedy-filter the drawn prompts, then GRPO groups on the kept ones.

  Each round draws ``num_prompts`` prompts from the stream, greedy-decodes one response
  each with the current policy (:func:`rollout.sample_groups`, temperature 0, group
  size 1, the run's prompt transform and stop settings) and keeps those with a wrong
  greedy answer (:func:`greedy_filter`); rounds repeat until ``num_prompts`` are kept or
  ``max_rounds`` rounds were drawn, then :func:`fill_prompts` tops up. The method state
  is unused. Metrics: ``self_kept_frac`` (kept / drawn), ``self_greedy_accuracy``
  (greedy-correct / drawn), ``self_rounds``, ``self_topped_up`` (prompts added by the
  top-up), ``self_prompts_drawn``.
  """
  check_self(source, max_rounds=max_rounds, top_up=top_up)
  num = int(ctx.options["num_prompts"])
  next_examples = ctx.options.get("next_examples", data.take_batch)
  sample_kw = {k: ctx.options[k] for k in _SAMPLE_KEYS if k in ctx.options}
  kept, solved, rewards, rounds = [], [], [], 0
  while len(kept) < num and rounds < max_rounds:
    examples, position = next_examples(source, position, num)
    key, sub = jax.random.split(key)
    rd = rollout_lib.sample_groups(ctx.config, ctx.params, ctx.tokenizer, examples, sub,
                                   group_size=1, temperature=0.0, **sample_kw)
    r = rollout_lib.score(ctx.reward_fn, rd.texts, examples, 1)
    keep = greedy_filter(r, correct_threshold)
    kept += [ex for ex, k in zip(examples, keep) if k]
    solved += [ex for ex, k in zip(examples, keep) if not k]
    rewards.append(r)
    rounds += 1
  chosen, topped = fill_prompts(kept, solved, num, top_up)
  key, sub = jax.random.split(key)
  ro = rollouts_on(ctx, chosen, sub, position)
  r = np.concatenate(rewards)
  ro.metrics.update({
      "self_kept_frac": float(len(kept) / r.size), "self_greedy_accuracy":
      float(np.mean(r >= correct_threshold)), "self_rounds": float(rounds),
      "self_topped_up": float(topped), "self_prompts_drawn": float(r.size)})
  return ro, method_state


# ---- DRIVE --------------------------------------------------------------------------------


def drive_init(source, **options) -> dict:
  """The empty retained set: ``{"hard": [], "dropped_total": 0, "admitted_total": 0}``."""
  del source, options
  return {"hard": [], "dropped_total": 0, "admitted_total": 0}


def drive_update(hard: Sequence[dict], used: int, hard_acc: Sequence[float],
                 fresh: Sequence[tuple], *, solved_threshold: float = 0.75,
                 admit_threshold: float = 0.5, window: int = 2,
                 capacity: int = 64) -> tuple[list, dict]:
  """DRIVE's retain / drop / refill rule over the retained hard set (pure, JSON in and out).

  ``hard`` lists the retained entries ``{"pos": [seed, cursor], "acc": [recent
  accuracies]}``; its first ``used`` entries were in this batch with group accuracies
  ``hard_acc``; ``fresh`` are ``(pos, accuracy)`` of the batch's stream prompts. Then:

  1. a used entry appends its accuracy (the last ``window`` are kept) and is *dropped* as
     solved when ``mean(acc) >= solved_threshold``; a kept one moves to the back (the
     retained set is trained on in rotation); unused entries keep their place in front;
  2. a fresh prompt with accuracy ``< admit_threshold`` is *admitted* at the back;
  3. beyond ``capacity`` entries the easiest (highest ``mean(acc)``; of equals the
     newest) are *evicted*, so the set keeps the hardest instances.

  Returns ``(new_hard, counts)`` with counts ``dropped``, ``admitted``, ``evicted``.
  """
  if not 0 <= used <= len(hard) or len(hard_acc) != used:
    raise ValueError(f"used={used} entries with {len(hard_acc)} accuracies for a retained "
                     f"set of {len(hard)}")
  if window < 1 or capacity < 1:
    raise ValueError(f"window and capacity must be >= 1, got {window}, {capacity}")
  front = [dict(e) for e in hard[used:]]
  back, dropped = [], 0
  for e, a in zip(hard[:used], hard_acc):
    acc = (list(e["acc"]) + [float(a)])[-window:]
    if float(np.mean(acc)) >= solved_threshold:
      dropped += 1
    else:
      back.append({"pos": list(e["pos"]), "acc": acc})
  admitted = [{"pos": [int(p) for p in pos], "acc": [float(a)]} for pos, a in fresh
              if float(a) < admit_threshold]
  out = front + back + admitted
  evicted = max(len(out) - capacity, 0)
  if evicted:
    means = np.asarray([np.mean(e["acc"]) for e in out])
    # Easiest first; among equals the newest (largest list position) first.
    order = sorted(range(len(out)), key=lambda i: (-means[i], -i))
    gone = set(order[:evicted])
    out = [e for i, e in enumerate(out) if i not in gone]
  return out, {"dropped": dropped, "admitted": len(admitted), "evicted": evicted}


def check_drive(source, *, hard_fraction: float = 0.5, solved_threshold: float = 0.75,
                admit_threshold: float = 0.5, window: int = 2, capacity: int = 64,
                correct_threshold: float = 1.0):
  del correct_threshold
  if not hasattr(source, "examples"):
    raise ValueError("rl.rollout_method 'drive' keeps prompts by stream position: the "
                     "training source needs examples(seed, start, count)")
  if not 0.0 <= hard_fraction <= 1.0:
    raise ValueError(f"rl.rollout_method_kwargs.hard_fraction must be in [0, 1], got "
                     f"{hard_fraction}")
  for name, v in (("solved_threshold", solved_threshold), ("admit_threshold", admit_threshold)):
    if not 0.0 <= v <= 1.0:
      raise ValueError(f"rl.rollout_method_kwargs.{name} must be in [0, 1], got {v}")
  if window < 1 or capacity < 1:
    raise ValueError(f"rl.rollout_method_kwargs.window and capacity must be >= 1, got "
                     f"{window}, {capacity}")


def drive_rollouts(ctx: rollout_lib.RolloutContext, source, position, key, method_state, *,
                   hard_fraction: float = 0.5, solved_threshold: float = 0.75,
                   admit_threshold: float = 0.5, window: int = 2, capacity: int = 64,
                   correct_threshold: float = 1.0):
  """DRIVE hard-focus curriculum: a batch of retained hard prompts plus stream prompts.

  ``n_hard = min(len(hard), floor(hard_fraction * num_prompts))`` prompts come from the
  front of the retained set (re-read from the source by their stream position
  ``[seed, cursor]``), the other ``num_prompts - n_hard`` are the next ones of the
  stream. After scoring, :func:`drive_update` updates the set with each group's accuracy
  (fraction of its rows with ``task reward >= correct_threshold``). ``method_state`` =
  ``{"hard": [...], "dropped_total", "admitted_total"}``. The groups keep the run's
  ``group_size`` (DRIVE's 64 rollouts per hard prompt would need a per-prompt group size).
  Metrics: ``drive_retained`` (set size after the update), ``drive_dropped`` (solved and
  dropped this step), ``drive_admitted``, ``drive_evicted``, ``drive_hard_prompts`` (in
  this batch), ``drive_hard_accuracy`` (their mean accuracy; NaN when none was in the
  batch), ``drive_dropped_total``.
  """
  check_drive(source, hard_fraction=hard_fraction, solved_threshold=solved_threshold,
              admit_threshold=admit_threshold, window=window, capacity=capacity)
  num = int(ctx.options["num_prompts"])
  g = int(ctx.options["group_size"])
  hard = list(method_state.get("hard", []))
  n_hard = min(len(hard), int(np.floor(hard_fraction * num)))
  hard_examples = [source.examples(int(e["pos"][0]), int(e["pos"][1]), 1)[0]
                   for e in hard[:n_hard]]
  seed, cursor = int(position[0]), int(position[1])
  fresh_examples = []
  if num - n_hard:
    fresh_examples, position = data.take_batch(source, position, num - n_hard)
  ro = rollouts_on(ctx, hard_examples + fresh_examples, key, position)
  acc = (np.asarray(ro.task_rewards).reshape(-1, g) >= correct_threshold).mean(axis=1)
  fresh = [([seed, cursor + j], float(a)) for j, a in enumerate(acc[n_hard:])]
  new_hard, counts = drive_update(hard, n_hard, [float(a) for a in acc[:n_hard]], fresh,
                                  solved_threshold=solved_threshold,
                                  admit_threshold=admit_threshold, window=window,
                                  capacity=capacity)
  state = {"hard": new_hard,
           "dropped_total": int(method_state.get("dropped_total", 0)) + counts["dropped"],
           "admitted_total": int(method_state.get("admitted_total", 0)) + counts["admitted"]}
  ro.metrics.update({
      "drive_retained": float(len(new_hard)), "drive_dropped": float(counts["dropped"]),
      "drive_admitted": float(counts["admitted"]), "drive_evicted": float(counts["evicted"]),
      "drive_hard_prompts": float(n_hard),
      "drive_hard_accuracy": float(acc[:n_hard].mean()) if n_hard else float("nan"),
      "drive_dropped_total": float(state["dropped_total"])})
  return ro, state

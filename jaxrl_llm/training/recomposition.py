"""RoRecomp: rollout response recomposition (priority rows now, compensation rows later).

RoRecomp, "Rollout Response Recomposition" (Tencent Youtu, arXiv 2509.25958; spec:
/work/shared/reference/rlvr_methods.md section 16, SECONDARY: abstract and summaries).
After a rollout the responses are re-batched into *priority* batches of short-correct and
long-incorrect responses (a clear brevity signal, rewards unchanged: no length penalty)
and *compensation* batches of the rest, kept in a replay buffer and trained on later.

The exact selection rule (length quantiles / ratio) and the batch schedule are NOT
verified. This implementation's rule (:func:`priority_rows`): with ``l_i`` the response's
length (completion-mask tokens), ``m_g`` the median length of its group and ``c_i`` =
``task reward >= correct_threshold``::

    priority_i = (c_i and l_i < m_g) or (not c_i and l_i > m_g)

(strict: a response of median length, and every response of a group of equal lengths, is
compensation).

How it fits a fixed-size step with whole groups (:func:`rorecomp_rollouts`, rollout
method ``"rorecomp"``): each iteration samples ``num_prompts - k`` fresh groups and
appends ``k = min(replay_groups, buffer size)`` groups from the buffer (oldest first,
each replayed once), so the batch keeps ``rl.batch_size`` rows and every group stays
whole with all its rewards (the group-relative advantage of every row is the one it
had in its online batch). Only the *loss mask* is recomposed: a fresh group trains on
its priority rows, a replayed group on its compensation rows (``is_off_policy`` True:
they were sampled by an older policy; the trainer recomputes their old log-probs as
for any row). The buffer (``method_state["buffer"]``, JSON: token ids, log-probs,
rewards, texts, the example) holds at most ``capacity`` groups; the oldest are evicted.
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np

from jaxrl_llm.data.types import Example
from jaxrl_llm.training import rollout as rollout_lib
from jaxrl_llm.training.batch import make_rollout_batch


def priority_rows(correct, lengths, group_size: int) -> tuple[np.ndarray, dict]:
  """``(priority [B] bool, counts)``: short-correct or long-incorrect vs the group median.

  ``correct [B]`` bool, ``lengths [B]`` response lengths, rows in contiguous groups of
  ``group_size``; ``priority_i = (c_i & l_i < m_g) | (~c_i & l_i > m_g)`` with ``m_g`` the
  median (``np.median``: the mean of the two middle lengths for an even group) of the
  group's lengths. Counts: ``short_correct``, ``long_incorrect`` (rows)."""
  c = np.asarray(correct, bool)
  l = np.asarray(lengths, np.float64)
  if c.ndim != 1 or c.shape != l.shape:
    raise ValueError(f"correct and lengths must be [B], got {c.shape} and {l.shape}")
  if group_size < 1 or c.shape[0] % group_size:
    raise ValueError(f"{c.shape[0]} rows do not divide into groups of {group_size}")
  med = np.repeat(np.median(l.reshape(-1, group_size), axis=1), group_size)
  short_correct = c & (l < med)
  long_incorrect = ~c & (l > med)
  return short_correct | long_incorrect, {"short_correct": int(short_correct.sum()),
                                          "long_incorrect": int(long_incorrect.sum())}


def _meta_json(meta):
  return {k: list(v) if isinstance(v, tuple) else v for k, v in dict(meta).items()}


def example_to_json(ex: Example) -> dict:
  return {"prompt": ex.prompt, "answer": ex.answer, "completion": ex.completion,
          "task": ex.task, "metadata": _meta_json(ex.metadata)}


def example_from_json(d: dict) -> Example:
  meta = {k: tuple(v) if isinstance(v, list) else v for k, v in d.get("metadata", {}).items()}
  return Example(d["prompt"], d["answer"], d.get("completion", ""), d.get("task", ""), meta)


def group_record(prompt_tokens, prompt_mask, completion_tokens, completion_mask, loss_mask,
                 sampler_logprobs, rewards, task_rewards, replay, texts, example: Example,
                 step: int) -> dict:
  """One group as a JSON buffer entry (host arrays of its ``G`` rows): the prompt's ids
  (mask 1), each completion's ids up to its mask length with its loss mask and sampler
  log-probs, the (shaped) rewards, task rewards, the ``replay`` rows (compensation),
  the decoded texts and the example."""
  pm = np.asarray(prompt_mask[0], bool)
  lengths = np.asarray(completion_mask, bool).sum(axis=1)
  rows = range(len(lengths))
  return {
      "prompt": [int(t) for t in np.asarray(prompt_tokens[0])[pm]],
      "completions": [[int(t) for t in np.asarray(completion_tokens[i])[:lengths[i]]]
                      for i in rows],
      "loss": [[int(t) for t in np.asarray(loss_mask[i], bool)[:lengths[i]]] for i in rows],
      "logprobs": [[float(t) for t in np.asarray(sampler_logprobs[i])[:lengths[i]]]
                   for i in rows],
      "rewards": [float(x) for x in rewards], "task_rewards": [float(x) for x in task_rewards],
      "replay": [bool(x) for x in replay], "texts": list(texts),
      "example": example_to_json(example), "step": int(step)}


def replay_arrays(groups: Sequence[dict], prompt_width: int, completion_width: int,
                  pad_id: int) -> dict:
  """The rows of buffer ``groups`` as host arrays at the batch's widths: prompts left-padded
  with ``pad_id`` to ``prompt_width`` (which must hold them), completions right-padded
  (or cut) to ``completion_width``; ``loss_mask`` is the stored loss mask on the group's
  ``replay`` rows and False on its other rows."""
  rows = [(g, i) for g in groups for i in range(len(g["completions"]))]
  r = len(rows)
  out = {"prompt_tokens": np.full((r, prompt_width), pad_id, np.int32),
         "prompt_mask": np.zeros((r, prompt_width), np.int32),
         "completion_tokens": np.full((r, completion_width), pad_id, np.int32),
         "completion_mask": np.zeros((r, completion_width), bool),
         "loss_mask": np.zeros((r, completion_width), bool),
         "sampler_logprobs": np.zeros((r, completion_width), np.float32),
         "rewards": np.zeros((r,), np.float32), "task_rewards": np.zeros((r,), np.float32)}
  for k, (g, i) in enumerate(rows):
    p = g["prompt"]
    if len(p) > prompt_width:
      raise ValueError(f"a stored prompt has {len(p)} tokens, wider than {prompt_width}")
    if p:
      out["prompt_tokens"][k, prompt_width - len(p):] = p
      out["prompt_mask"][k, prompt_width - len(p):] = 1
    c = g["completions"][i][:completion_width]
    n = len(c)
    out["completion_tokens"][k, :n] = c
    out["completion_mask"][k, :n] = True
    out["loss_mask"][k, :n] = np.asarray(g["loss"][i][:n], bool) & bool(g["replay"][i])
    out["sampler_logprobs"][k, :n] = g["logprobs"][i][:n]
    out["rewards"][k] = g["rewards"][i]
    out["task_rewards"][k] = g["task_rewards"][i]
  return out


def push_groups(buffer: Sequence[dict], new: Sequence[dict], capacity: int) -> tuple[list, int]:
  """``(buffer + new, evicted)`` keeping the newest ``capacity`` groups (FIFO)."""
  if capacity < 1:
    raise ValueError(f"capacity must be >= 1, got {capacity}")
  out = list(buffer) + list(new)
  evicted = max(len(out) - capacity, 0)
  return out[evicted:], evicted


def rorecomp_init(source, **options) -> dict:
  del source, options
  return {"buffer": []}


def check_rorecomp(source, *, replay_groups: int = 1, capacity: int = 16,
                   correct_threshold: float = 1.0, skip_uniform: bool = True):
  del source, correct_threshold, skip_uniform
  if replay_groups < 0:
    raise ValueError(f"rl.rollout_method_kwargs.replay_groups must be >= 0, got {replay_groups}")
  if capacity < 1:
    raise ValueError(f"rl.rollout_method_kwargs.capacity must be >= 1, got {capacity}")


def _left_pad_np(x, width, value):
  return np.pad(x, ((0, 0), (width - x.shape[1], 0)), constant_values=value)


def rorecomp_rollouts(ctx: rollout_lib.RolloutContext, source, position, key, method_state, *,
                      replay_groups: int = 1, capacity: int = 16,
                      correct_threshold: float = 1.0, skip_uniform: bool = True):
  """RoRecomp as a rollout method (see the module docstring for the batch layout).

  ``k = min(replay_groups, len(buffer), num_prompts - 1)`` buffered groups are replayed
  after ``num_prompts - k`` fresh groups (:func:`rollout.collect_rollouts` with the run's
  options). Fresh rows keep their loss only where :func:`priority_rows` holds; each fresh
  group with compensation rows is pushed to the buffer (with ``skip_uniform``, not a
  group whose rewards are all equal: its group-relative advantage is 0, so replaying it
  adds nothing). Metrics: ``rorecomp_priority_frac`` (of fresh rows),
  ``rorecomp_short_correct_frac``, ``rorecomp_long_incorrect_frac``,
  ``rorecomp_replay_groups``, ``rorecomp_stored_groups``, ``rorecomp_evicted_groups``,
  ``rorecomp_buffer_groups`` (after the push), ``rorecomp_loss_row_frac`` (batch rows with
  a loss token).
  """
  check_rorecomp(source, replay_groups=replay_groups, capacity=capacity)
  num = int(ctx.options["num_prompts"])
  g = int(ctx.options["group_size"])
  buffer = list(method_state.get("buffer", []))
  k = min(replay_groups, len(buffer), num - 1)
  replay, buffer = buffer[:k], buffer[k:]
  ro = rollout_lib.collect_rollouts(ctx.config, ctx.params, ctx.tokenizer, source, position,
                                    ctx.reward_fn, key, **dict(ctx.options, num_prompts=num - k))
  b = ro.batch
  host = {name: rollout_lib.host_read(getattr(b, name)) for name in (
      "prompt_tokens", "prompt_mask", "completion_tokens", "completion_mask", "loss_mask",
      "sampler_logprobs", "rewards")}
  rows = host["completion_tokens"].shape[0]
  fresh_groups = rows // g
  task_rewards = np.asarray(ro.task_rewards)
  lengths = host["completion_mask"].astype(bool).sum(axis=1)
  prio, counts = priority_rows(task_rewards >= correct_threshold, lengths, g)

  stored = []
  for j in range(fresh_groups):
    sl = slice(j * g, (j + 1) * g)
    comp = ~prio[sl]
    if not comp.any() or (skip_uniform and np.ptp(host["rewards"][sl]) == 0):
      continue
    stored.append(group_record(
        host["prompt_tokens"][sl], host["prompt_mask"][sl], host["completion_tokens"][sl],
        host["completion_mask"][sl], host["loss_mask"][sl], host["sampler_logprobs"][sl],
        host["rewards"][sl], task_rewards[sl], comp, ro.completions[sl], ro.examples[j],
        ctx.step))
  buffer, evicted = push_groups(buffer, stored, capacity)

  width = max([host["prompt_tokens"].shape[1]] + [len(e["prompt"]) for e in replay])
  pad = ctx.tokenizer.pad_id
  fresh_loss = host["loss_mask"].astype(bool) & prio[:, None]
  parts = {"prompt_tokens": _left_pad_np(host["prompt_tokens"], width, pad),
           "prompt_mask": _left_pad_np(host["prompt_mask"], width, 0),
           "completion_tokens": host["completion_tokens"],
           "completion_mask": host["completion_mask"].astype(bool), "loss_mask": fresh_loss,
           "sampler_logprobs": host["sampler_logprobs"], "rewards": host["rewards"]}
  off = np.zeros((rows,), bool)
  completions, examples = list(ro.completions), list(ro.examples)
  if replay:
    rep = replay_arrays(replay, width, host["completion_tokens"].shape[1], pad)
    parts = {name: np.concatenate([x, rep[name].astype(x.dtype)]) for name, x in parts.items()}
    task_rewards = np.concatenate([task_rewards, rep["task_rewards"]])
    off = np.concatenate([off, np.ones((rep["rewards"].shape[0],), bool)])
    completions += [t for e in replay for t in e["texts"]]
    examples += [example_from_json(e["example"]) for e in replay]
  total = parts["completion_tokens"].shape[0]
  batch = make_rollout_batch(
      jnp.asarray(parts["prompt_tokens"], jnp.int32), jnp.asarray(parts["prompt_mask"], jnp.int32),
      jnp.asarray(parts["completion_tokens"], jnp.int32), jnp.asarray(parts["completion_mask"]),
      jnp.asarray(parts["sampler_logprobs"], jnp.float32),
      jnp.asarray(parts["rewards"], jnp.float32),
      group_ids=jnp.arange(total, dtype=jnp.int32) // g, loss_mask=jnp.asarray(parts["loss_mask"]),
      is_off_policy=jnp.asarray(off))
  metrics = dict(ro.metrics)
  metrics.update({
      "rorecomp_priority_frac": float(prio.mean()),
      "rorecomp_short_correct_frac": counts["short_correct"] / rows,
      "rorecomp_long_incorrect_frac": counts["long_incorrect"] / rows,
      "rorecomp_replay_groups": float(len(replay)), "rorecomp_stored_groups": float(len(stored)),
      "rorecomp_evicted_groups": float(evicted), "rorecomp_buffer_groups": float(len(buffer)),
      "rorecomp_loss_row_frac": float(parts["loss_mask"].any(axis=1).mean())})
  out = rollout_lib.Rollouts(batch, completions, task_rewards, metrics, ro.position, examples)
  return out, {"buffer": buffer}

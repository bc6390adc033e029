"""Host-side rollout plumbing: encode prompts, sample groups, score, DAPO dynamic
sampling and overlong shaping, build the RL batch, greedy held-out evaluation."""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np

from jaxrl_llm import losses, sampling
from jaxrl_llm.sampling import bucket_length
from jaxrl_llm.sharding import SAMPLING_RULES


def encode_prompts(tokenizer, prompts: Sequence[str], *, add_bos: bool,
                   min_width: int = 16) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded ``[B, P]`` tokens and mask; ``P`` is bucketed (power of two) to limit recompiles."""
  ids = [tokenizer.encode(p, add_bos=add_bos) for p in prompts]
  width = bucket_length(max(len(x) for x in ids), min_width)
  from jaxrl_llm.models import left_pad
  return left_pad(ids, tokenizer.pad_id, width)


class Rollouts(NamedTuple):
  batch: dict            # the RL batch (numpy arrays), see jaxrl_llm.training.rl
  completions: list      # decoded completion text per row
  task_rewards: np.ndarray  # [B] verifiable reward before shaping
  metrics: dict


def sample_groups(config, params, tokenizer, examples, key, *, group_size: int,
                  max_new_tokens: int, temperature: float = 1.0, top_p: Optional[float] = None,
                  stop_tokens=(), add_bos: bool = True, mesh=None, rules=SAMPLING_RULES):
  """G completions per example: ``(prompt_tokens [B*G, P], prompt_mask, SampleOutput, texts)``.

  With a ``mesh`` the sampler lays its batch and KV cache out by the logical-axis
  ``rules`` (default: the sampling layout) on it.
  """
  tokens, mask = encode_prompts(tokenizer, [ex.prompt for ex in examples], add_bos=add_bos)
  out = sampling.generate(config, params, tokens, mask, key, max_new_tokens=max_new_tokens,
                          num_samples=group_size, temperature=temperature, top_p=top_p,
                          stop_tokens=stop_tokens, pad_token_id=tokenizer.pad_id,
                          mesh=mesh, rules=rules)
  out = jax.tree.map(np.asarray, out)
  texts = tokenizer.batch_decode(out.tokens)
  return (np.repeat(tokens, group_size, 0), np.repeat(mask, group_size, 0), out, texts)


def score(reward_fn: Callable, texts: Sequence[str], examples, group_size: int) -> np.ndarray:
  return np.asarray([reward_fn(t, examples[i // group_size]) for i, t in enumerate(texts)],
                    np.float32)


def collect_rollouts(config, params, tokenizer, next_examples: Callable, reward_fn: Callable,
                     key, *, num_prompts: int, group_size: int, max_new_tokens: int,
                     temperature: float = 1.0, top_p: Optional[float] = None, stop_tokens=(),
                     add_bos: bool = True, dynamic_sampling: bool = False,
                     max_sampling_rounds: int = 4,
                     overlong: Optional[tuple[int, int]] = None, mesh=None,
                     rules=SAMPLING_RULES) -> Rollouts:
  """Samples ``num_prompts`` groups of ``group_size`` completions and scores them.

  ``next_examples(n)`` returns the next ``n`` training examples (it advances
  the caller's data position). With ``dynamic_sampling`` (DAPO, Yu et al. 2025)
  groups whose rewards are all equal are dropped and more prompts are drawn,
  up to ``max_sampling_rounds`` rounds, until ``num_prompts`` informative groups
  are collected; if the rounds run out the batch is topped up with dropped
  groups (they have zero group-relative advantage, so they add no gradient).
  ``overlong = (max_length, cache_length)`` adds DAPO's soft overlong penalty
  to the reward. ``mesh``/``rules`` are passed to the sampler (see ``sample_groups``).
  """
  kept, dropped, n_sampled, rounds = [], [], 0, 0
  while True:
    examples = next_examples(num_prompts)
    key, sub = jax.random.split(key)
    pt, pm, out, texts = sample_groups(
        config, params, tokenizer, examples, sub, group_size=group_size,
        max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
        stop_tokens=stop_tokens, add_bos=add_bos, mesh=mesh, rules=rules)
    rewards = score(reward_fn, texts, examples, group_size)
    rounds += 1
    n_sampled += len(examples)
    groups = []
    for g in range(len(examples)):
      rows = slice(g * group_size, (g + 1) * group_size)
      groups.append(dict(prompt_tokens=pt[rows], prompt_mask=pm[rows],
                         completion_tokens=out.tokens[rows], completion_mask=out.mask[rows],
                         sampler_logprobs=out.temperature_logprobs[rows], task_rewards=rewards[rows],
                         texts=texts[rows]))
    if dynamic_sampling:
      keep, _, _ = losses.dynamic_sampling_filter(rewards, group_size=group_size)
      keep = np.asarray(keep)[::group_size]
      kept += [g for g, k in zip(groups, keep) if k]
      dropped += [g for g, k in zip(groups, keep) if not k]
      if len(kept) >= num_prompts or rounds >= max_sampling_rounds:
        break
    else:
      kept = groups
      break
  chosen = (kept + dropped)[:num_prompts]
  informative = sum(float(g["task_rewards"].max() > g["task_rewards"].min()) for g in chosen)
  # Prompt widths can differ between rounds: left-pad to the widest.
  width = max(g["prompt_tokens"].shape[1] for g in chosen)
  def pad_left(x):
    return np.pad(x, ((0, 0), (width - x.shape[1], 0)))
  cat = lambda name, f=lambda x: x: np.concatenate([f(g[name]) for g in chosen], 0)
  task_rewards = cat("task_rewards")
  mask = cat("completion_mask").astype(np.int32)
  rewards = task_rewards.copy()
  metrics = {}
  if overlong is not None:
    penalty = np.asarray(losses.overlong_penalty(mask.sum(1), max_length=overlong[0],
                                                 cache_length=overlong[1]))
    rewards = rewards + penalty
    metrics["overlong_penalty_mean"] = float(penalty.mean())
  batch = dict(prompt_tokens=cat("prompt_tokens", pad_left).astype(np.int32),
               prompt_mask=cat("prompt_mask", pad_left).astype(np.int32),
               completion_tokens=cat("completion_tokens").astype(np.int32),
               completion_mask=mask,
               sampler_logprobs=(cat("sampler_logprobs") * mask).astype(np.float32),
               rewards=rewards.astype(np.float32))
  texts = [t for g in chosen for t in g["texts"]]
  metrics.update({
      "reward_mean": float(rewards.mean()), "task_reward_mean": float(task_rewards.mean()),
      "accuracy": float((task_rewards >= 1.0).mean()),
      "response_length": float(mask.sum(1).mean()),
      "truncated_frac": float((mask.sum(1) >= max_new_tokens).mean()),
      "sampling_rounds": float(rounds), "prompts_sampled": float(n_sampled),
      "informative_group_frac": float(informative / num_prompts),
      "generated_tokens": float(mask.sum()),
  })
  return Rollouts(batch, texts, task_rewards, metrics)


def evaluate(config, params, tokenizer, examples, reward_fn: Callable, *, max_new_tokens: int,
             batch_size: int = 64, stop_tokens=(), add_bos: bool = True, mesh=None,
             rules=SAMPLING_RULES) -> dict:
  """Greedy (temperature 0) held-out accuracy: fraction of examples with reward >= 1."""
  rewards = []
  for i in range(0, len(examples), batch_size):
    chunk = list(examples[i:i + batch_size])
    n_real = len(chunk)
    chunk += [chunk[-1]] * (batch_size - n_real) if len(examples) > batch_size else []
    _, _, _, texts = sample_groups(config, params, tokenizer, chunk, jax.random.key(0),
                                   group_size=1, max_new_tokens=max_new_tokens, temperature=0.0,
                                   stop_tokens=stop_tokens, add_bos=add_bos, mesh=mesh,
                                   rules=rules)
    rewards.extend(score(reward_fn, texts[:n_real], chunk[:n_real], 1))
  rewards = np.asarray(rewards)
  return {"accuracy": float((rewards >= 1.0).mean()), "reward_mean": float(rewards.mean())}

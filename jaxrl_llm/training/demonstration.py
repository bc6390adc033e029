"""External demonstrations in a rollout group (RL-PLUS's off-policy member).

Dong et al. 2025, "RL-PLUS: Countering Capability Boundary Collapse of LLMs in
Reinforcement Learning with Hybrid-policy Optimization", arXiv 2508.00222 (spec:
/work/shared/reference/rlvr_methods.md section 21). Of the n = G members of each
prompt's group, ``n_prefix = 1`` is the external solution; here it replaces the
group's last sampled completion:

  completion_tokens   the reference solution tokenized as a completion (+ EOS),
                      truncated / padded to the batch's width N
  completion_mask,    its tokens (all of them get a loss)
  loss_mask
  sampler_logprobs    0 (not sampled)
  rewards             the verifier's reward of the solution (task reward, no shaping)
  is_off_policy       True

Deviation, documented: the official rollout uses prefix ratio 1.0 and lets the
policy continue generating after the demonstration (Addendum), so those rows
also hold on-policy tokens; here the demonstration ends with EOS and the row is
entirely off-policy.
"""

from __future__ import annotations

from typing import Callable, Sequence

import jax.numpy as jnp
import numpy as np

from jaxrl_llm.data.types import Example
from jaxrl_llm.training.batch import RolloutBatch, check_rollout_batch


def reference_solution(example: Example, field: str = "completion") -> str:
  """An example's reference solution: the attribute ``field`` (``"completion"``, the
  SFT target: arithmetic's answer, a Countdown expression, a GSM8K worked solution)
  or ``"metadata.<key>"``; ``""`` when it is absent or empty."""
  if field.startswith("metadata."):
    value = example.metadata.get(field[len("metadata."):], "")
  else:
    value = getattr(example, field, "")
  return "" if value is None else str(value)


def check_reference_solutions(examples: Sequence[Example], field: str = "completion",
                              what: str = "the task") -> None:
  """Raises a ``ValueError`` naming ``field`` when an example has no reference solution."""
  for i, ex in enumerate(examples):
    if not reference_solution(ex, field):
      raise ValueError(
          f"{what} has no reference solution in Example.{field} (example {i}, prompt "
          f"{ex.prompt!r}); rl.batch_augment='demonstration' needs one per example "
          f"(choose another field with rl.batch_augment_kwargs.field)")


def check_demonstration_source(source, *, field: str = "completion", probe: int = 8,
                               **options) -> None:
  """Start-of-run check (``BatchAugmenter.check``): the first ``probe`` training
  examples carry a reference solution in ``field``; the augmenter's other options
  are accepted and ignored."""
  del options
  examples = source.examples(0, 0, probe)
  check_reference_solutions(examples, field, what=f"the training task ({type(source).__name__})")


def demonstration_rows(tokenizer, texts: Sequence[str], width: int, *,
                       add_eos: bool = True) -> tuple[np.ndarray, np.ndarray, list]:
  """``(tokens [K, width] int32, mask [K, width] bool, truncated [K] bools)`` of the texts
  tokenized as completions (no BOS, EOS appended), cut at ``width``, right-padded with
  the pad id."""
  tokens = np.full((len(texts), width), tokenizer.pad_id, np.int32)
  mask = np.zeros((len(texts), width), bool)
  truncated = []
  for i, text in enumerate(texts):
    ids = tokenizer.encode(text, add_eos=add_eos)
    truncated.append(len(ids) > width)
    ids = ids[:width]
    tokens[i, :len(ids)] = ids
    mask[i, :len(ids)] = True
  return tokens, mask, truncated


def demonstration_augment(batch: RolloutBatch, rollouts, *, tokenizer, key, step,
                          reward_fn: Callable, field: str = "completion",
                          add_eos: bool = True) -> tuple[RolloutBatch, dict]:
  """Replaces the last member of each group with the example's reference solution.

  ``rollouts.examples`` holds one example per group, in group order (contiguous
  groups of ``G = B / len(examples)`` rows). The verifier ``reward_fn(text,
  example)`` scores the solution as the batch holds it (the decoded kept tokens
  when it was truncated). Reward shaping of the sampled rows is not applied to
  the demonstration.

  Options: ``field`` (where the reference solution is, see
  :func:`reference_solution`), ``add_eos`` (end the demonstration with EOS).
  Metrics: ``demo_reward_mean``, ``demo_length_mean``, ``demo_truncated_frac``,
  ``demo_replaced_reward_mean`` (reward of the sampled rows it replaced).
  """
  del key, step
  examples = list(rollouts.examples)
  b, n = np.shape(batch.completion_tokens)
  if not examples or b % len(examples):
    raise ValueError(f"demonstration: {b} rows do not split into the {len(examples)} groups "
                     "of rollouts.examples")
  g = b // len(examples)
  if g < 2:
    raise ValueError("demonstration: groups of one row would lose their only sample; "
                     f"rl.group_size must be >= 2, got {g}")
  check_reference_solutions(examples, field, what="a rollout batch")
  texts = [reference_solution(ex, field) for ex in examples]
  tokens, mask, truncated = demonstration_rows(tokenizer, texts, n, add_eos=add_eos)
  seen = [tokenizer.decode(tokens[i][mask[i]]) if cut else texts[i]
          for i, cut in enumerate(truncated)]
  demo_rewards = np.asarray([reward_fn(t, ex) for t, ex in zip(seen, examples)], np.float32)
  rows = jnp.asarray(np.arange(len(examples)) * g + g - 1)
  old_rewards = jnp.take(jnp.asarray(batch.rewards), rows)

  def put(x, values):
    x = jnp.asarray(x)
    return x.at[rows].set(jnp.asarray(values).astype(x.dtype))

  out = batch.replace(
      completion_tokens=put(batch.completion_tokens, tokens),
      completion_mask=put(batch.completion_mask, mask),
      loss_mask=put(batch.loss_mask, mask),
      sampler_logprobs=put(batch.sampler_logprobs, np.zeros((len(examples), n), np.float32)),
      rewards=put(batch.rewards, demo_rewards),
      is_off_policy=put(batch.is_off_policy, np.ones((len(examples),), bool)))
  check_rollout_batch(out)
  metrics = {"demo_reward_mean": float(demo_rewards.mean()),
             "demo_length_mean": float(mask.sum(1).mean()),
             "demo_truncated_frac": float(np.mean(truncated)),
             "demo_replaced_reward_mean": float(jnp.mean(old_rewards))}
  return out, metrics

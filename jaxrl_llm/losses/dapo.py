"""DAPO's data-side pieces: dynamic-sampling group filter and overlong reward shaping.

Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at
Scale", arXiv 2503.14476. (DAPO's clip-higher is ``ppo_policy_loss(clip_high=...)``
and its token-level loss is ``agg_mode="token-mean"``.)
"""

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks
from jaxrl_llm.losses.advantages import group_index


def dynamic_sampling_filter(scores: jax.Array, *, group_ids=None, group_size=None,
                            ) -> tuple[jax.Array, jax.Array, dict]:
  """Keeps only groups whose rewards are not all equal (``0 < #correct < G``).

  A group whose responses all get the same reward has zero GRPO advantage and
  gives no gradient; DAPO over-samples and drops such groups. This returns a
  row mask (fixed shape, jit-safe) instead of resizing the batch; singleton
  groups count as all-equal.

  Returns:
    ``(keep [B] bool, num_dropped_groups int32, metrics)`` with metrics
    ``num_groups``, ``num_dropped_groups``, ``kept_row_frac``.
  """
  _checks.check_rank(scores, 1, "scores")
  b = scores.shape[0]
  idx = group_index(b, group_ids, group_size)
  gmax = jax.ops.segment_max(scores, idx, num_segments=b)
  gmin = jax.ops.segment_min(scores, idx, num_segments=b)
  present = jax.ops.segment_sum(jnp.ones((b,), jnp.int32), idx, num_segments=b) > 0
  varied = gmax > gmin
  keep = varied[idx]
  num_groups = jnp.sum(present).astype(jnp.int32)
  num_dropped = jnp.sum(present & ~varied).astype(jnp.int32)
  metrics = {"num_groups": num_groups, "num_dropped_groups": num_dropped,
             "kept_row_frac": jnp.mean(keep.astype(jnp.float32))}
  return keep, num_dropped, metrics


def overlong_penalty(lengths: jax.Array, *, max_length: int, cache_length: int) -> jax.Array:
  """DAPO soft overlong punishment in tokens, added to the task reward::

      R_len(L) = 0                                  if L <= L_max - L_cache
               = ((L_max - L_cache) - L) / L_cache  if L_max - L_cache < L <= L_max
               = -1                                 if L > L_max

  ``lengths [B]`` are response lengths in tokens (``mask.sum(-1)``). DAPO uses
  ``L_max = 20480, L_cache = 4096``.
  """
  if not 0 < cache_length <= max_length:
    raise ValueError(f"need 0 < cache_length <= max_length, got cache_length={cache_length}, "
                     f"max_length={max_length}")
  lengths = jnp.asarray(lengths)
  _checks.check_rank(lengths, 1, "lengths")
  lengths = lengths.astype(jnp.float32)
  start = max_length - cache_length
  ramp = (start - lengths) / cache_length
  return jnp.where(lengths <= start, 0.0, jnp.where(lengths <= max_length, ramp, -1.0))


def overlong_shaping(rewards: jax.Array, completion_mask: jax.Array, *, cache_length: int,
                     max_length=None) -> tuple[jax.Array, dict]:
  """Registered reward shaping ``"overlong"``: ``r + R_len(L)`` (:func:`overlong_penalty`).

  ``L = completion_mask.sum(-1)``; ``max_length`` defaults to the completion
  width ``N`` (the sampler's ``max_new_tokens``). Metric ``overlong_penalty_mean``.
  """
  _checks.check_rank(completion_mask, 2, "completion_mask")
  _checks.check_shape(rewards, completion_mask.shape[:1], "rewards")
  max_length = completion_mask.shape[1] if max_length is None else max_length
  lengths = jnp.sum(jnp.asarray(completion_mask).astype(jnp.int32), axis=1)
  penalty = overlong_penalty(lengths, max_length=max_length, cache_length=cache_length)
  return (jnp.asarray(rewards, jnp.float32) + penalty,
          {"overlong_penalty_mean": jnp.mean(penalty)})

"""The ``"rehearsal"`` batch augmenter: DPH-RL's stored base-model samples appended to
each RL batch.

Li et al. 2025, "The Choice of Divergence: A Neglected Key to Mitigating Diversity
Collapse in Reinforcement Learning with Verifiable Reward", arXiv 2509.07430: every
step the RL batch is concatenated with a chunk of the stored pi_0 samples of D_pef
(the official code: 256 stored samples next to 128 prompts x 16 completions). The
loss (:func:`jaxrl_llm.losses.dph_rl_loss`, registered as ``"dph_rl"``) applies the
clipped PG to the RL rows and ``eta * f(pi_theta / pi_0)`` to the rehearsal rows.

The file is written by ``training.presample.presample`` + ``data.rehearsal.save_rehearsal``.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxrl_llm.data import rehearsal as rehearsal_data
from jaxrl_llm.training.batch import RolloutBatch, check_rollout_batch

PROVIDES = ("is_rehearsal", "base_logprobs")


def _group_size(batch: RolloutBatch, rollouts) -> int:
  examples = getattr(rollouts, "examples", None) or ()
  if examples:
    return batch.num_rows // len(examples)
  ids = np.asarray(batch.group_ids)
  return batch.num_rows // max(len(np.unique(ids)), 1)


def _pad_left(x, width, value):
  return jnp.pad(jnp.asarray(x), ((0, 0), (width - x.shape[1], 0)), constant_values=value)


def rehearsal_augmenter(batch: RolloutBatch, rollouts, *, tokenizer, key, step, path: str = "",
                        rehearsal_rows: int = 64, reward: float = 1.0):
  """Appends ``rehearsal_rows`` stored pi_0 samples to the RL batch.

  Rows ``(step * rehearsal_rows + i) % M`` of the file (``M`` stored samples, in file
  order) are taken at loop iteration ``step``, so a resumed run appends exactly the rows
  an uninterrupted one would. The appended rows have

  * ``is_off_policy = True``, ``extras["is_rehearsal"] = True`` (False on RL rows),
    ``extras["base_logprobs"]`` = the stored pi_0 log-probs (0 on RL rows), and
    ``sampler_logprobs`` = those same log-probs (pi_0 sampled them);
  * their own group ids, ``G`` consecutive rehearsal rows per group after the RL groups
    (``G`` = the RL batch's group size, so ``rehearsal_rows`` must be a multiple of it),
    all with reward ``reward``: equal rewards inside a group give zero group-relative
    advantage (the loss also ignores advantages on these rows);
  * ``loss_mask = completion_mask``.

  Widths: the prompts of both parts are left-padded (``tokenizer.pad_id``, mask 0) to the
  wider of the two, so no prompt is cut; stored completions are right-padded, or cut,
  to the RL completion width ``N`` (the metric ``rehearsal_truncated_frac`` counts cut
  rows; store samples drawn with the RL ``max_new_tokens`` to have none). Other
  ``extras`` of the incoming batch get zero rows appended.
  """
  del key
  if not path:
    raise ValueError("batch augmenter 'rehearsal' needs rl.batch_augment_kwargs.path (a file "
                     "written by training.presample + data.rehearsal.save_rehearsal)")
  if rehearsal_rows < 1:
    raise ValueError(f"rehearsal_rows must be >= 1, got {rehearsal_rows}")
  g = _group_size(batch, rollouts)
  if rehearsal_rows % g:
    raise ValueError(f"rehearsal_rows={rehearsal_rows} must be a multiple of the group size {g}")
  rs, _ = rehearsal_data.load_rehearsal(path)
  b, p = batch.prompt_tokens.shape
  n = batch.completion_tokens.shape[1]
  width = max(p, rs.prompt_tokens.shape[1])
  pad_id = int(tokenizer.pad_id)
  rows = rehearsal_data.rehearsal_rows(rs, int(step) * rehearsal_rows, rehearsal_rows,
                                       prompt_width=width, completion_width=n, pad_id=pad_id)
  r = rehearsal_rows
  n_groups = int(np.max(np.asarray(batch.group_ids))) + 1 if b else 0
  cat = lambda a, x: jnp.concatenate([jnp.asarray(a), jnp.asarray(x).astype(  # noqa: E731
      jnp.asarray(a).dtype)], axis=0)
  extras = {}
  for name, x in batch.extras.items():
    x = jnp.asarray(x)
    extras[name] = jnp.concatenate([x, jnp.zeros((r,) + x.shape[1:], x.dtype)], axis=0)
  extras["is_rehearsal"] = jnp.concatenate([jnp.zeros((b,), bool), jnp.ones((r,), bool)])
  extras["base_logprobs"] = jnp.concatenate(
      [jnp.zeros((b, n), jnp.float32), jnp.asarray(rows["base_logprobs"], jnp.float32)])
  out = RolloutBatch(
      prompt_tokens=cat(_pad_left(batch.prompt_tokens, width, pad_id), rows["prompt_tokens"]),
      prompt_mask=cat(_pad_left(batch.prompt_mask, width, 0), rows["prompt_mask"]),
      completion_tokens=cat(batch.completion_tokens, rows["completion_tokens"]),
      completion_mask=cat(batch.completion_mask, rows["completion_mask"]),
      loss_mask=cat(batch.loss_mask, rows["completion_mask"]),
      sampler_logprobs=cat(batch.sampler_logprobs, rows["base_logprobs"]),
      rewards=cat(batch.rewards, np.full((r,), reward, np.float32)),
      group_ids=cat(batch.group_ids, n_groups + np.arange(r) // g),
      is_off_policy=cat(batch.is_off_policy, np.ones((r,), bool)),
      extras=extras)
  check_rollout_batch(out, group_size=g)
  metrics = {"rehearsal_rows": float(r), "rehearsal_truncated_frac": float(rows["truncated"].mean()),
             "rehearsal_start": float(rows["indices"][0]), "rehearsal_file_rows": float(rs.num_rows)}
  return out, metrics

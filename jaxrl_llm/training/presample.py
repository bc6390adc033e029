"""DPH-RL's pre-sampling stage: sample the base policy k times per training problem,
split D_pef / D_exp, and keep one correct base completion per D_pef problem with the
base model's per-token log-probs.

Li et al. 2025, "The Choice of Divergence: A Neglected Key to Mitigating Diversity
Collapse in Reinforcement Learning with Verifiable Reward", arXiv 2509.07430. The pure
split and the storage are :mod:`jaxrl_llm.data.rehearsal`; this is the driver that
samples (``rollout.sample_groups``) and scores.

The stored log-probs are the trainer's teacher-forced log-probs of pi_0 at the sampling
temperature (``training.completion_logprobs``, the same function the RL update uses),
not the sampler's, so at the first update ``u = pi_theta / pi_0 = 1`` exactly on every
rehearsal token.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.data import rehearsal as rehearsal_data
from jaxrl_llm.training import rollout
from jaxrl_llm.training.logprobs import completion_logprobs


class Presampled(NamedTuple):
  rehearsal: Optional[rehearsal_data.RehearsalSet]  # None when D_pef is empty
  pef_examples: list   # D_pef (solved every time)
  exp_examples: list   # D_exp (the RL prompts)
  rewards: np.ndarray  # [P, k] rewards of the k samples per problem
  metrics: dict


def presample(config, params, tokenizer, examples: Sequence, reward_fn: Callable, key, *,
              k: int = 8, max_new_tokens: int, temperature: float = 1.0,
              prompts_per_batch: int = 64, stop_tokens=(), stop_strings: Sequence[str] = (),
              add_bos: bool = True, min_correct: Optional[int] = None,
              correct_threshold: float = 1.0, prompt_width: Optional[int] = None) -> Presampled:
  """Samples ``k`` completions per example from ``params`` (pi_0) and splits the examples.

  Chunks of ``prompts_per_batch`` examples are sampled at ``temperature`` (the last
  chunk is padded by repeating its last example, then cut, so one shape compiles); the
  rewards ``[P, k]`` go through :func:`jaxrl_llm.data.rehearsal.split_by_solve_rate`
  (``min_correct=None``: solved all k times). For each D_pef problem the first correct
  sample is kept, with pi_0's log-probs. Prompts are left-padded to ``prompt_width``
  (default: the widest chunk's bucketed width).
  """
  if k < 1 or prompts_per_batch < 1:
    raise ValueError(f"k and prompts_per_batch must be >= 1, got {k}, {prompts_per_batch}")
  examples = list(examples)
  if not examples:
    raise ValueError("presample needs at least one example")
  rewards, prompt_rows, comp_rows, mask_rows = [], [], [], []
  for i in range(0, len(examples), prompts_per_batch):
    chunk = examples[i:i + prompts_per_batch]
    n_real = len(chunk)
    chunk = chunk + [chunk[-1]] * (prompts_per_batch - n_real)
    key, sub = jax.random.split(key)
    rd = rollout.sample_groups(config, params, tokenizer, chunk, sub, group_size=k,
                               max_new_tokens=max_new_tokens, temperature=temperature,
                               stop_tokens=stop_tokens, stop_strings=stop_strings,
                               add_bos=add_bos)
    r = rollout.score(reward_fn, rd.texts, chunk, k).reshape(prompts_per_batch, k)[:n_real]
    rewards.append(r)
    prompt_rows.append((np.asarray(rd.prompt_tokens)[:n_real], np.asarray(rd.prompt_mask)[:n_real]))
    tokens = rollout.host_read(rd.out.tokens).reshape(prompts_per_batch, k, -1)[:n_real]
    mask = rollout.host_read(rd.mask).reshape(prompts_per_batch, k, -1)[:n_real]
    comp_rows.append(tokens)
    mask_rows.append(mask)
  rewards = np.concatenate(rewards)
  is_pef, metrics = rehearsal_data.split_by_solve_rate(rewards, min_correct=min_correct,
                                                       correct_threshold=correct_threshold)
  pick = rehearsal_data.first_correct(rewards, correct_threshold=correct_threshold)
  width = prompt_width or max(p.shape[1] for p, _ in prompt_rows)
  fit = lambda x: rehearsal_data.fit_left(x, width)  # noqa: E731
  ptok = np.concatenate([fit(p) for p, _ in prompt_rows])
  pmask = np.concatenate([fit(m) for _, m in prompt_rows]).astype(bool)
  ptok = np.where(pmask, ptok, tokenizer.pad_id).astype(np.int32)
  ctok = np.concatenate(comp_rows)   # [P, k, N]
  cmask = np.concatenate(mask_rows).astype(bool)
  pef_idx = np.nonzero(is_pef)[0]
  pef = [examples[j] for j in pef_idx]
  exp = [examples[j] for j in np.nonzero(~is_pef)[0]]
  metrics.update({"num_problems": float(len(examples)), "num_pef": float(len(pef)),
                  "num_exp": float(len(exp))})
  if not len(pef_idx):
    return Presampled(None, pef, exp, rewards, metrics)
  sel_tok = ctok[pef_idx, pick[pef_idx]]
  sel_mask = cmask[pef_idx, pick[pef_idx]]
  lp_rows = []
  for i in range(0, len(pef_idx), prompts_per_batch * k):
    s = slice(i, i + prompts_per_batch * k)
    out = completion_logprobs(config, params, jnp.asarray(ptok[pef_idx][s]),
                              jnp.asarray(pmask[pef_idx][s]), jnp.asarray(sel_tok[s]),
                              jnp.asarray(sel_mask[s]), temperature=temperature)
    lp_rows.append(np.asarray(jax.device_get(out.logprobs), np.float32))
  base_lp = np.where(sel_mask, np.concatenate(lp_rows), 0.0).astype(np.float32)
  rs = rehearsal_data.RehearsalSet(
      prompt_tokens=ptok[pef_idx], prompt_mask=pmask[pef_idx],
      completion_tokens=np.where(sel_mask, sel_tok, tokenizer.pad_id).astype(np.int32),
      completion_mask=sel_mask, base_logprobs=base_lp,
      prompts=np.asarray([ex.prompt for ex in pef], dtype=str))
  metrics["rehearsal_tokens_mean"] = float(sel_mask.sum(1).mean())
  return Presampled(rs, pef, exp, rewards, metrics)

"""Large-n sampled evaluation: n completions per held-out problem -> correctness matrix,
pass@k and maj@k (the reasoning-boundary measurement of Yue et al. 2025, arXiv 2504.13837).

:func:`sample_correctness` draws n samples per problem with `rollout.sample_groups`
(``prompts_per_batch`` problems per call, the last batch padded with copies of its last
problem so one compilation serves every batch; ``sample_chunk`` C decodes the n samples
C per prompt at a time from one prefill, the same samples for every C), scores each
with the task's verifier (correct = reward >= 1) and extracts its final answer with the
task's extractor (:data:`ANSWER_EXTRACTORS`, for maj@k). Batch i of problems is sampled
with ``fold_in(key, i)``: a fixed key gives the same draws at every evaluation
(common random numbers across checkpoints).
"""

from __future__ import annotations

import types
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import numpy as np

from jaxrl_llm import evaluation, rewards
from jaxrl_llm.evaluation import boundary
from jaxrl_llm.sharding import SAMPLING_RULES
from jaxrl_llm.training import rollout


def _canonical(answer: Optional[str]) -> Optional[str]:
  """One vote per value: numbers by exact value (``"046"`` and ``"46.0"`` vote together),
  other answers by `rewards.normalize_answer_text`; None / empty -> None (no vote)."""
  if answer is None:
    return None
  value = rewards.parse_number(answer)
  if value is not None:
    return str(value)
  text = rewards.normalize_answer_text(answer)
  return text or None


def _whole_completion(text: str) -> Optional[str]:
  return text.strip() or None


# The final answer a task's verifier reads, per reward name (``task.reward``): maj@k
# votes over these. Symbolically equal but differently written answers vote apart.
ANSWER_EXTRACTORS = types.MappingProxyType({
    "exact_answer": _whole_completion,
    "arithmetic": _whole_completion,
    "math": rewards.extract_final_answer,
    "gsm8k": rewards.extract_final_answer,
    "countdown": rewards.extract_countdown_expression,
    "countdown_use_all": rewards.extract_countdown_expression,
    "answer_present": rewards.extract_last_number,
})


def get_answer_extractor(reward_name: str) -> Callable[[str], Optional[str]]:
  """``text -> canonical answer or None`` for the task reward ``reward_name``."""
  if reward_name not in ANSWER_EXTRACTORS:
    raise ValueError(f"maj@k needs the final answer of task.reward={reward_name!r}, which has no "
                     f"answer extractor; known: {', '.join(sorted(ANSWER_EXTRACTORS))}")
  extract = ANSWER_EXTRACTORS[reward_name]
  return lambda text: _canonical(extract(text))


class SampledCorrectness(NamedTuple):
  """n samples of each of P problems."""

  correct: np.ndarray   # [P, n] bool, reward >= 1
  rewards: np.ndarray   # [P, n] float32 verifier rewards
  answers: list         # [P][n] canonical extracted answers (None: none), or [] if not asked
  lengths: np.ndarray   # [P, n] int32 completion lengths (tokens)


def sample_correctness(config, params, tokenizer, examples: Sequence, reward_fn: Callable, key,
                       *, n: int, max_new_tokens: int, prompts_per_batch: int = 16,
                       sample_chunk: Optional[int] = None, temperature: float = 1.0,
                       top_p: Optional[float] = None, top_k: Optional[int] = None,
                       min_p: Optional[float] = None, stop_tokens=(),
                       stop_strings: Sequence[str] = (), add_bos: bool = True,
                       answer_fn: Optional[Callable[[str], Optional[str]]] = None, mesh=None,
                       rules=SAMPLING_RULES, progress: bool = False,
                       desc: str = "sampling") -> SampledCorrectness:
  """``n`` samples per example, scored: the ``[P, n]`` correctness matrix (and rewards,
  answers when ``answer_fn`` is given, completion lengths)."""
  examples = list(examples)
  if not examples:
    raise ValueError("sample_correctness: no examples")
  if n < 1 or prompts_per_batch < 1:
    raise ValueError(f"n and prompts_per_batch must be >= 1, got {n}, {prompts_per_batch}")
  batch = min(prompts_per_batch, len(examples))
  starts = range(0, len(examples), batch)
  if progress:
    import tqdm
    starts = tqdm.tqdm(starts, desc=desc, unit="batch")
  rew, answers, lengths = [], [], []
  for i, start in enumerate(starts):
    chunk = examples[start:start + batch]
    real = len(chunk)
    chunk = chunk + [chunk[-1]] * (batch - real)
    rd = rollout.sample_groups(config, params, tokenizer, chunk, jax.random.fold_in(key, i),
                               group_size=n, max_new_tokens=max_new_tokens,
                               temperature=temperature, top_p=top_p, top_k=top_k, min_p=min_p,
                               stop_tokens=stop_tokens, stop_strings=stop_strings,
                               add_bos=add_bos, mesh=mesh, rules=rules,
                               sample_chunk=sample_chunk)
    texts = rd.texts[:real * n]
    rew.append(rollout.score(reward_fn, texts, chunk, n).reshape(real, n))
    lengths.append(rollout.host_read(rd.mask.sum(-1))[:real * n].reshape(real, n))
    if answer_fn is not None:
      answers += [[answer_fn(t) for t in texts[j * n:(j + 1) * n]] for j in range(real)]
  r = np.concatenate(rew)
  return SampledCorrectness(r >= 1.0, r, answers, np.concatenate(lengths).astype(np.int32))


def passk_metrics(sampled: SampledCorrectness, pass_ks: Sequence[int] = (),
                  maj_ks: Sequence[int] = (), *, maj_subsets: int = 16,
                  seed: int = 0) -> dict:
  """``{"pass@k": mean unbiased pass@k, "maj@k": mean maj@k}`` over the problems."""
  n = sampled.correct.shape[1]
  counts = sampled.correct.sum(1).astype(np.int64)
  out = {}
  for k in pass_ks:
    if not 1 <= k <= n:
      raise ValueError(f"pass@{k} needs 1 <= k <= n={n}")
    out[f"pass@{k}"] = float(np.mean(evaluation.pass_at_k(n, counts, int(k))))
  for k in maj_ks:
    if not sampled.answers:
      raise ValueError("maj@k needs the extracted answers (sample_correctness(answer_fn=...))")
    out[f"maj@{k}"] = float(np.mean(boundary.maj_at_k_per_problem(
        sampled.answers, sampled.correct, int(k), num_subsets=maj_subsets, seed=seed)))
  return out

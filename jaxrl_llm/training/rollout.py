"""Rollouts: encode prompts, sample groups on device, score on the host, build a RolloutBatch.

The data path (DESIGN.md "Calling conventions"): prompts are encoded on the
host; the sampler's arrays stay on device; only the completion tokens cross to
the host, to be decoded for the verifier (and cut at stop strings); the rewards
come back as one ``[B]`` array; DAPO dynamic sampling picks whole groups by row
index (one ``jnp.take``), after the prompts of all rounds are left-padded to one
width once. Greedy held-out evaluation (:func:`evaluate`) reads texts only.

A *prompt transform* (``PROMPT_TRANSFORMS``, identity by default) turns the
examples into the prompt texts and optional forced completion prefixes; forced
tokens stay in the completion (they are context for the rest) but are out of
the batch's ``loss_mask``.
"""

from __future__ import annotations

import types
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from jaxrl_llm import data, losses, sampling
from jaxrl_llm.sampling import bucket_length
from jaxrl_llm.sharding import SAMPLING_RULES
from jaxrl_llm.training.batch import RolloutBatch, make_rollout_batch
from jaxrl_llm.training import rehearsal as rehearsal_lib
from jaxrl_llm.training import demonstration as demonstration_lib
from jaxrl_llm.training import process_reward as process_reward_lib
from jaxrl_llm.training import prof as prof_lib
from jaxrl_llm.rewards import calibration as calibration_lib
from jaxrl_llm.training import seele as seele_lib
from jaxrl_llm.training import guide as guide_lib
from jaxrl_llm.training import prefix_rl as prefix_rl_lib
from jaxrl_llm.training import curriculum as curriculum_lib
from jaxrl_llm.training import recomposition as recomposition_lib


def encode_prompts(tokenizer, prompts: Sequence[str], *, add_bos: bool, min_width: int = 16,
                   width: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """Left-padded ``[B, P]`` tokens and mask; ``P`` is bucketed (power of two) to limit recompiles."""
  ids = [tokenizer.encode(p, add_bos=add_bos) for p in prompts]
  if width is None:
    width = bucket_length(max(len(x) for x in ids), min_width)
  from jaxrl_llm.models import left_pad
  return left_pad(ids, tokenizer.pad_id, width)


# ---- prompt transforms -------------------------------------------------------------------


class PromptPlan(NamedTuple):
  """What a prompt transform returns: one prompt text per example and, optionally,
  a forced completion prefix per example (``""``: none)."""

  prompts: list
  prefixes: Optional[list] = None


def identity_prompts(examples) -> PromptPlan:
  """The examples' own prompts, nothing forced."""
  return PromptPlan([ex.prompt for ex in examples], None)


def rlcr_tabc_prompts(examples, *, instruction: Optional[str] = None) -> PromptPlan:
  """RLCR (arXiv 2507.16806): the tabc format instruction (think / answer / analysis /
  confidence; ``rewards.TABC_INSTRUCTION`` by default) before each example's prompt."""
  text = calibration_lib.TABC_INSTRUCTION if instruction is None else instruction
  return PromptPlan([text + ex.prompt for ex in examples], None)


def calibration_metrics(batch: RolloutBatch, rollouts, *, tokenizer, key, step):
  """RLCR calibration metrics of the rollouts (``rewards.calibration_summary``: format
  fraction, answer accuracy, mean confidence, Brier score); the batch is unchanged."""
  del tokenizer, key, step
  g = batch.num_rows // max(len(rollouts.examples), 1)
  return batch, calibration_lib.calibration_summary(rollouts.completions, rollouts.examples,
                                                    group_size=g)


# ``fn(examples, **options) -> PromptPlan``; methods that add hints or forced
# prefixes register theirs here.
PROMPT_TRANSFORMS = types.MappingProxyType({
    "identity": identity_prompts,
    # RLCR: ask for <think>/<answer>/<analysis>/<confidence> (rewards/calibration.py)
    "rlcr_tabc": rlcr_tabc_prompts,
    # PrefixRL: forced prefixes cut from stored correct traces (training/prefix_rl.py)
    "prefix_rl": prefix_rl_lib.prefix_rl_prompts,
})


def get_prompt_transform(name: str) -> Callable:
  name = name or "identity"
  if name not in PROMPT_TRANSFORMS:
    raise ValueError(f"unknown prompt transform {name!r}; known: "
                     f"{', '.join(sorted(PROMPT_TRANSFORMS))}")
  return PROMPT_TRANSFORMS[name]


def _prefix_tokens(tokenizer, prefixes, max_new_tokens: int):
  """``[B, F]`` forced prefix ids, ``-1`` = sample; None when nothing is forced."""
  if not prefixes or not any(prefixes):
    return None
  ids = [tokenizer.encode(p, add_bos=False) if p else [] for p in prefixes]
  width = max(len(x) for x in ids)
  if width > max_new_tokens:
    raise ValueError(f"a forced prefix has {width} tokens, more than max_new_tokens="
                     f"{max_new_tokens}")
  out = np.full((len(ids), width), -1, np.int32)
  for i, x in enumerate(ids):
    out[i, :len(x)] = x
  return out


# ---- host reads --------------------------------------------------------------------------


def host_read(x) -> np.ndarray:
  """A device array's values on this host: ``device_get`` when this process holds all of
  it, else an all-gather across processes (never ``np.asarray`` of a global array)."""
  if isinstance(x, jax.Array) and not x.is_fully_addressable:
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))
  return np.asarray(jax.device_get(x))


def stop_string_cut(tokenizer, row_tokens: np.ndarray, text: str,
                    stop_strings: Sequence[str]) -> tuple[int, str]:
  """``(k, text')``: the completion ends after token ``k`` (the first one whose decoded
  prefix contains a stop string) and the verifier sees the text before the stop string.
  ``k = len(row_tokens)`` and ``text' = text`` when no stop string occurs."""
  hits = [i for i in (text.find(s) for s in stop_strings if s) if i >= 0]
  n = len(row_tokens)
  if not hits:
    return n, text
  contains = lambda k: any(s and s in tokenizer.decode(row_tokens[:k]) for s in stop_strings)
  lo, hi = 1, n  # smallest k with contains(k); contains(n) holds
  while lo < hi:
    mid = (lo + hi) // 2
    if contains(mid):
      hi = mid
    else:
      lo = mid + 1
  return lo, text[:min(hits)]


class _Round(NamedTuple):
  prompt_tokens: np.ndarray  # [B, P] host, one row per prompt
  prompt_mask: np.ndarray
  out: sampling.SampleOutput  # device, B * G rows
  mask: jax.Array            # [B*G, N] device completion mask (after stop strings)
  texts: list
  examples: list = []        # the B examples


def sample_groups(config, params, tokenizer, examples, key, *, group_size: int,
                  max_new_tokens: int, temperature: float = 1.0, top_p: Optional[float] = None,
                  top_k: Optional[int] = None, min_p: Optional[float] = None, stop_tokens=(),
                  stop_strings: Sequence[str] = (), prompt_transform: str = "identity",
                  prompt_transform_kwargs: Optional[dict] = None, add_bos: bool = True,
                  mesh=None, rules=SAMPLING_RULES, plan: Optional[PromptPlan] = None,
                  sample_chunk: Optional[int] = None) -> _Round:
  """G completions per example, arrays left on device; only tokens are read to decode.

  ``plan`` (a :class:`PromptPlan`) gives the prompt texts and forced prefixes
  directly (a method's hinted prompts); otherwise the named ``prompt_transform``
  builds them from the examples.

  With a ``mesh`` the sampler lays its batch and KV cache out by the logical-axis
  ``rules`` (default: the sampling layout) on it. Stop strings cut the text the
  verifier sees and end the completion mask after the token that completes one.
  ``sample_chunk`` C (dividing ``group_size``): the group is decoded C completions per
  prompt at a time from one shared prefill, with per-row keys, so the result does not
  depend on C (`sampling.generate`); None: the default one-shot sampler.
  """
  if plan is None:
    plan = get_prompt_transform(prompt_transform)(examples, **(prompt_transform_kwargs or {}))
  if len(plan.prompts) != len(examples) or (plan.prefixes is not None
                                            and len(plan.prefixes) != len(examples)):
    raise ValueError(f"the prompt plan has {len(plan.prompts)} prompts and "
                     f"{len(plan.prefixes or ())} prefixes for {len(examples)} examples")
  tokens, mask = encode_prompts(tokenizer, plan.prompts, add_bos=add_bos)
  prefix = _prefix_tokens(tokenizer, plan.prefixes, max_new_tokens)
  out = sampling.generate(config, params, tokens, mask, key, max_new_tokens=max_new_tokens,
                          num_samples=group_size, temperature=temperature, top_p=top_p,
                          top_k=top_k, min_p=min_p, stop_tokens=stop_tokens,
                          prefix_tokens=prefix, pad_token_id=tokenizer.pad_id, mesh=mesh,
                          rules=rules, sample_chunk=sample_chunk)
  host_tokens = host_read(out.tokens)
  texts = tokenizer.batch_decode(host_tokens)
  comp_mask = out.mask
  if stop_strings:
    cuts = np.full((len(texts),), max_new_tokens, np.int32)
    for i, t in enumerate(texts):
      cuts[i], texts[i] = stop_string_cut(tokenizer, host_tokens[i], t, stop_strings)
    if np.any(cuts < max_new_tokens):
      comp_mask = comp_mask & (jnp.arange(max_new_tokens)[None] < jnp.asarray(cuts)[:, None])
  return _Round(tokens, mask, out, comp_mask, texts, list(examples))


def score_rows(num_rows: int, process_index: int, process_count: int) -> slice:
  """The rows of ``num_rows`` that process ``process_index`` of ``process_count`` scores:
  contiguous blocks of ``ceil(num_rows / process_count)`` (the last ones may be short or
  empty)."""
  block = -(-num_rows // process_count)
  lo = min(process_index * block, num_rows)
  return slice(lo, min(lo + block, num_rows))


def score(reward_fn: Callable, texts: Sequence[str], examples, group_size: int) -> np.ndarray:
  """``[len(texts)]`` float32 rewards; row i is a completion of ``examples[i // group_size]``.

  On several processes every process holds all the texts (decoding is cheap) but runs
  the verifier (the costly part: symbolic math, time-bounded) only on its own block of
  rows (:func:`score_rows`); the blocks are then all-gathered, so every process returns
  the same array. That is a collective: every process must call it with the same texts.
  """
  one = lambda i: reward_fn(texts[i], examples[i // group_size])
  n, count = len(texts), jax.process_count()
  if count == 1:
    return np.asarray([one(i) for i in range(n)], np.float32)
  rows = score_rows(n, jax.process_index(), count)
  local = np.zeros((-(-n // count),), np.float32)  # equal shapes on every process
  local[:rows.stop - rows.start] = [one(i) for i in range(rows.start, rows.stop)]
  return np.asarray(multihost_utils.process_allgather(local, tiled=True))[:n]


class Rollouts(NamedTuple):
  batch: RolloutBatch       # on device; rewards include the shaping
  completions: list         # decoded completion text per row (what the verifier saw)
  task_rewards: np.ndarray  # [B] verifiable reward before shaping (host)
  metrics: dict             # floats
  position: object          # the data position after the examples used
  examples: list = []       # the data example of each group, in group order


def _left_pad_to(x: np.ndarray, width: int) -> np.ndarray:
  return np.pad(x, ((0, 0), (width - x.shape[1], 0)))


def collect_rollouts(config, params, tokenizer, source, position, reward_fn: Callable, key, *,
                     num_prompts: int, group_size: int, max_new_tokens: int,
                     temperature: float = 1.0, top_p: Optional[float] = None,
                     top_k: Optional[int] = None, min_p: Optional[float] = None,
                     stop_tokens=(), stop_strings: Sequence[str] = (), add_bos: bool = True,
                     prompt_transform: str = "identity",
                     prompt_transform_kwargs: Optional[dict] = None,
                     reward_shaping: str = "none", reward_shaping_kwargs: Optional[dict] = None,
                     dynamic_sampling: bool = False, max_sampling_rounds: int = 4,
                     next_examples: Callable = data.take_batch, mesh=None,
                     rules=SAMPLING_RULES, sample_chunk: Optional[int] = None) -> Rollouts:
  """Samples ``num_prompts`` groups of ``group_size`` completions and scores them.

  ``next_examples(source, position, n) -> (examples, position)`` is a pure
  function (default ``data.take_batch``); the position after the last draw is
  returned in ``Rollouts.position``. With ``dynamic_sampling`` (DAPO, Yu et al.
  2025) groups whose rewards are all equal are dropped and more prompts are
  drawn, up to ``max_sampling_rounds`` rounds, until ``num_prompts``
  informative groups are collected; if the rounds run out the batch is topped
  up with dropped groups (they have zero group-relative advantage, so they add
  no gradient). ``reward_shaping`` names a ``losses.get_reward_shaping`` entry
  applied to the task rewards (e.g. ``"overlong"``, DAPO's soft overlong
  penalty). ``mesh``/``rules`` are passed to the sampler (see ``sample_groups``).
  ``sample_chunk`` C: each group is sampled C completions per prompt at a time from one
  shared prefill (BroRL's large groups with bounded sampler memory, arXiv 2510.01180);
  the rollouts equal those of ``sample_chunk=group_size`` for every C.
  """
  shaping = losses.get_reward_shaping(reward_shaping)
  shaping_kwargs = losses.check_options(shaping, reward_shaping_kwargs,
                                        f"reward shaping {reward_shaping!r}", skip=2)
  g = group_size
  rounds, rewards, all_texts, chosen, dropped, n_sampled = [], [], [], [], [], 0
  offset = 0
  while True:
    examples, position = next_examples(source, position, num_prompts)
    key, sub = jax.random.split(key)
    rd = sample_groups(config, params, tokenizer, examples, sub, group_size=g,
                       max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                       top_k=top_k, min_p=min_p, stop_tokens=stop_tokens,
                       stop_strings=stop_strings, prompt_transform=prompt_transform,
                       prompt_transform_kwargs=prompt_transform_kwargs, add_bos=add_bos,
                       mesh=mesh, rules=rules, sample_chunk=sample_chunk)
    r = score(reward_fn, rd.texts, examples, g)
    rounds.append(rd)
    rewards.append(r)
    all_texts += rd.texts
    n_sampled += len(examples)
    groups = offset // g + np.arange(len(examples))  # global group index
    offset += len(examples) * g
    if not dynamic_sampling:
      chosen += list(groups)
      break
    keep = np.asarray(losses.dynamic_sampling_filter(r, group_size=g)[0])[::g]
    chosen += list(groups[keep])
    dropped += list(groups[~keep])
    if len(chosen) >= num_prompts or len(rounds) >= max_sampling_rounds:
      break
  groups = np.asarray((chosen + dropped)[:num_prompts], np.int32)
  rows = (groups[:, None] * g + np.arange(g)[None]).reshape(-1)
  task_rewards = np.concatenate(rewards)[rows]
  texts = [all_texts[i] for i in rows]

  # Prompts: host arrays, left-padded to one width once, one row per completion.
  width = max(rd.prompt_tokens.shape[1] for rd in rounds)
  prompt_tokens = np.concatenate([_left_pad_to(rd.prompt_tokens, width) for rd in rounds])
  prompt_mask = np.concatenate([_left_pad_to(rd.prompt_mask, width) for rd in rounds])
  prompt_tokens, prompt_mask = prompt_tokens[rows // g], prompt_mask[rows // g]

  # Completions: on device; one gather by row index (none when nothing was dropped).
  def gather(parts):
    x = parts[0] if len(parts) == 1 else jnp.concatenate(parts, 0)
    if len(rounds) == 1 and np.array_equal(rows, np.arange(x.shape[0])):
      return x
    return jnp.take(x, jnp.asarray(rows), axis=0)

  tokens = gather([rd.out.tokens for rd in rounds])
  mask = gather([rd.mask for rd in rounds])
  forced = gather([rd.out.forced for rd in rounds])
  sampler_logprobs = gather([rd.out.temperature_logprobs for rd in rounds])
  sampler_logprobs = jnp.where(mask, sampler_logprobs, 0.0).astype(jnp.float32)
  shaped, shaping_metrics = shaping(jnp.asarray(task_rewards), mask, **shaping_kwargs)
  batch = make_rollout_batch(
      jnp.asarray(prompt_tokens, jnp.int32), jnp.asarray(prompt_mask, jnp.int32),
      tokens.astype(jnp.int32), mask, sampler_logprobs, shaped.astype(jnp.float32),
      group_ids=jnp.arange(rows.shape[0], dtype=jnp.int32) // g, loss_mask=mask & ~forced,
      is_off_policy=jnp.zeros(rows.shape, bool))
  lengths = jnp.sum(mask, axis=1)
  device_metrics = jax.device_get({
      "reward_mean": jnp.mean(batch.rewards), "response_length": jnp.mean(lengths),
      "truncated_frac": jnp.mean(lengths >= max_new_tokens),
      "generated_tokens": jnp.sum(lengths), **shaping_metrics})
  tg = task_rewards.reshape(-1, g)
  metrics = {k: float(v) for k, v in device_metrics.items()}
  metrics.update({
      "task_reward_mean": float(task_rewards.mean()),
      "accuracy": float((task_rewards >= 1.0).mean()),
      "sampling_rounds": float(len(rounds)), "prompts_sampled": float(n_sampled),
      "informative_group_frac": float((tg.max(1) > tg.min(1)).mean()),
  })
  all_examples = [ex for rd in rounds for ex in rd.examples]
  return Rollouts(batch, texts, task_rewards, metrics, position,
                  [all_examples[i] for i in groups])


# ---- batch augmenters --------------------------------------------------------------------


class BatchAugmenter(NamedTuple):
  """A registered batch augmenter, run by the RL loop between rollout and ``prepare``.

  ``fn(batch, rollouts, *, tokenizer, key, step, **options) -> (batch, metrics)`` adds or
  replaces rows (rehearsal samples, external demonstrations) or fills
  ``batch.extras``; ``provides`` names the extras keys it fills, so the loop can
  check at start that a policy loss's ``extras`` will be there. ``run_inputs`` names
  run-level objects the loop passes as keywords (``"reward_fn"``: the task's
  verifier); ``check(train_source, **options)``, if given, runs at start (e.g. the
  task has what the augmenter reads) and raises a ``ValueError`` naming what is missing.
  """

  fn: Callable
  provides: tuple = ()
  run_inputs: tuple = ()
  check: Optional[Callable] = None


def no_augment(batch: RolloutBatch, rollouts: Rollouts, *, tokenizer, key, step):
  """The rollout batch unchanged."""
  del rollouts, tokenizer, key, step
  return batch, {}


BATCH_AUGMENTERS = types.MappingProxyType({
    "none": BatchAugmenter(no_augment),
    # DPH-RL: stored base-model samples of D_pef (training/rehearsal.py)
    "rehearsal": BatchAugmenter(rehearsal_lib.rehearsal_augmenter,
                                provides=rehearsal_lib.PROVIDES),
    # RL-PLUS: each group's last member replaced by the example's reference solution
    "demonstration": BatchAugmenter(demonstration_lib.demonstration_augment,
                                    run_inputs=("reward_fn",),
                                    check=demonstration_lib.check_demonstration_source),
    # Clip / Delta process rewards -> extras['token_rewards'] (training/process_reward.py)
    "process_reward": BatchAugmenter(process_reward_lib.process_reward_augment,
                                     provides=process_reward_lib.PROVIDES,
                                     check=process_reward_lib.check_process_reward),
    # RLCR: log format / accuracy / confidence / Brier of the rollouts; batch unchanged
    "calibration_metrics": BatchAugmenter(calibration_metrics),
})


def get_batch_augmenter(name: str) -> BatchAugmenter:
  name = name or "none"
  if name not in BATCH_AUGMENTERS:
    raise ValueError(f"unknown batch augmenter {name!r}; known: "
                     f"{', '.join(sorted(BATCH_AUGMENTERS))}")
  return BATCH_AUGMENTERS[name]


# ---- rollout methods --------------------------------------------------------------------


class RolloutContext(NamedTuple):
  """What a rollout method may use at one iteration.

  ``params`` is the policy's sampling view at this step; ``options`` are the
  :func:`collect_rollouts` keywords of the run (``num_prompts``, ``group_size``,
  ``max_new_tokens``, the sampler settings, ``mesh`` ...), so a method that draws
  its own rounds samples exactly as the standard one would.
  """

  config: object
  params: object
  tokenizer: object
  reward_fn: Callable
  step: int
  options: dict


class RolloutMethod(NamedTuple):
  """A registered way of producing one iteration's :class:`Rollouts`.

  ``fn(ctx, source, position, key, method_state, **options) -> (Rollouts, method_state)``.
  ``method_state`` is what the method carries from one iteration to the next
  (stored traces, per-problem hint rates, a replay buffer, the retained hard set);
  it must be JSON-serialisable (dicts, lists, numbers, strings), because the loop
  saves it in each checkpoint's metadata and restores it on resume.
  ``init_state(source, **options)`` builds the first one (default ``{}``);
  ``check(source, **options)``, if given, runs at start and raises a ``ValueError``
  naming what the task lacks (e.g. a hint field).
  """

  fn: Callable
  init_state: Optional[Callable] = None
  check: Optional[Callable] = None

  def initial_state(self, source, **options):
    return {} if self.init_state is None else self.init_state(source, **options)


def standard_rollouts(ctx: RolloutContext, source, position, key, method_state):
  """:func:`collect_rollouts` with the run's options; the method state is unused."""
  ro = collect_rollouts(ctx.config, ctx.params, ctx.tokenizer, source, position, ctx.reward_fn,
                        key, **ctx.options)
  return ro, method_state


# Methods that change what is sampled (hinted rerolls, prefixes, prompt filters, ...)
# register theirs here; ``rl.rollout_method`` selects one.
ROLLOUT_METHODS = types.MappingProxyType({
    "standard": RolloutMethod(standard_rollouts),
    # PROF: oversample n, keep m per prompt by process consistency (training/prof.py)
    "prof": RolloutMethod(prof_lib.prof_rollouts, check=prof_lib.check_prof_options),
    # SEELE: m rounds of hinted rollouts per problem, 3PL-fitted hint rates (training/seele.py)
    "seele": RolloutMethod(seele_lib.seele_rollouts, init_state=seele_lib.init_seele_state,
                           check=seele_lib.check_seele_source),
    # Guide: all-fail groups re-sampled from hinted prompts, stored off-policy (training/guide.py)
    "guide": RolloutMethod(guide_lib.guide_rollouts, check=guide_lib.check_hint_source),
    # PrefixRL: stored correct traces force completion prefixes (training/prefix_rl.py)
    "prefix_rl": RolloutMethod(prefix_rl_lib.prefix_rl_rollouts,
                               init_state=prefix_rl_lib.init_prefix_state,
                               check=prefix_rl_lib.check_prefix_source),
    # SELF: drop prompts the current policy solves greedily (training/curriculum.py)
    "self": RolloutMethod(curriculum_lib.self_rollouts, check=curriculum_lib.check_self),
    # DRIVE: retained hard set, solved prompts dropped, refilled from the stream
    "drive": RolloutMethod(curriculum_lib.drive_rollouts, init_state=curriculum_lib.drive_init,
                           check=curriculum_lib.check_drive),
    # RoRecomp: priority rows now, compensation groups replayed later (training/recomposition.py)
    "rorecomp": RolloutMethod(recomposition_lib.rorecomp_rollouts,
                              init_state=recomposition_lib.rorecomp_init,
                              check=recomposition_lib.check_rorecomp),
})


def get_rollout_method(name: str) -> RolloutMethod:
  name = name or "standard"
  if name not in ROLLOUT_METHODS:
    raise ValueError(f"unknown rollout method {name!r}; known: "
                     f"{', '.join(sorted(ROLLOUT_METHODS))}")
  return ROLLOUT_METHODS[name]


def evaluate(config, params, tokenizer, examples, reward_fn: Callable, *, max_new_tokens: int,
             batch_size: int = 64, stop_tokens=(), stop_strings: Sequence[str] = (),
             add_bos: bool = True, mesh=None, rules=SAMPLING_RULES) -> dict:
  """Greedy (temperature 0) held-out accuracy: fraction of examples with reward >= 1."""
  rewards = []
  for i in range(0, len(examples), batch_size):
    chunk = list(examples[i:i + batch_size])
    n_real = len(chunk)
    chunk += [chunk[-1]] * (batch_size - n_real) if len(examples) > batch_size else []
    rd = sample_groups(config, params, tokenizer, chunk, jax.random.key(0), group_size=1,
                       max_new_tokens=max_new_tokens, temperature=0.0, stop_tokens=stop_tokens,
                       stop_strings=stop_strings, add_bos=add_bos, mesh=mesh, rules=rules)
    rewards.extend(score(reward_fn, rd.texts[:n_real], chunk[:n_real], 1))
  rewards = np.asarray(rewards)
  return {"accuracy": float((rewards >= 1.0).mean()), "reward_mean": float(rewards.mean())}

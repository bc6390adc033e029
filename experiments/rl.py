"""RL with verifiable rewards: rollout -> reward -> advantage -> update.

    python experiments/rl.py --config=configs/grpo_arithmetic.py \
        --config.init_from=/tmp/jaxrl_llm/sft_arithmetic --config.workdir=/tmp/grpo

One iteration samples ``batch_size / group_size`` prompts x ``group_size``
completions (DAPO dynamic sampling optionally re-draws until enough groups are
informative), scores them with the task's verifier, computes the trainer's
old/reference log-probs and advantages once, and runs ``ppo_epochs`` passes of
``num_minibatches`` optimiser steps (with one epoch of one minibatch the old
log-probs equal the current ones at that step, so their forward is skipped:
``make_rl_step(single_update=True)``; where each group's rows are G copies of one prompt
the trainer runs the prompt's layers once per group: ``rl.share_prompt_forward``, 'auto').
On a CPU, ``--config.cpu_devices=2 --config.rollout_mesh='(2, 1, 1)'`` samples
data-parallel over the CPU split in two devices and trains on one (a faster rollout on
small models; ``jaxrl_llm.runs.cpu_devices``, ``training.setup.rollout_placement``).
The data position is threaded explicitly
(``rollout.collect_rollouts(source, position, ...)`` returns the next one). Logs ``workdir/metrics.jsonl``
(train/reward_mean, train/accuracy, train/kl, train/entropy, train/clip_frac,
eval/accuracy, perf/tokens_per_s ...), checkpoints to ``workdir/checkpoints``
(``--config.resume=True`` continues from the latest), exports ``workdir/hf``
and plots ``workdir/curves.png``. Multi-process (TPU pod, several GPU hosts): the
same command on every process with ``--config.distributed=True`` and a
``--config.mesh`` (docs/launch.md); sampling runs on the global mesh, the completions
are all-gathered, each process verifies its own block of rows and the rewards are
all-gathered (``rollout.score``); process 0 logs and exports.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import tqdm  # noqa: E402

from jaxrl_llm import losses, models, training  # noqa: E402
from jaxrl_llm.data import one_shot  # noqa: E402
from jaxrl_llm.models import lora  # noqa: E402
from jaxrl_llm.training import metrics as metrics_lib, rollout, setup  # noqa: E402
from jaxrl_llm.training import rl as training_rl  # noqa: E402
from jaxrl_llm.training import passk_eval  # noqa: E402
from jaxrl_llm import data  # noqa: E402
from jaxrl_llm.data import rehearsal as rehearsal_data  # noqa: E402


def _estimator(r):
  try:
    return losses.get_advantage_estimator(r.advantage)
  except ValueError as e:
    raise ValueError(f"rl.advantage: {e}") from None


def advantage_options(r) -> dict:
  """The estimator's options: ``rl.gamma``/``rl.lam`` where it takes them, then ``rl.advantage_kwargs``."""
  est = _estimator(r)
  shared = {k: r[k] for k in ("gamma", "lam") if k in est.options and k in r}
  return {**shared, **setup.as_dict(r.advantage_kwargs)}


def _policy_loss(r):
  try:
    return losses.get_policy_loss_entry(r.loss)
  except ValueError as e:
    raise ValueError(f"rl.loss: {e}") from None


def validate(c):
  """Fails fast, before any model is built, on inconsistent or unknown options."""
  r = c.rl
  pg = _policy_loss(r)
  losses.check_options(pg.fn, setup.as_dict(r.loss_kwargs), f"rl.loss {r.loss!r}", skip=4)
  augment = rollout.get_batch_augmenter(r.get("batch_augment", "none"))
  losses.check_options(augment.fn, setup.as_dict(r.get("batch_augment_kwargs", {})),
                       f"rl.batch_augment {r.get('batch_augment', 'none')!r}", skip=2)
  if augment.check is not None:  # e.g. 'demonstration': the task has reference solutions
    augment.check(setup.build_task(c.task, "train"),
                  **setup.as_dict(r.get("batch_augment_kwargs", {})))
  # Extras that prepare computes itself (training.rl.PREPARE_EXTRAS, e.g. RAPO's normaliser).
  missing = sorted(set(pg.extras) - set(augment.provides) - set(training_rl.PREPARE_EXTRAS))
  if missing:
    raise ValueError(f"rl.loss {r.loss!r} needs batch extras {missing}, which rl.batch_augment="
                     f"{r.get('batch_augment', 'none')!r} does not provide; augmenters: "
                     + ", ".join(f"{k} -> {list(v.provides)}"
                                 for k, v in sorted(rollout.BATCH_AUGMENTERS.items())))
  if {"self_reward_logprobs", "self_reward_valid"} & set(pg.inputs) and (
      r.get("self_reward_token", -1) < 0):
    raise ValueError(f"rl.loss {r.loss!r} reads the log-prob of a self-reward token appended "
                     "after each completion: set rl.self_reward_token (a token id < vocab_size; "
                     "-1 = off)")
  hooks = sorted(set(pg.extras) & set(training_rl.PREPARE_EXTRAS))
  if any(training_rl.PREPARE_EXTRAS[k].needs_ref for k in hooks) and not r.kl:
    raise ValueError(f"rl.loss {r.loss!r} needs {hooks} from a frozen reference model: set "
                     "rl.kl (e.g. 'k3', with rl.kl_coef=0 for no KL term)")
  if "ref_logprobs" in pg.inputs and not r.kl:
    raise ValueError(f"rl.loss {r.loss!r} reads reference log-probs: set rl.kl (e.g. 'k3', "
                     "with rl.kl_coef=0 for no KL term) so a frozen reference is kept")
  if pg.whole_groups and (
      (r.batch_size // r.num_minibatches) % (r.group_size * r.num_micro_batches)):
    raise ValueError(f"rl.loss {r.loss!r} needs whole groups per micro-batch: "
                     f"rl.batch_size / rl.num_minibatches = {r.batch_size // r.num_minibatches} "
                     f"must be a multiple of rl.group_size * rl.num_micro_batches = "
                     f"{r.group_size * r.num_micro_batches}")
  est = _estimator(r)
  losses.check_options(est.fn, advantage_options(r), f"rl.advantage {r.advantage!r}", skip=1)
  missing = sorted(set(est.extras) - set(augment.provides))
  if missing:  # e.g. 'gae_token' reads the token rewards of rl.batch_augment='process_reward'
    raise ValueError(f"rl.advantage {r.advantage!r} reads batch extras {missing}, which "
                     f"rl.batch_augment={r.get('batch_augment', 'none')!r} does not provide")
  if r.kl:
    losses.get_kl(r.kl)
  if r.get("overlong_cache"):
    raise ValueError(f"rl.overlong_cache={r.overlong_cache} is replaced by "
                     "rl.reward_shaping='overlong' with rl.reward_shaping_kwargs="
                     f"{{'cache_length': {r.overlong_cache}}}")
  shaping = losses.get_reward_shaping(r.get("reward_shaping", "none"))
  losses.check_options(shaping, setup.as_dict(r.get("reward_shaping_kwargs", {})),
                       f"rl.reward_shaping {r.get('reward_shaping', 'none')!r}", skip=2)
  share_prompt_forward(r)
  transform = rollout.get_prompt_transform(r.get("prompt_transform", "identity"))
  losses.check_options(transform, setup.as_dict(r.get("prompt_transform_kwargs", {})),
                       f"rl.prompt_transform {r.get('prompt_transform', 'identity')!r}", skip=1)
  method = _rollout_method(r)
  method_kwargs = setup.as_dict(r.get("rollout_method_kwargs", {}))
  losses.check_options(method.fn, method_kwargs,
                       f"rl.rollout_method {r.get('rollout_method', 'standard')!r}", skip=5)
  if method.check is not None:  # e.g. Guide: the task's examples carry hints
    method.check(train_source_of(c.task), **method_kwargs)
  if r.group_size < 1 or r.batch_size % r.group_size:
    raise ValueError(f"rl.batch_size={r.batch_size} is not divisible by "
                     f"rl.group_size={r.group_size}")
  if est.group_relative and r.group_size < 2:
    raise ValueError(f"rl.group_size must be >= 2 for the group-relative advantage "
                     f"{r.advantage!r}, got {r.group_size}")
  if r.batch_size % r.num_minibatches:
    raise ValueError(f"rl.batch_size={r.batch_size} is not divisible by "
                     f"rl.num_minibatches={r.num_minibatches}")
  if (r.batch_size // r.num_minibatches) % r.num_micro_batches:
    raise ValueError(f"minibatch of {r.batch_size // r.num_minibatches} rows is not divisible "
                     f"by rl.num_micro_batches={r.num_micro_batches}")
  if c.steps < 1 or r.ppo_epochs < 1:
    raise ValueError(f"steps and rl.ppo_epochs must be >= 1, got {c.steps}, {r.ppo_epochs}")
  chunk = r.get("sample_chunk", 0) or 0
  if chunk < 0 or (chunk and r.group_size % chunk):
    raise ValueError(f"rl.sample_chunk={chunk} must divide rl.group_size={r.group_size} "
                     "(0 = one-shot sampling)")
  validate_sampled_eval(c)
  if c.init_from:
    setup.resolve_hf_dir(c.init_from)
  if c.model.get("hf_dir"):
    setup.resolve_hf_dir(c.model.hf_dir)
  ckpt_dir = os.path.join(c.workdir, "checkpoints")
  if c.resume and not (os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir)):
    raise ValueError(f"resume=True but there is no checkpoint directory {ckpt_dir!r}")
  train_source_of(c.task)
  setup.build_reward_fn(c.task)
  setup.lora_config(c)


def _rollout_method(r):
  try:
    return rollout.get_rollout_method(r.get("rollout_method", "standard"))
  except ValueError as e:
    raise ValueError(f"rl.rollout_method: {e}") from None


def train_source_of(task_cfg):
  """The RL prompts: the task's train split, or the stored examples of
  ``task.train_examples`` (a JSONL of data.rehearsal.save_examples, e.g. DPH-RL's D_exp)."""
  if task_cfg.get("train_examples", ""):
    return data.ListSource(rehearsal_data.load_examples(task_cfg.train_examples))
  return setup.build_task(task_cfg, "train")


def share_prompt_forward(r) -> bool:
  """``rl.share_prompt_forward`` (``"auto"``, True or False): run each prompt's layers once
  for its G rows in the trainer's forwards (``training.make_rl_step``). ``"auto"`` turns it on
  where every update's groups are G copies of one prompt by construction: the standard
  rollout method, no batch augmenter, and minibatches of whole groups (or one update)."""
  value = r.get("share_prompt_forward", "auto")
  if isinstance(value, str) and value.lower() in ("true", "false"):  # a string field set on
    value = value.lower() == "true"                                   # the command line
  if value == "auto":
    return (r.get("rollout_method", "standard") == "standard"
            and r.get("batch_augment", "none") == "none"
            and (single_update(r) or _policy_loss(r).whole_groups))
  if not isinstance(value, bool):
    raise ValueError(f"rl.share_prompt_forward must be 'auto', 'true' or 'false' (or a bool), "
                     f"got {value!r}")
  return value


def single_update(r) -> bool:
  """One optimiser step per rollout batch: the trainer's old log-probs can be skipped."""
  return r.ppo_epochs == 1 and r.num_minibatches == 1


def make_step(c, config, optimizer, mesh=None):
  r = c.rl
  tis = None
  if r.tis_cap:
    tis = {"cap": r.tis_cap, "level": r.tis_level, "mode": r.tis_mode}
  return training.make_rl_step(
      config, optimizer, group_size=r.group_size, loss=r.loss,
      loss_kwargs=setup.as_dict(r.loss_kwargs), advantage=r.advantage,
      advantage_kwargs=advantage_options(r), kl=r.kl or None, kl_coef=r.kl_coef,
      entropy_coef=r.entropy_coef, value_coef=r.value_coef, value_clip=r.value_clip or None,
      value_trunk_grad=r.value_trunk_grad, tis=tis, temperature=c.sampling.temperature,
      num_micro_batches=r.num_micro_batches, single_update=single_update(r),
      pg_coef=r.get("pg_coef", 1.0), self_reward_token=_self_reward_token(r, config),
      prepare_extras_kwargs=setup.as_dict(r.get("prepare_extras_kwargs", {})), mesh=mesh,
      share_prompt_forward=share_prompt_forward(r))


def _self_reward_token(r, config):
  """``rl.self_reward_token`` (LaSeR's z_c) or None when off (-1); checked against the vocabulary."""
  token = r.get("self_reward_token", -1)
  if token is None or token < 0:
    return None
  if token >= config.vocab_size:
    raise ValueError(f"rl.self_reward_token={token} must be < the model's vocab_size "
                     f"{config.vocab_size}")
  return int(token)


def sampling_options(c) -> dict:
  """Sampler settings of the config (0 / empty: off)."""
  s = c.sampling
  return dict(temperature=s.temperature, top_p=s.get("top_p", 0.0) or None,
              top_k=s.get("top_k", 0) or None, min_p=s.get("min_p", 0.0) or None,
              stop_strings=tuple(s.get("stop_strings", ()) or ()))


def sampled_eval_on(c) -> bool:
  """Whether ``c.eval.n`` > 0: pass@k / maj@k from n samples per held-out problem."""
  return bool(c.get("eval") is not None and c.eval.get("n", 0))


def validate_sampled_eval(c):
  if not sampled_eval_on(c):
    return
  e, n = c.eval, c.eval.n
  for name in ("pass_ks", "maj_ks"):
    bad = [k for k in tuple(e.get(name, ()) or ()) if not 1 <= k <= n]
    if bad:
      raise ValueError(f"eval.{name} {bad} must lie in [1, eval.n={n}]")
  chunk = e.get("sample_chunk", 0) or 0
  if chunk < 0 or (chunk and n % chunk):
    raise ValueError(f"eval.sample_chunk={chunk} must divide eval.n={n} (0 = one call)")
  if tuple(e.get("maj_ks", ()) or ()):
    passk_eval.get_answer_extractor(c.task.reward)


def sampled_eval(c, config, params, tokenizer, eval_set, reward_fn, stops, mesh) -> dict:
  """``eval/pass@k`` (unbiased, k in ``c.eval.pass_ks``) and ``eval/maj@k`` (``c.eval.maj_ks``)
  from ``c.eval.n`` samples at the run's sampling settings of each of the first
  ``c.eval.num_problems`` (0: all) held-out problems; the key ``key(c.eval.seed)`` is the
  same at every evaluation (training/passk_eval.py)."""
  e = c.eval
  problems = eval_set[:e.num_problems] if e.get("num_problems", 0) else eval_set
  maj_ks = tuple(e.get("maj_ks", ()) or ())
  opts = sampling_options(c)
  sampled = passk_eval.sample_correctness(
      config, params, tokenizer, problems, reward_fn, jax.random.key(e.get("seed", 0)), n=e.n,
      max_new_tokens=c.sampling.max_new_tokens,
      prompts_per_batch=e.get("prompts_per_batch", 16), sample_chunk=e.get("sample_chunk", 0)
      or None, stop_tokens=stops, add_bos=c.task.add_bos, mesh=mesh,
      answer_fn=passk_eval.get_answer_extractor(c.task.reward) if maj_ks else None, **opts)
  m = passk_eval.passk_metrics(sampled, tuple(e.get("pass_ks", ()) or ()), maj_ks,
                               maj_subsets=e.get("maj_subsets", 16), seed=e.get("seed", 0))
  return {f"eval/{k}": v for k, v in m.items()}


def run(c) -> dict:
  validate(c)
  setup.init_process(c)  # before anything touches a device
  os.makedirs(c.workdir, exist_ok=True)
  r = c.rl
  config, params, tokenizer, _ = setup.build_model(c.model, c.init_from, c.seed)
  train_source = train_source_of(c.task)
  eval_set = setup.eval_examples(c.task, c.eval_size)
  reward_fn = setup.build_reward_fn(c.task)
  stops = setup.stop_tokens(config, tokenizer)
  mesh, params = setup.shard_on_mesh(c.get("mesh"), config, params)
  setup.check_distributed_mesh(mesh)
  params, lora_cfg = setup.apply_lora(c, params, config, mesh)
  # A separate copy: the update donates (reuses) the policy's buffers. With LoRA the
  # reference is the frozen base, read from the current state at each prepare.
  ref_params = jax.tree.map(jnp.copy, params) if r.kl and lora_cfg is None else None
  if lora_cfg is not None:
    print(f"LoRA rank {lora_cfg.rank} on {','.join(lora_cfg.targets)}: "
          f"{lora.count_params(lora.trainable(params))} trainable parameters of "
          f"{lora.count_params(lora.base_params(params))}", flush=True)
  policy_view = setup.sampling_view(lora_cfg)
  optimizer = setup.build_optimizer(c.optim, c.steps * r.ppo_epochs * r.num_minibatches)
  step_fns = make_step(c, config, optimizer, mesh)
  value_params = training.init_value_head(config.hidden_size) if step_fns.uses_values else None
  state = setup.commit_state(training.init_train_state(params, optimizer, value_params), mesh)
  placement = setup.rollout_placement(c, config, mesh)  # where sampling runs (c.rollout_mesh)
  sampler_params = lambda: placement.to_rollout(policy_view(state.params))
  prepare = jax.jit(step_fns.prepare)
  update = jax.jit(step_fns.update, donate_argnums=0)
  start, state, position, writer, ckpt, meta = setup.open_run(c, state, return_meta=True)
  state = setup.commit_state(state, mesh)  # a restored state too
  method = _rollout_method(r)
  method_kwargs = setup.as_dict(r.get("rollout_method_kwargs", {}))
  # The rollout method's carried state (JSON), restored with the checkpoint on resume.
  method_state = (meta["rollout_state"] if "rollout_state" in meta
                  else method.initial_state(train_source, **method_kwargs))
  # 1-shot RLVR's per-example accuracy history (data.one_shot), rl.accuracy_log in workdir.
  acc_log = os.path.join(c.workdir, r.accuracy_log) if r.get("accuracy_log") else None
  acc_index = one_shot.example_indices(train_source) if acc_log else None
  if acc_log and setup.is_main_process():
    one_shot.truncate_log(acc_log, start)
  base_key = jax.random.key(c.seed)
  sample_opts = sampling_options(c)
  rollout_opts = dict(
      num_prompts=r.batch_size // r.group_size, group_size=r.group_size,
      max_new_tokens=c.sampling.max_new_tokens, stop_tokens=stops, add_bos=c.task.add_bos,
      prompt_transform=r.get("prompt_transform", "identity"),
      prompt_transform_kwargs=setup.as_dict(r.get("prompt_transform_kwargs", {})),
      reward_shaping=r.get("reward_shaping", "none"),
      reward_shaping_kwargs=setup.as_dict(r.get("reward_shaping_kwargs", {})),
      dynamic_sampling=r.dynamic_sampling, max_sampling_rounds=r.max_sampling_rounds,
      mesh=placement.mesh, **sample_opts)
  if r.get("sample_chunk", 0):  # BroRL: large groups sampled C per prompt at a time
    rollout_opts["sample_chunk"] = int(r.sample_chunk)

  def evaluate(step):
    ev = rollout.evaluate(config, sampler_params(), tokenizer, eval_set, reward_fn,
                          max_new_tokens=c.sampling.max_new_tokens, stop_tokens=stops,
                          stop_strings=sample_opts["stop_strings"], add_bos=c.task.add_bos,
                          mesh=placement.mesh)
    writer.write(step, {"eval/accuracy": ev["accuracy"], "eval/reward_mean": ev["reward_mean"]})
    if sampled_eval_on(c):  # eval/pass@k, eval/maj@k from c.eval.n samples per problem
      writer.write(step, sampled_eval(c, config, sampler_params(), tokenizer, eval_set,
                                      reward_fn, stops, placement.mesh))
    return ev["accuracy"]

  initial_accuracy = evaluate(0) if start == 0 and c.eval_at_start else None
  accuracy = initial_accuracy if initial_accuracy is not None else float("nan")
  bar = tqdm.tqdm(range(start, c.steps), initial=start, total=c.steps, desc=f"rl[{r.loss}/"
                  f"{r.advantage}]",
                  disable=not c.progress_bar or not setup.is_main_process())
  augment = rollout.get_batch_augmenter(r.get("batch_augment", "none"))
  augment_kwargs = setup.as_dict(r.get("batch_augment_kwargs", {}))
  run_inputs = {"reward_fn": reward_fn}  # what BatchAugmenter.run_inputs may name
  whole_groups = _policy_loss(r).whole_groups
  for it in bar:
    t0 = time.time()
    key = jax.random.fold_in(base_key, it)
    sample_key, shuffle_key = jax.random.split(key)
    ctx = rollout.RolloutContext(config, sampler_params(), tokenizer, reward_fn, it,
                                 rollout_opts)
    ro, method_state = method.fn(ctx, train_source, position, sample_key, method_state,
                                 **method_kwargs)
    position = ro.position
    if acc_log and setup.is_main_process():
      one_shot.append_jsonl(acc_log, one_shot.accuracy_records(
          it + 1, ro.examples, ro.task_rewards, r.group_size, indices=acc_index))
    t_sample = time.time() - t0
    batch, aug_metrics = augment.fn(ro.batch, ro, tokenizer=tokenizer,
                                    key=jax.random.fold_in(shuffle_key, 1 << 20), step=it,
                                    **{k: run_inputs[k] for k in augment.run_inputs},
                                    **augment_kwargs)
    batch = placement.to_train(batch)
    ref = lora.base_params(state.params) if lora_cfg is not None and r.kl else ref_params
    prepared, prep_metrics = prepare(state, batch, ref)
    upd_metrics = []
    rows = prepared.num_rows
    if rows % r.num_minibatches:
      raise ValueError(f"the batch has {rows} rows (after rl.batch_augment), not divisible by "
                       f"rl.num_minibatches={r.num_minibatches}")
    mb_size = rows // r.num_minibatches
    for epoch in range(r.ppo_epochs):
      epoch_key = jax.random.fold_in(shuffle_key, epoch)
      if whole_groups:  # shuffle groups of G contiguous rows, keep each group whole
        groups = jax.random.permutation(epoch_key, rows // r.group_size)
        perm = (groups[:, None] * r.group_size + jnp.arange(r.group_size)[None]).reshape(-1)
      else:
        perm = jax.random.permutation(epoch_key, rows)
      for k in range(r.num_minibatches):
        mb = prepared if single_update(r) else training.take_rows(
            prepared, perm[k * mb_size:(k + 1) * mb_size])
        state, m = update(state, mb)
        m = metrics_lib.to_floats(m)
        training.raise_if_prompts_unshared(m, "rl.share_prompt_forward is on")
        metrics_lib.check_finite(m, it + 1)
        upd_metrics.append(m)
    dt = time.time() - t0
    um = {k: float(np.mean([m[k] for m in upd_metrics])) for k in upd_metrics[0]}
    # Prepare's metrics are of the batch before any update; without prepare's forward
    # (single update) the update reports them at the same parameters.
    pm = {**um, **metrics_lib.to_floats(prep_metrics)}
    record = {f"train/{k}": v for k, v in ro.metrics.items()
              if k not in ("generated_tokens", "prompts_sampled")}
    record.update({
        "train/loss": um["loss"], "train/pg_loss": um["pg_loss"],
        "train/grad_norm": um["grad_norm"],
        "train/entropy": pm["entropy"], "train/kl": pm.get("kl", 0.0),
        "train/clip_frac": um.get("clip_frac", 0.0), "train/approx_kl": um.get("approx_kl", 0.0),
        "train/advantage_abs_mean": pm["advantage_abs_mean"],
        "perf/tokens_per_s": ro.metrics["generated_tokens"] / dt,
        "perf/sample_time_s": t_sample, "perf/step_time_s": dt,
    })
    for k in ("mismatch_k1", "mismatch_k3", "is_weight_mean", "is_clipped_frac"):
      record[f"mismatch/{k}"] = pm[f"mismatch/{k}"]
    if "value_loss" in um:
      record["train/value_loss"] = um["value_loss"]
    # Method-specific metrics (a loss's own diagnostics, an augmenter's counts).
    for k, v in {**um, **metrics_lib.to_floats(aug_metrics)}.items():
      name = f"train/{k}" if not k.startswith("mismatch/") else k
      record.setdefault(name, v)
    writer.write(it + 1, record)
    if (it + 1) % c.eval_every == 0 or it + 1 == c.steps:
      accuracy = evaluate(it + 1)
    bar.set_postfix(reward=f"{record['train/reward_mean']:.3f}", acc=f"{accuracy:.3f}",
                    tok_s=f"{record['perf/tokens_per_s']:.0f}")
    # The sampling RNG of iteration i is fold_in(key(seed), i): seed + step restore it.
    ckpt.save(it + 1, state, {"data_position": list(position), "step": it + 1, "seed": c.seed,
                              "rollout_state": method_state},
              force=it + 1 == c.steps)
  ckpt.close()
  writer.close()
  if c.export_hf:
    setup.export_hf(os.path.join(c.workdir, "hf"), config,
                    lora.merged(state.params))
  if setup.is_main_process():
    metrics_lib.plot_rewards(writer.path, os.path.join(c.workdir, "curves.png"))
  return {"eval/accuracy": accuracy, "initial_accuracy": initial_accuracy,
          "workdir": c.workdir}


def main(argv):
  del argv
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  summary = run(_CONFIG.value)
  if setup.is_main_process():
    print(f"held-out accuracy: start {summary['initial_accuracy']}, "
          f"end {summary['eval/accuracy']:.3f}  ({summary['workdir']})")


if __name__ == "__main__":
  from absl import app
  from ml_collections import config_flags
  _CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file")
  app.run(main)

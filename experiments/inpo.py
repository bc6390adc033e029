"""INPO: iterative Nash policy optimisation with the task's verifier as the preference oracle.

    python experiments/inpo.py --config=configs/inpo_arithmetic.py \
        --config.init_from=/tmp/jaxrl_llm/sft_arithmetic --config.workdir=/tmp/inpo

Iteration ``t = 0 .. T-1`` (Zhang et al. 2025, arXiv 2407.00617; SECONDARY spec):

1. sample ``inpo.num_samples`` (>= 2) responses to each of ``inpo.prompts_per_iteration``
   prompts from ``pi_t`` (the current policy) with the sampler;
2. score them with the task's verifier; per prompt ``y_w`` = a highest-reward response,
   ``y_l`` = a lowest-reward one; prompts where every response ties are skipped (logged
   as ``inpo/tied_prompts``);
3. compute the sequence log-probs of ``pi_t`` and ``pi_ref`` (the initial policy, or the
   frozen base with LoRA) on those pairs once;
4. train ``inpo.epochs`` epochs of ``inpo_loss`` (``preference.loss_kwargs``: eta, tau)
   over the pairs, ``batch_size`` pairs a step (``max(1, pairs // batch_size)`` steps an
   epoch, wrapping around when there are fewer pairs than a batch);
   ``pi_{t+1}`` is the result.

Writes ``workdir/metrics.jsonl`` (train/loss, train/h_mean, train/reward_accuracy per
step; inpo/pairs, inpo/tied_prompts, inpo/sample_accuracy per iteration; eval/accuracy),
Orbax checkpoints at iteration ends (``--config.resume=True`` continues with the next
iteration), ``workdir/hf`` and ``workdir/curves.png``.
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

from jaxrl_llm import data, losses, training  # noqa: E402
from jaxrl_llm.losses import preference as pref  # noqa: E402
from jaxrl_llm.models import lora  # noqa: E402
from jaxrl_llm.runs import workdir as workdir_lib  # noqa: E402
from jaxrl_llm.training import metrics as metrics_lib, rollout, setup  # noqa: E402
from jaxrl_llm.training import preference as tp  # noqa: E402


def validate(c):
  """Fails fast, before any model is built, on inconsistent or unknown options."""
  p, it = c.preference, c.inpo
  entry = losses.get_preference_loss(p.loss)
  if not entry.needs_previous:
    raise ValueError(f"preference.loss={p.loss!r} does not read the previous iterate; "
                     f"experiments/inpo.py trains 'inpo' (use experiments/preference.py)")
  options = pref.check_preference_options(p.loss, setup.as_dict(p.loss_kwargs))
  eta, tau = options.get("eta", 7.5e-3), options.get("tau", 2.5e-3)
  if not 0 < tau < eta:
    raise ValueError(f"preference.loss_kwargs: need 0 < tau < eta, got tau={tau}, eta={eta}")
  if it.num_samples < 2:
    raise ValueError(f"inpo.num_samples must be >= 2 (a pair per prompt), got {it.num_samples}")
  if it.iterations < 1 or it.epochs < 1 or it.prompts_per_iteration < 1:
    raise ValueError(f"inpo.iterations, inpo.epochs and inpo.prompts_per_iteration must be "
                     f">= 1, got {it.iterations}, {it.epochs}, {it.prompts_per_iteration}")
  if c.batch_size < 1 or c.batch_size % c.num_micro_batches:
    raise ValueError(f"batch_size={c.batch_size} must be a positive multiple of "
                     f"num_micro_batches={c.num_micro_batches}")
  if c.get("mesh"):
    raise ValueError("experiments/inpo.py runs on one device (config.mesh must be empty)")
  if c.init_from:
    setup.resolve_hf_dir(c.init_from)
  ckpt_dir = os.path.join(c.workdir, "checkpoints")
  if c.resume and not (os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir)):
    raise ValueError(f"resume=True but there is no checkpoint directory {ckpt_dir!r}")
  setup.build_task(c.task, "train")
  setup.build_reward_fn(c.task)
  setup.lora_config(c)


def steps_per_epoch(num_pairs: int, batch_size: int) -> int:
  return max(1, num_pairs // batch_size) if num_pairs else 0


def max_steps(c) -> int:
  """The most optimiser steps a run can take (every prompt labelled): the schedule length."""
  it = c.inpo
  return it.iterations * it.epochs * steps_per_epoch(it.prompts_per_iteration, c.batch_size)


def _batched(fn, arrays: dict, batch_size: int) -> dict:
  """``fn(chunk) -> {name: [b]}`` over ``[n]``-row arrays in fixed-size chunks (the last
  one padded by repeating rows, so one compiled shape), concatenated back to ``n``."""
  n = next(iter(arrays.values())).shape[0]
  outs = []
  for i in range(0, n, batch_size):
    rows = np.resize(np.arange(i, min(i + batch_size, n)), batch_size)
    outs.append(jax.device_get(fn({k: v[rows] for k, v in arrays.items()})))
  return {k: np.concatenate([o[k] for o in outs])[:n] for k in outs[0]}


def label_iteration(c, config, policy_params, tokenizer, examples, reward_fn, key, stops):
  """Samples, scores and pairs one iteration's prompts: ``(pairs batch, metrics)``."""
  s, g = c.sampling, c.inpo.num_samples
  rd = rollout.sample_groups(config, policy_params, tokenizer, examples, key, group_size=g,
                             max_new_tokens=s.max_new_tokens, temperature=s.temperature,
                             top_p=s.get("top_p", 0.0) or None, top_k=s.get("top_k", 0) or None,
                             min_p=s.get("min_p", 0.0) or None, stop_tokens=stops,
                             add_bos=c.task.add_bos)
  rewards = rollout.score(reward_fn, rd.texts, examples, g)
  winners, losers, tied = tp.select_pairs(rewards, g)
  tokens = rollout.host_read(rd.out.tokens)
  mask = rollout.host_read(rd.mask).astype(bool)
  prompt_ids = [tokenizer.encode(ex.prompt, add_bos=c.task.add_bos) for ex in examples]
  metrics = {"inpo/pairs": float(len(winners)), "inpo/tied_prompts": float(tied.sum()),
             "inpo/tied_frac": float(tied.mean()),
             "inpo/sample_reward_mean": float(rewards.mean()),
             "inpo/sample_accuracy": float((rewards >= 1.0).mean())}
  if not len(winners):
    return None, metrics
  ids = lambda rows: [tokens[r][mask[r]] for r in rows]
  try:
    batch = tp.paired_batch_from_ids([prompt_ids[r // g] for r in winners], ids(winners),
                                     ids(losers), tokenizer.pad_id, c.max_length)
  except ValueError as e:
    raise ValueError(f"config.max_length={c.max_length} is too short for a prompt and "
                     f"sampling.max_new_tokens={s.max_new_tokens} response tokens: {e}") from None
  return batch, metrics


def run(c) -> dict:
  validate(c)
  os.makedirs(c.workdir, exist_ok=True)
  p, it = c.preference, c.inpo
  config, params, tokenizer, _ = setup.build_model(c.model, c.init_from, c.seed)
  train_source = setup.build_task(c.task, "train")
  eval_set = setup.eval_examples(c.task, c.eval_size)
  reward_fn = setup.build_reward_fn(c.task)
  stops = setup.stop_tokens(config, tokenizer)
  params, lora_cfg = setup.apply_lora(c, params)
  # pi_ref: the initial policy (a copy: the update donates the state) or the frozen base.
  ref_params = jax.tree.map(jnp.copy, params) if lora_cfg is None else None
  policy_view = setup.sampling_view(lora_cfg)
  optimizer = setup.build_optimizer(c.optim, max(1, max_steps(c)))
  state = training.init_train_state(params, optimizer)
  steps = tp.make_preference_step(config, optimizer, loss=p.loss,
                                  loss_kwargs=setup.as_dict(p.loss_kwargs),
                                  num_micro_batches=c.num_micro_batches)
  update = jax.jit(steps.update, donate_argnums=0)
  reference_logps = jax.jit(steps.reference_logps)
  previous_logps = jax.jit(steps.previous_logps)
  run_ = workdir_lib.open_run(c, state, checkpoint_every=1, keep=c.keep_checkpoints)
  state, writer, ckpt = run_.state, run_.writer, run_.checkpointer
  start_iter, position = 0, data.DataPosition(c.seed, 0)
  if run_.resumed_from is not None:
    start_iter = int(run_.meta["iteration"])
    position = data.DataPosition(*run_.meta["data_position"])
    print(f"resumed after iteration {start_iter} (step {run_.start})", flush=True)
  step = int(state.step)
  base_key = jax.random.key(c.seed)

  def evaluate(at):
    ev = rollout.evaluate(config, policy_view(state.params), tokenizer, eval_set, reward_fn,
                          max_new_tokens=c.sampling.max_new_tokens, stop_tokens=stops,
                          add_bos=c.task.add_bos)
    writer.write(at, {"eval/accuracy": ev["accuracy"], "eval/reward_mean": ev["reward_mean"]})
    return ev["accuracy"]

  initial_accuracy = evaluate(0) if start_iter == 0 and c.eval_at_start else None
  accuracy = initial_accuracy if initial_accuracy is not None else float("nan")
  bar = tqdm.tqdm(range(start_iter, it.iterations), initial=start_iter, total=it.iterations,
                  desc="inpo", disable=not c.progress_bar)
  for t in bar:
    t0 = time.time()
    examples, position = data.take_batch(train_source, position, it.prompts_per_iteration)
    sample_key, shuffle_key = jax.random.split(jax.random.fold_in(base_key, t))
    pairs, it_metrics = label_iteration(c, config, policy_view(state.params), tokenizer,
                                        examples, reward_fn, sample_key, stops)
    t_sample = time.time() - t0
    if pairs is not None:
      # pi_t and pi_ref log-probs of every pair, once per iteration.
      ref = lora.base_params(state.params) if ref_params is None else ref_params
      pairs.update(_batched(lambda b: reference_logps(ref, b), pairs, c.batch_size))
      pairs.update(_batched(lambda b: previous_logps(state.params, b), pairs, c.batch_size))
      n = pairs["chosen_tokens"].shape[0]
      for epoch in range(it.epochs):
        perm = np.asarray(jax.random.permutation(jax.random.fold_in(shuffle_key, epoch), n))
        for k in range(steps_per_epoch(n, c.batch_size)):
          rows = np.resize(perm, max(n, c.batch_size))[k * c.batch_size:(k + 1) * c.batch_size]
          state, m = update(state, {key: v[rows] for key, v in pairs.items()})
          m = metrics_lib.to_floats(m)
          step += 1
          metrics_lib.check_finite(m, step)
          writer.write(step, {f"train/{key}": v for key, v in m.items() if key != "tokens"})
    it_metrics.update({"inpo/iteration": float(t + 1), "perf/sample_time_s": t_sample,
                       "perf/iteration_time_s": time.time() - t0})
    writer.write(step, it_metrics)
    if (t + 1) % c.eval_every == 0 or t + 1 == it.iterations:
      accuracy = evaluate(step)
    bar.set_postfix(pairs=int(it_metrics["inpo/pairs"]), acc=f"{accuracy:.3f}")
    if ckpt is not None and ((t + 1) % c.checkpoint_every == 0 or t + 1 == it.iterations):
      ckpt.save(step, state, {"data_position": list(position), "step": step,
                              "iteration": t + 1, "seed": c.seed}, force=True)
  if ckpt is not None:
    ckpt.close()
  writer.close()
  if c.export_hf:
    setup.export_hf(os.path.join(c.workdir, "hf"), config, lora.merged(state.params))
  metrics_lib.plot_rewards(writer.path, os.path.join(c.workdir, "curves.png"),
                           keys=("eval/accuracy",))
  return {"eval/accuracy": accuracy, "initial_accuracy": initial_accuracy, "steps": step,
          "workdir": c.workdir}


def main(argv):
  del argv
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  summary = run(_CONFIG.value)
  print(f"held-out accuracy: start {summary['initial_accuracy']}, "
        f"end {summary['eval/accuracy']:.3f} after {summary['steps']} steps "
        f"({summary['workdir']})")


if __name__ == "__main__":
  from absl import app
  from ml_collections import config_flags
  _CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file")
  app.run(main)

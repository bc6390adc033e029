"""A-LoL: offline advantage-weighted fine-tuning from a JSONL of scored responses.

    python experiments/a_lol.py --config=configs/a_lol_arithmetic.py --config.init_from=/tmp/sft

Baheti et al., "Leftover Lunch: Advantage-based Offline Reinforcement Learning for
Language Models", arXiv 2305.14718. Before training, once: the data set is split by
prompt (``data.val_fraction`` held out), the value head on the frozen reference pi_ref
(the initial model) is fitted to the held-out rewards (``value.source``), and every
training pair gets ``A = R - V_ref(x)`` and its reference log-probs. Each step then
draws ``batch_size`` pairs with ``A > 0`` (``a_lol.sampler``; the draw is keyed by the
step, so a resumed run sees the same batches) and minimises the ``a_lol.variant`` loss.
With ``a_lol.scale_steps`` the run is ``ceil(steps * positive fraction)`` steps.

Writes ``workdir/metrics.jsonl`` (step 0: ``value/*`` and ``data/*``; then ``train/*``
and ``eval/accuracy``), Orbax checkpoints in ``workdir/checkpoints`` (atomic commits;
``--config.resume=True`` continues), ``workdir/hf`` and ``workdir/curves.png``.
"""

from __future__ import annotations

import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import tqdm  # noqa: E402

from jaxrl_llm import data, sharding, training  # noqa: E402
from jaxrl_llm.losses import a_lol as a_lol_losses  # noqa: E402
from jaxrl_llm.models import lora  # noqa: E402
from jaxrl_llm.runs import workdir  # noqa: E402
from jaxrl_llm.training import a_lol, metrics as metrics_lib, rollout, setup  # noqa: E402

SAMPLERS = tuple(a_lol_losses.SAMPLER_MODES) + ("uniform",)
VALUE_SOURCES = ("dataset", "ref_generations")
RESPONSE_SOURCES = ("synthetic", "model")


def loss_options(c) -> dict:
  return {"variant": c.a_lol.variant, "clip_eps": float(c.a_lol.clip_eps),
          "kl_beta": float(c.a_lol.kl_beta)}


def validate(c):
  if c.batch_size < 1 or c.batch_size % c.num_micro_batches:
    raise ValueError(f"batch_size={c.batch_size} must be a positive multiple of "
                     f"num_micro_batches={c.num_micro_batches}")
  if c.steps < 1:
    raise ValueError(f"steps must be >= 1, got {c.steps}")
  if c.init_from:
    setup.resolve_hf_dir(c.init_from)
  try:  # every loss option checked on a dummy batch before anything is built
    a_lol_losses.a_lol_loss(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.zeros((1,)),
                            jnp.ones((1, 2)), **loss_options(c))
  except ValueError as e:
    raise ValueError(f"config.a_lol: {e}") from None
  for name, value, known in (("a_lol.sampler", c.a_lol.sampler, SAMPLERS),
                             ("value.source", c.value.source, VALUE_SOURCES),
                             ("data.responses", c.data.responses, RESPONSE_SOURCES)):
    if value not in known:
      raise ValueError(f"config.{name} must be one of {known}, got {value!r}")
  if not c.data.path:
    raise ValueError("config.data.path is empty: give the JSONL of {prompt, response, reward}")
  if not os.path.isfile(c.data.path) and not c.data.generate:
    raise ValueError(f"config.data.path: no file {c.data.path!r} (and data.generate is False)")
  if not 0.0 < c.data.val_fraction < 1.0:
    raise ValueError(f"config.data.val_fraction must be in (0, 1), got {c.data.val_fraction}")
  ckpt_dir = os.path.join(c.workdir, "checkpoints")
  if c.resume and not (os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir)):
    raise ValueError(f"resume=True but there is no checkpoint directory {ckpt_dir!r}")
  setup.lora_config(c)


def _sample_from_ref(config, ref_params, tokenizer, examples, key, *, samples: int,
                     max_new_tokens: int, temperature: float, stops, add_bos: bool,
                     chunk: int = 64):
  """``[(example, text)]``: ``samples`` completions of pi_ref per example."""
  out = []
  for i in range(0, len(examples), chunk):
    part = list(examples[i:i + chunk])
    rd = rollout.sample_groups(config, ref_params, tokenizer, part, jax.random.fold_in(key, i),
                               group_size=samples, max_new_tokens=max_new_tokens,
                               temperature=temperature, stop_tokens=stops, add_bos=add_bos)
    out.extend((part[j // samples], t) for j, t in enumerate(rd.texts))
  return out


def make_dataset(c, config, ref_params, tokenizer, reward_fn, stops) -> str:
  """Writes ``c.data.path`` for the configured task (synthetic or pi_ref responses)."""
  task = setup.build_task(c.task, "train")
  d = c.data
  if d.responses == "synthetic":
    records = a_lol.arithmetic_offline_records(
        task, d.num_prompts, reward_fn, seed=c.seed, responses_per_prompt=d.responses_per_prompt,
        correct_fraction=d.correct_fraction)
  else:
    examples = task.examples(c.seed, 0, d.num_prompts)
    pairs = _sample_from_ref(config, ref_params, tokenizer, examples,
                             jax.random.fold_in(jax.random.key(c.seed), 3),
                             samples=d.responses_per_prompt, max_new_tokens=c.max_new_tokens,
                             temperature=d.temperature, stops=stops, add_bos=c.task.add_bos)
    records = [a_lol.OfflineRecord(ex.prompt, t, float(reward_fn(t, ex)), ex.answer)
               for ex, t in pairs]
  if setup.is_main_process():
    a_lol.write_offline_jsonl(d.path, records)
  if jax.process_count() > 1:  # the others read the file only once process 0 has written it
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("a_lol_dataset_written")
  return d.path


def value_rows(c, config, ref_params, tokenizer, reward_fn, stops, val):
  """``(prompts, rewards)`` the value head is fitted to (``c.value.source``)."""
  if c.value.source == "dataset":
    return [r.prompt for r in val], np.asarray([r.reward for r in val], np.float32)
  answers = {}
  for r in val:
    if r.answer is None:
      raise ValueError(f"value.source='ref_generations' needs the field 'answer' in every "
                       f"validation row; the row with prompt {r.prompt!r} has none")
    answers[r.prompt] = r.answer
  examples = [data.Example(p, a) for p, a in sorted(answers.items())]
  pairs = _sample_from_ref(config, ref_params, tokenizer, examples,
                           jax.random.fold_in(jax.random.key(c.seed), 4),
                           samples=c.value.samples_per_prompt, max_new_tokens=c.max_new_tokens,
                           temperature=c.data.temperature, stops=stops, add_bos=c.task.add_bos)
  return ([ex.prompt for ex, _ in pairs],
          np.asarray([reward_fn(t, ex) for ex, t in pairs], np.float32))


def _features_by_prompt(config, ref_params, tokenizer, prompts, add_bos):
  """``(features [u, P, D], mask [u, P], index [n])`` over the distinct prompts."""
  unique = sorted(set(prompts))
  where = {p: i for i, p in enumerate(unique)}
  width = max(len(tokenizer.encode(p, add_bos=add_bos)) for p in unique)
  tokens, mask = a_lol.prompt_batch(tokenizer, unique, width, add_bos)
  feats = a_lol.prompt_features(config, ref_params, tokens, mask)
  return feats, mask, np.asarray([where[p] for p in prompts], np.int64)


def prepare(c, config, ref_params, tokenizer, reward_fn, stops):
  """The training arrays (``A_LOL_BATCH_KEYS``, NumPy, one row per training pair) and the
  step-0 metrics (value fit, advantages, data sizes)."""
  if not os.path.isfile(c.data.path):
    make_dataset(c, config, ref_params, tokenizer, reward_fn, stops)
  records = a_lol.load_offline_jsonl(c.data.path)
  train, val = a_lol.split_by_prompt(records, c.data.val_fraction, c.seed)
  add_bos = c.task.add_bos
  v_prompts, v_rewards = value_rows(c, config, ref_params, tokenizer, reward_fn, stops, val)
  feats, fmask, index = _features_by_prompt(config, ref_params, tokenizer, v_prompts, add_bos)
  v = c.value
  value_params, vm = a_lol.fit_value_head(
      jax.random.fold_in(jax.random.key(c.seed), 2), feats[index], fmask[index], v_rewards,
      epochs=v.epochs, learning_rate=v.learning_rate, batch_size=v.batch_size,
      holdout_fraction=v.holdout_fraction, max_value=v.max_value, mlp_size=v.mlp_size)
  feats, fmask, index = _features_by_prompt(config, ref_params, tokenizer,
                                            [r.prompt for r in train], add_bos)
  rewards = np.asarray([r.reward for r in train], np.float32)
  _, values = a_lol.advantages(value_params, feats, fmask, np.zeros(feats.shape[0]),
                               max_value=v.max_value)  # V_ref per distinct prompt
  values = values[index]
  adv = rewards - values  # A = R - V_ref(x), once
  try:
    arrays = a_lol.offline_batch(tokenizer, train, c.max_length, add_bos)
  except ValueError as e:
    raise ValueError(f"config.max_length={c.max_length} is too short: {e}") from None
  arrays["ref_logprobs"] = a_lol.reference_logprobs(config, ref_params, arrays)
  arrays["advantages"] = adv.astype(np.float32)
  metrics = {f"value/{k}": float(x) for k, x in vm.items()}
  metrics.update({"data/num_train": float(len(train)), "data/num_val": float(len(val)),
                  "data/num_value_rows": float(len(v_prompts)),
                  "data/reward_mean": float(rewards.mean()),
                  "data/value_mean": float(values.mean()),
                  "data/adv_mean": float(adv.mean()),
                  "data/positive_frac": float((adv > 0).mean())})
  return arrays, metrics


def run(c) -> dict:
  validate(c)
  setup.init_process(c)
  os.makedirs(c.workdir, exist_ok=True)
  workdir.claim_workdir(c)  # refuse / resume / overwrite before the expensive preparation
  config, params, tokenizer, _ = setup.build_model(c.model, c.init_from, c.seed)
  reward_fn = setup.build_reward_fn(c.task)
  eval_set = setup.eval_examples(c.task, c.eval_size)
  stops = setup.stop_tokens(config, tokenizer)
  mesh, params = setup.shard_on_mesh(c.get("mesh"), config, params)
  setup.check_distributed_mesh(mesh)
  # pi_ref: the initial model, frozen (a copy: the train step donates the state's buffers).
  ref_params = jax.tree.map(jnp.copy, params)
  arrays, prep_metrics = prepare(c, config, ref_params, tokenizer, reward_fn, stops)
  adv = jnp.asarray(arrays["advantages"])
  positive_frac = prep_metrics["data/positive_frac"]
  if c.a_lol.sampler != "uniform" and positive_frac == 0.0:
    raise ValueError(f"no training pair of {c.data.path!r} has a positive advantage "
                     f"R - V_ref(x); A-LoL drops them all (use a_lol.sampler='uniform' with "
                     f"a_lol.variant='ref_free' to train on every pair)")
  steps = c.steps
  if c.a_lol.scale_steps and c.a_lol.sampler != "uniform":
    steps = max(1, math.ceil(c.steps * positive_frac))
  params, lora_cfg = setup.apply_lora(c, params, config, mesh)
  policy_view = setup.sampling_view(lora_cfg)
  optimizer = setup.build_optimizer(c.optim, steps)
  state = training.init_train_state(params, optimizer)
  step_fn = jax.jit(a_lol.make_a_lol_step(config, optimizer, num_micro_batches=c.num_micro_batches,
                                          mesh=mesh, variant=c.a_lol.variant,
                                          loss_kwargs={k: v for k, v in loss_options(c).items()
                                                       if k != "variant"}),
                    donate_argnums=0)
  start, state, position, writer, ckpt = setup.open_run(c, state)
  if start == 0:
    writer.write(0, dict(prep_metrics, **{"data/steps": float(steps)}))
  rows = slice(0, c.batch_size) if mesh is None else sharding.process_rows(mesh, c.batch_size)
  sample_key = jax.random.fold_in(jax.random.key(c.seed), 5)

  def draw(step):
    key = jax.random.fold_in(sample_key, step)
    if c.a_lol.sampler == "uniform":
      return np.asarray(jax.random.randint(key, (c.batch_size,), 0, adv.shape[0]))
    idx, _ = a_lol_losses.positive_advantage_sampler(adv, key, c.batch_size,
                                                     mode=c.a_lol.sampler)
    return np.asarray(idx)

  def evaluate(step):
    ev = rollout.evaluate(config, policy_view(state.params), tokenizer, eval_set, reward_fn,
                          max_new_tokens=c.max_new_tokens, stop_tokens=stops,
                          add_bos=c.task.add_bos, mesh=mesh)
    writer.write(step, {"eval/accuracy": ev["accuracy"], "eval/reward_mean": ev["reward_mean"]})
    return ev["accuracy"]

  accuracy = float("nan")
  bar = tqdm.tqdm(range(start, steps), initial=start, total=steps, desc="a_lol",
                  disable=not c.progress_bar or not setup.is_main_process())
  for step in bar:
    t0 = time.time()
    idx = draw(step)[rows]
    batch = {k: v[idx] for k, v in arrays.items()}
    if mesh is not None:
      batch = sharding.shard_batch(batch, mesh, global_rows=c.batch_size)
    state, m = step_fn(state, batch)
    m = metrics_lib.to_floats(m)
    metrics_lib.check_finite(m, step + 1)
    dt = time.time() - t0
    record = {f"train/{k}": v for k, v in m.items() if k != "tokens"}
    record.update({"perf/tokens_per_s": m["tokens"] / dt, "perf/step_time_s": dt})
    writer.write(step + 1, record)
    if (step + 1) % c.eval_every == 0 or step + 1 == steps:
      accuracy = evaluate(step + 1)
    bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{accuracy:.3f}")
    if ckpt is not None:
      ckpt.save(step + 1, state, {"data_position": list(position), "step": step + 1,
                                  "seed": c.seed}, force=step + 1 == steps)
  if ckpt is not None:
    ckpt.close()
  writer.close()
  if c.export_hf:
    setup.export_hf(os.path.join(c.workdir, "hf"), config, lora.merged(state.params))
  if setup.is_main_process():
    metrics_lib.plot_rewards(writer.path, os.path.join(c.workdir, "curves.png"),
                             keys=("eval/accuracy",))
  return {"eval/accuracy": accuracy, "workdir": c.workdir, "steps": steps,
          "positive_frac": positive_frac, "value/mse_holdout": prep_metrics["value/mse_holdout"]}


def main(argv):
  del argv
  summary = run(_CONFIG.value)
  if setup.is_main_process():
    print(f"final held-out accuracy: {summary['eval/accuracy']:.3f} after {summary['steps']} "
          f"steps ({summary['workdir']})")


if __name__ == "__main__":
  from absl import app
  from ml_collections import config_flags
  _CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file")
  app.run(main)

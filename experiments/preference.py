"""Preference optimisation (DPO, IPO, rDPO, SLiC, SimPO, ORPO, KTO) from a local JSONL.

    python experiments/preference.py --config=configs/dpo_arithmetic.py \
        --config.init_from=/tmp/jaxrl_llm/sft_arithmetic --config.workdir=/tmp/dpo

``config.preference.loss`` names a ``losses.PREFERENCE_LOSSES`` row; its options come
from ``config.preference.loss_kwargs``. Data: ``config.data.path``, a JSONL of
``{"prompt", "chosen", "rejected"}`` pairs (KTO also reads ``{"prompt", "completion",
"label"}``, and unpairs pairs into a desirable and an undesirable response); with an
empty path, wrong-answer pairs of the task's train split are written to
``workdir/preference_pairs_seed<seed>_n<num_pairs>_offset<max_offset>.jsonl`` first. The reference model (losses that need one) is
the initial policy, or its frozen base with LoRA (``config.lora.rank > 0``).

Writes ``workdir/metrics.jsonl`` (train/loss, train/grad_norm, every metric the loss
returns as ``train/<name>``, eval/accuracy of the task's verifier on held-out prompts,
perf/...), Orbax checkpoints in ``workdir/checkpoints`` (``--config.resume=True``
continues from the latest), the final policy as a Hugging Face directory ``workdir/hf``
and ``workdir/curves.png``.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import tqdm  # noqa: E402

from jaxrl_llm import data, losses, sharding, training  # noqa: E402
from jaxrl_llm.data import preference as pdata  # noqa: E402
from jaxrl_llm.losses import preference as pref  # noqa: E402
from jaxrl_llm.models import lora  # noqa: E402
from jaxrl_llm.training import metrics as metrics_lib, rollout, setup  # noqa: E402
from jaxrl_llm.training import preference as tp  # noqa: E402

PAIRS_FILE = "preference_pairs_seed{seed}_n{num}_offset{offset}.jsonl"


def validate(c):
  """Fails fast, before any model is built, on inconsistent or unknown options."""
  p = c.preference
  pref.check_preference_options(p.loss, setup.as_dict(p.loss_kwargs))
  if c.batch_size < 1 or c.batch_size % c.num_micro_batches:
    raise ValueError(f"batch_size={c.batch_size} must be a positive multiple of "
                     f"num_micro_batches={c.num_micro_batches}")
  if c.steps < 1:
    raise ValueError(f"steps must be >= 1, got {c.steps}")
  if c.data.path and not os.path.isfile(c.data.path):
    raise ValueError(f"data.path: JSONL file {c.data.path!r} does not exist")
  if c.data.format not in pdata.PREFERENCE_FORMATS:
    raise ValueError(f"data.format must be one of {pdata.PREFERENCE_FORMATS}, got "
                     f"{c.data.format!r}")
  if c.init_from:
    setup.resolve_hf_dir(c.init_from)
  if c.model.get("hf_dir"):
    setup.resolve_hf_dir(c.model.hf_dir)
  ckpt_dir = os.path.join(c.workdir, "checkpoints")
  if c.resume and not (os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir)):
    raise ValueError(f"resume=True but there is no checkpoint directory {ckpt_dir!r}")
  setup.build_task(c.task, "test")
  setup.build_reward_fn(c.task)
  setup.lora_config(c)


def data_path(c) -> str:
  """``c.data.path``, or the generated wrong-answer pairs of the task's train split
  (deterministic in ``c.seed``; written by process 0 when missing)."""
  if c.data.path:
    return c.data.path
  path = os.path.join(c.workdir, PAIRS_FILE.format(seed=c.seed, num=c.data.num_pairs,
                                                     offset=c.data.max_offset))
  if setup.is_main_process() and not os.path.isfile(path):
    source = setup.build_task(c.task, "train")
    examples = source.examples(c.seed, 0, c.data.num_pairs)
    pdata.write_preference_jsonl(path, pdata.wrong_answer_pairs(
        examples, c.seed, max_offset=c.data.max_offset))
  sharding_sync("jaxrl_llm.preference.data")
  return path


def sharding_sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def load_records(c, entry: pref.PreferenceLoss) -> list:
  """The training records in the form the loss reads (pairs, or labelled responses)."""
  path = data_path(c)
  records = pdata.load_preference_jsonl(path, format=c.data.format)
  is_pair = isinstance(records[0], pdata.PreferencePair)
  if entry.paired and not is_pair:
    raise ValueError(f"preference loss {c.preference.loss!r} needs pairs "
                     f"{{'prompt', 'chosen', 'rejected'}}, but {path!r} holds labelled "
                     f"responses {{'prompt', 'completion', 'label'}} (only 'kto' reads those)")
  if not entry.paired and is_pair:
    records = pdata.unpair(records)
  return records


def make_batch(c, entry, tokenizer, items) -> dict:
  build = tp.preference_batch if entry.paired else tp.unpaired_batch
  try:
    return build(tokenizer, items, c.max_length, c.task.add_bos)
  except ValueError as e:
    raise ValueError(f"config.max_length={c.max_length} is too short: {e}") from None


def run(c) -> dict:
  validate(c)
  setup.init_process(c)  # before anything touches a device
  os.makedirs(c.workdir, exist_ok=True)
  p = c.preference
  entry = losses.get_preference_loss(p.loss)
  records = load_records(c, entry)
  config, params, tokenizer, _ = setup.build_model(c.model, c.init_from, c.seed)
  source = data.ListSource(records, shuffle=True)
  eval_set = setup.eval_examples(c.task, c.eval_size)
  reward_fn = setup.build_reward_fn(c.task)
  stops = setup.stop_tokens(config, tokenizer)
  mesh, params = setup.shard_on_mesh(c.get("mesh"), config, params)
  setup.check_distributed_mesh(mesh)
  params, lora_cfg = setup.apply_lora(c, params, config, mesh)
  # The reference is the initial policy: a copy (the update donates the state's buffers),
  # or nothing with LoRA (the step reads the frozen base of the state).
  ref_params = (jax.tree.map(jnp.copy, params)
                if entry.needs_reference and lora_cfg is None else None)
  policy_view = setup.sampling_view(lora_cfg)
  optimizer = setup.build_optimizer(c.optim, c.steps)
  state = training.init_train_state(params, optimizer)
  steps = tp.make_preference_step(config, optimizer, loss=p.loss,
                                  loss_kwargs=setup.as_dict(p.loss_kwargs),
                                  num_micro_batches=c.num_micro_batches, mesh=mesh)
  update = jax.jit(steps.update, donate_argnums=0)
  start, state, position, writer, ckpt = setup.open_run(c, state)

  def evaluate(step):
    ev = rollout.evaluate(config, policy_view(state.params), tokenizer, eval_set, reward_fn,
                          max_new_tokens=c.max_new_tokens, stop_tokens=stops,
                          add_bos=c.task.add_bos, mesh=mesh)
    writer.write(step, {"eval/accuracy": ev["accuracy"], "eval/reward_mean": ev["reward_mean"]})
    return ev["accuracy"]

  initial_accuracy = evaluate(0) if start == 0 and c.eval_at_start else None
  accuracy = initial_accuracy if initial_accuracy is not None else float("nan")
  bar = tqdm.tqdm(range(start, c.steps), initial=start, total=c.steps, desc=f"pref[{p.loss}]",
                  disable=not c.progress_bar or not setup.is_main_process())
  for step in bar:
    t0 = time.time()
    items, _, position = setup.process_examples(source, position, c.batch_size, mesh)
    batch = make_batch(c, entry, tokenizer, items)
    if mesh is not None:
      batch = sharding.shard_batch(batch, mesh, global_rows=c.batch_size)
    state, m = update(state, batch, ref_params)
    m = metrics_lib.to_floats(m)
    metrics_lib.check_finite(m, step + 1)
    dt = time.time() - t0
    record = {f"train/{k}": v for k, v in m.items() if k != "tokens"}
    record.update({"perf/tokens_per_s": m["tokens"] / dt, "perf/step_time_s": dt})
    writer.write(step + 1, record)
    if (step + 1) % c.eval_every == 0 or step + 1 == c.steps:
      accuracy = evaluate(step + 1)
    bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{accuracy:.3f}")
    ckpt.save(step + 1, state, {"data_position": list(position), "step": step + 1,
                                "seed": c.seed},
              force=step + 1 == c.steps)
  ckpt.close()
  writer.close()
  if c.export_hf:
    setup.export_hf(os.path.join(c.workdir, "hf"), config, lora.merged(state.params))
  if setup.is_main_process():
    metrics_lib.plot_rewards(writer.path, os.path.join(c.workdir, "curves.png"),
                             keys=("eval/accuracy",))
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

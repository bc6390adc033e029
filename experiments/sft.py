"""Supervised fine-tuning on a verifiable task's reference completions.

    python experiments/sft.py --config=configs/sft_arithmetic.py --config.workdir=/tmp/sft

Writes ``workdir/metrics.jsonl`` (train/loss, eval/accuracy ...), Orbax
checkpoints in ``workdir/checkpoints`` (``--config.resume=True`` continues
from the latest), the final policy as a Hugging Face directory ``workdir/hf``
and a plot ``workdir/curves.png``. Multi-process (TPU pod, several GPU hosts):
the same command on every process with ``--config.distributed=True`` and a
``--config.mesh`` (docs/launch.md); each process loads only its rows of a batch.
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

from jaxrl_llm import data, models, sharding, training  # noqa: E402
from jaxrl_llm.models import lora  # noqa: E402
from jaxrl_llm.losses import pear as pear_lib  # noqa: E402
from jaxrl_llm.training import metrics as metrics_lib, rollout, setup  # noqa: E402
from jaxrl_llm.training.sft import behavior_logprobs_from_examples  # noqa: E402

PEAR_BEHAVIORS = ("init", "data")
PEAR_OPTIONS = ("mode", "gamma", "clip_low", "clip_high", "block_size", "log_weight_clip")


def pear_config(c):
  """``None`` (plain SFT: no ``pear`` block, or ``pear.enabled`` False) or
  ``(behavior, options)`` for PEAR's importance-weighted SFT (configs/pear_arithmetic.py).

  ``behavior``: where ``pi_beta`` (the policy that generated the SFT data) comes from:
  ``"init"`` a frozen copy of the initial model (our synthetic tasks' reference answers
  were not sampled from any model, so the initial policy stands in for it), ``"data"``
  per-token log-probs in each example's ``metadata["behavior_logprobs"]``.
  ``options``: the keyword options of ``losses.pear.pear_weights``, checked here.
  """
  block = c.get("pear")
  if block is None or not block.get("enabled", False):
    return None
  behavior = block.get("behavior", "init")
  if behavior not in PEAR_BEHAVIORS:
    raise ValueError(f"pear.behavior must be one of {PEAR_BEHAVIORS}, got {behavior!r}")
  options = {k: block[k] for k in PEAR_OPTIONS if k in block}
  if "log_weight_clip" in options:
    options["log_weight_clip"] = tuple(float(x) for x in options["log_weight_clip"])
  try:  # every option checked before anything is built
    pear_lib.pear_weights(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones((1, 2)), **options)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.pear: {e}") from None
  return behavior, options


def validate(c):
  if c.batch_size < 1 or c.batch_size % c.num_micro_batches:
    raise ValueError(f"batch_size={c.batch_size} must be a positive multiple of "
                     f"num_micro_batches={c.num_micro_batches}")
  if c.steps < 1:
    raise ValueError(f"steps must be >= 1, got {c.steps}")
  if c.init_from:
    setup.resolve_hf_dir(c.init_from)
  ckpt_dir = os.path.join(c.workdir, "checkpoints")
  if c.resume and not (os.path.isdir(ckpt_dir) and os.listdir(ckpt_dir)):
    raise ValueError(f"resume=True but there is no checkpoint directory {ckpt_dir!r}")
  setup.lora_config(c)
  pear_config(c)


def run(c) -> dict:
  validate(c)
  setup.init_process(c)  # before anything touches a device
  os.makedirs(c.workdir, exist_ok=True)
  config, params, tokenizer, _ = setup.build_model(c.model, c.init_from, c.seed)
  train_source = setup.build_task(c.task, "train")
  eval_set = setup.eval_examples(c.task, c.eval_size)
  reward_fn = setup.build_reward_fn(c.task)
  stops = setup.stop_tokens(config, tokenizer)
  mesh, params = setup.shard_on_mesh(c.get("mesh"), config, params)
  setup.check_distributed_mesh(mesh)
  pear = pear_config(c)
  behavior_params = behavior_fn = None
  if pear is not None and pear[0] == "init":
    # pi_beta = the initial model, frozen (a copy: the train step donates the state).
    behavior_params = jax.tree.map(jnp.copy, params)
    behavior_fn = jax.jit(lambda p, tokens, attn: training.sequence_logprobs(
        config, p, tokens, attn, mesh=mesh).logprobs)
  params, lora_cfg = setup.apply_lora(c, params, config, mesh)
  policy_view = setup.sampling_view(lora_cfg)
  optimizer = setup.build_optimizer(c.optim, c.steps)
  state = training.init_train_state(params, optimizer)
  step_fn = jax.jit(training.make_sft_step(config, optimizer,
                                           num_micro_batches=c.num_micro_batches, mesh=mesh,
                                           pear=None if pear is None else pear[1]),
                    donate_argnums=0)
  start, state, position, writer, ckpt = setup.open_run(c, state)

  def evaluate(step):
    ev = rollout.evaluate(config, policy_view(state.params), tokenizer, eval_set, reward_fn,
                          max_new_tokens=c.max_new_tokens, stop_tokens=stops,
                          add_bos=c.task.add_bos, mesh=mesh)
    writer.write(step, {"eval/accuracy": ev["accuracy"], "eval/reward_mean": ev["reward_mean"]})
    return ev["accuracy"]

  accuracy = float("nan")
  bar = tqdm.tqdm(range(start, c.steps), initial=start, total=c.steps, desc="sft",
                  disable=not c.progress_bar or not setup.is_main_process())
  for step in bar:
    t0 = time.time()
    examples, rows, position = setup.process_examples(train_source, position, c.batch_size,
                                                      mesh)
    echo = None
    if c.echo_fraction:  # imperfect demonstrations, drawn per step (resume-safe)
      echo = (np.random.default_rng([c.seed, step]).random(c.batch_size)
              < c.echo_fraction)[rows]
    try:
      batch = training.sft_batch(tokenizer, examples, c.max_length, c.task.add_bos, echo)
    except ValueError as e:
      raise ValueError(f"config.max_length={c.max_length} is too short: {e}") from None
    if pear is not None and pear[0] == "data":
      batch["behavior_logprobs"] = behavior_logprobs_from_examples(examples, batch)
    if mesh is not None:
      batch = sharding.shard_batch(batch, mesh, global_rows=c.batch_size)
    if behavior_fn is not None:
      batch["behavior_logprobs"] = behavior_fn(behavior_params, batch["tokens"],
                                               batch["attention_mask"])
    state, m = step_fn(state, batch)
    m = metrics_lib.to_floats(m)
    metrics_lib.check_finite(m, step + 1)
    dt = time.time() - t0
    record = {"train/loss": m["loss"], "train/grad_norm": m["grad_norm"],
              "perf/tokens_per_s": m["tokens"] / dt, "perf/step_time_s": dt}
    if pear is not None:  # the weighted loss, the plain NLL and PEAR's weight statistics
      record.update({"train/nll": m["nll"]},
                    **{f"train/{k}": v for k, v in m.items() if k.startswith("pear_")})
    writer.write(step + 1, record)
    if (step + 1) % c.eval_every == 0 or step + 1 == c.steps:
      accuracy = evaluate(step + 1)
    bar.set_postfix(loss=f"{m['loss']:.3f}", acc=f"{accuracy:.3f}",
                    tok_s=f"{record['perf/tokens_per_s']:.0f}")
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
  return {"eval/accuracy": accuracy, "workdir": c.workdir}


def main(argv):
  del argv
  summary = run(_CONFIG.value)
  if setup.is_main_process():
    print(f"final held-out accuracy: {summary['eval/accuracy']:.3f}  ({summary['workdir']})")


if __name__ == "__main__":
  from absl import app
  from ml_collections import config_flags
  _CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file")
  app.run(main)

"""The offline agents' training loop: ``train(config) -> TrainResult(state, summary)``.

DESIGN.md layering: "offline agents' loops", beside ``training`` (and, like all
of ``offline/``, without the LLM stack). One run of one agent on one dataset,
configured by an experiment config (configs/offline/base.py and its recipes):

1. check the config (step counts, intervals, agent and dataset format names);
2. claim the workdir: a used one is refused, resumed (``resume``) or deleted
   (``overwrite``), by the rule every loop shares (``jaxrl_llm.runs.workdir``);
   a resumed run's saved ``config.json`` must match (``RESUME_MAY_DIFFER`` aside);
3. prepare the data (``offline.prepare``: load, corrupt, clip, scale; with a
   ``config.expert`` block the expert + mixed parts of ``offline.imitation``);
4. ``agent.init``, then restore the latest checkpoint when resuming;
5. train with ``update_n`` chunks of ``steps_per_call`` updates on
   device-sampled batches; log every ``log_interval``, evaluate in the
   environment every ``eval_interval``, checkpoint every ``checkpoint_interval``
   (and at the end);
6. write ``scores.json``, print the score table and plot ``curves.png``.

A resumed run continues with the same parameters, optimiser state and batch
stream as an uninterrupted one: the batch keys are a chain of splits of
``config.seed``, one per ``update_n`` call, replayed up to the checkpoint.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional

import jax
import numpy as np
import tqdm

from jaxrl_llm.offline import agents
from jaxrl_llm.offline import datasets
from jaxrl_llm.offline import future_goals, imitation, ogbench_data
from jaxrl_llm.offline import prepare
from jaxrl_llm.offline import report
from jaxrl_llm.offline.types import Transitions
from jaxrl_llm.runs import metrics as metrics_lib
from jaxrl_llm.runs import workdir as workdir_lib
from jaxrl_llm.runs.checkpoint import Checkpointer, committed_steps

# Config keys that may change between a run and its resumption: they do not
# change what is trained (only logging, evaluation and checkpoint cadence).
RESUME_MAY_DIFFER = ("workdir", "progress_bar", "log_interval", "eval_interval",
                     "eval_episodes", "eval_seed", "checkpoint_interval",
                     "checkpoints_to_keep", "resume", "overwrite", "async_checkpointing",
                     "minari_datasets_path", "tensorboard", "wandb", "wandb_project",
                     "wandb_mode")

# What an offline run writes that a new run must not mix into (overwrite deletes them).
RUN_FILES = workdir_lib.RUN_FILES + ("scores.json",)


class TrainResult(NamedTuple):
  """The final agent state and the run's summary (also in ``<workdir>/scores.json``)."""

  state: Any
  summary: Dict[str, Any]


def check_config(config) -> None:
  """Raises a ValueError naming the field for bad step counts, intervals, agent or format."""
  if config.max_steps <= 0 or config.steps_per_call <= 0:
    raise ValueError("config.max_steps and config.steps_per_call must be positive")
  if config.max_steps % config.steps_per_call:
    raise ValueError(
        f"config.max_steps ({config.max_steps}) must be a multiple of config.steps_per_call "
        f"({config.steps_per_call})")
  for name in ("log_interval", "eval_interval", "checkpoint_interval"):
    interval = config[name]
    if interval > 0 and interval % config.steps_per_call:
      raise ValueError(
          f"config.{name} ({interval}) must be a multiple of config.steps_per_call "
          f"({config.steps_per_call})")
  agents.get(config.agent_name)  # an unknown agent lists the known ones
  datasets.resolve_format(config.dataset_format, config.dataset_path)


def agent_config(config, agent):
  """The agent's ``get_config()`` updated by the recipe's ``agent`` block; the
  cosine-decay horizon (``max_steps``, where the agent has one) = the run length."""
  cfg = agent.get_config()
  cfg.update(config.agent.to_dict())
  if "max_steps" in cfg:
    cfg.max_steps = config.max_steps
  return cfg


def check_resumable_config(config, workdir: str) -> None:
  """Raises ValueError naming the fields where ``config`` differs from the saved run."""
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise ValueError(f"{workdir} has checkpoints but no config.json; cannot check the resume")
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  current = json.loads(config.to_json_best_effort())
  differing = sorted(k for k in set(saved) | set(current)
                     if k not in RESUME_MAY_DIFFER and saved.get(k) != current.get(k))
  if differing:
    details = "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in differing)
    raise ValueError(
        f"cannot resume {workdir}: config field(s) {differing} differ from the saved run "
        f"({details}); use a new config.workdir")


def make_evaluator(config) -> Optional[Callable]:
  """``evaluate(act_fn, num_episodes, seed) -> returns [num_episodes]``, or None when
  ``eval_episodes`` is 0 or no ``env_name`` is set (jaxrl_llm.offline.evaluation)."""
  if config.eval_episodes <= 0 or not config.env_name:
    return None
  from jaxrl_llm.offline import evaluation

  def evaluate(act_fn, episodes, seed):
    result = evaluation.evaluate_policy(act_fn, config.env_name, episodes, seed=seed)
    return np.asarray(result["returns"], np.float64)

  return evaluate


def restore_state(workdir: str, template_state, step: Optional[int] = None):
  """Restores the agent state saved by ``train`` (latest committed step unless given).

  ``template_state`` is any state of the same agent and shapes (e.g. from
  ``agent.init``); its static config is kept, the arrays come from disk.
  """
  directory = os.path.join(workdir, "checkpoints")
  steps = committed_steps(directory)
  if not steps:
    raise FileNotFoundError(f"no committed checkpoint under {directory}")
  checkpointer = Checkpointer(directory)
  try:
    state, _ = checkpointer.restore(steps[-1] if step is None else step, template_state)
  finally:
    checkpointer.close()
  return state


def training_rows(train_data) -> Dict[str, Any]:
  """``{"num_transitions": n}`` of the data a run samples from, plus
  ``"num_transitions_by_part"`` for a two-part (expert / mixed) dataset."""
  if isinstance(train_data, Transitions):
    return {"num_transitions": int(train_data.observations.shape[0])}
  if isinstance(getattr(train_data, "transitions", None), Transitions):  # future-goal data
    return {"num_transitions": int(train_data.transitions.observations.shape[0])}
  parts = {name: int(getattr(train_data, name).observations.shape[0])
           for name in train_data._fields}
  return {"num_transitions": sum(parts.values()), "num_transitions_by_part": parts}


def train(config) -> TrainResult:
  """Trains one agent as configured (see the module docstring); returns its final state and
  the summary written to ``<workdir>/scores.json``."""
  check_config(config)
  workdir = config.workdir
  os.makedirs(workdir, exist_ok=True)
  workdir_lib.claim_workdir(config, RUN_FILES)  # before the (possibly long) data preparation
  if config.resume:
    check_resumable_config(config, workdir)
  workdir_lib.write_atomic(os.path.join(workdir, "config.json"),
                           config.to_json_best_effort(indent=2))

  agent = agents.get(config.agent_name)
  if config.get("ogbench") is not None:  # OGBench data made locally from its recipe, once
    ogbench_data.ensure_dataset(config)
  data, corruption_masks, corruption_info = prepare.preprocess(
      config, prepare.load_dataset(config), config.progress_bar)
  data = datasets.validate_transitions(data, "training data")
  # With a `config.expert` block (ReCOIL): expert + mixed parts and their two samplers.
  train_data, sample_fn = imitation.training_data(
      config, data, lambda source: prepare.clean_and_scale(config, prepare.load_dataset(source)))
  if config.get("future_goals") is not None:  # TD-JEPA: goals = future states of the trajectory
    if config.get("expert") is not None:
      raise ValueError("config.expert and config.future_goals cannot be combined")
    train_data, sample_fn = future_goals.training_data(config, data)
  device_data = jax.device_put(train_data)
  key, init_key = jax.random.split(jax.random.key(config.seed))
  state = agent.init(init_key, future_goals.example_batch(device_data), agent_config(config, agent))
  sample = jax.jit(lambda k, d: sample_fn(k, d, config.batch_size, config.steps_per_call))

  run = workdir_lib.open_run(config, state, checkpoint_every=config.checkpoint_interval,
                             keep=config.checkpoints_to_keep, run_files=RUN_FILES)
  state, step, writer, checkpointer = run.state, run.start, run.writer, run.checkpointer
  for _ in range(step // config.steps_per_call):  # replay the batch keys up to the checkpoint
    key, _ = jax.random.split(key)
  rows = metrics_lib.read_metrics(writer.path) if run.resumed_from is not None else []
  train_rows: List[Dict[str, float]] = [r for r in rows if any(k.startswith("train/") for k in r)]
  eval_rows: List[Dict[str, float]] = [r for r in rows if any(k.startswith("eval/") for k in r)]
  evaluate = make_evaluator(config)
  zero_shot = ogbench_data.make_zero_shot_evaluator(config)  # TD-JEPA: act needs a task z
  if zero_shot is not None:
    evaluate = zero_shot
  local_ref = report.local_reference(config)

  def run_eval(step):
    if zero_shot is not None:
      row = zero_shot(agent, state)
      writer.write(step, row)
      eval_rows.append({"step": step, **row})
      return row
    act_fn = lambda obs, k: np.asarray(agent.act(state, obs, k, deterministic=True))
    returns = evaluate(act_fn, config.eval_episodes, config.eval_seed)
    scores = datasets.normalized_score(returns, config.ref_min_score, config.ref_max_score)
    row = {"eval/return_mean": float(np.mean(returns)), "eval/return_std": float(np.std(returns)),
           "eval/normalized_score": float(np.mean(scores)),
           "eval/normalized_score_std": float(np.std(scores))}
    if local_ref is not None:
      row["eval/local_normalized_score"] = float(np.mean(datasets.normalized_score(
          returns, local_ref["random"], local_ref["expert"])))
    writer.write(step, row)
    eval_rows.append({"step": step, **row})
    return row

  start = time.perf_counter()
  bar = tqdm.tqdm(total=config.max_steps, initial=step, desc=f"{config.agent_name}", unit="upd",
                  disable=not config.progress_bar, mininterval=1.0)
  while step < config.max_steps:
    key, batch_key = jax.random.split(key)
    t0 = time.perf_counter()
    state, metrics = agent.update_n(state, sample(batch_key, device_data))
    metrics = jax.tree.map(lambda x: float(np.mean(x)), jax.device_get(metrics))
    elapsed = time.perf_counter() - t0
    step += config.steps_per_call
    bar.update(config.steps_per_call)
    if config.log_interval > 0 and step % config.log_interval == 0:
      row = {**{f"train/{k}": v for k, v in metrics.items()},
             "train/updates_per_s": config.steps_per_call / elapsed}
      writer.write(step, row)
      train_rows.append({"step": step, **row})
      bar.set_postfix(critic=metrics.get("critic_loss", float("nan")),
                      actor=metrics.get("actor_loss", float("nan")))
      if not all(np.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite training metrics at step {step}: {metrics}")
    if evaluate is not None and config.eval_interval > 0 and step % config.eval_interval == 0:
      row = run_eval(step)
      bar.set_postfix(score=row.get("eval/normalized_score", row.get("eval/success_mean")))
    if checkpointer is not None and (step % config.checkpoint_interval == 0
                                     or step == config.max_steps):
      checkpointer.save(step, state, {"step": step, "seed": config.seed}, force=True)
  bar.close()
  if evaluate is not None and (not eval_rows or eval_rows[-1]["step"] != step):
    run_eval(step)
  if checkpointer is not None:
    checkpointer.close()
  writer.close()

  summary = {
      "agent": config.agent_name, "env_name": config.env_name,
      "dataset": config.dataset_path or config.dataset_format, "seed": config.seed,
      "steps": step, "wall_s": time.perf_counter() - start, "resumed_from": run.resumed_from,
      # What the loop samples from (a few-expert baseline: its one part, not `data`).
      **training_rows(train_data),
      "corrupted": {k: float(np.mean(v)) for k, v in corruption_masks.items()},
      "corruption": {"mode": config.corruption.mode, **corruption_info}
                    if config.corruption.fields else {},
      "reference": {"d4rl": [config.ref_min_score, config.ref_max_score], "local": local_ref},
      "final_train": train_rows[-1] if train_rows else {},
      "evaluations": eval_rows,
  }
  workdir_lib.write_atomic(os.path.join(workdir, "scores.json"), json.dumps(summary, indent=2))
  print(report.score_table(summary))
  report.plot_curves(train_rows, eval_rows, os.path.join(workdir, "curves.png"),
                     title=f"{config.agent_name} on {summary['dataset']}")
  return TrainResult(state, summary)

"""Builds the pieces an experiment config names: model + tokenizer, task sources,
reward function, optimiser. Validates the config up front with clear errors."""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable, NamedTuple

import jax

from jaxrl_llm import data, models, rewards, sharding
from jaxrl_llm.models import lora
from jaxrl_llm.runs.host_memory import keep_freed_host_memory
from jaxrl_llm.runs.cpu_devices import split_cpu_devices
from jaxrl_llm.runs.workdir import RUN_FILES, clear_run, previous_run  # noqa: F401 (re-exported)
from jaxrl_llm.training.optim import make_optimizer
from jaxrl_llm.training.batch import place_batch

TASKS = ("arithmetic", "countdown", "jsonl")


def as_dict(x) -> dict:
  """A plain dict from a ConfigDict, a mapping or None (-> {})."""
  if x is None:
    return {}
  return dict(x.to_dict() if hasattr(x, "to_dict") else x)


def resolve_hf_dir(path: str) -> str:
  """A Hugging Face directory, or an experiment workdir whose ``hf/`` holds the exported policy."""
  if not path:
    raise ValueError("empty checkpoint path")
  if not os.path.isdir(path):
    raise ValueError(f"checkpoint directory {path!r} does not exist")
  if os.path.isfile(os.path.join(path, "config.json")):
    return path
  sub = os.path.join(path, "hf")
  if os.path.isfile(os.path.join(sub, "config.json")):
    return sub
  raise ValueError(f"{path!r} is neither a Hugging Face checkpoint directory (config.json) nor "
                   f"an experiment workdir with an exported hf/ directory")


def load_tokenizer(hf_dir: str | None):
  if hf_dir and os.path.isfile(os.path.join(hf_dir, "tokenizer.json")):
    return models.HFTokenizer(hf_dir)
  return models.CharTokenizer()


def build_model(model_cfg, init_from: str, seed: int):
  """``(config, params, tokenizer, source)``: from ``init_from`` / ``model.hf_dir`` or a random preset."""
  hf_dir = init_from or model_cfg.get("hf_dir", "")
  if hf_dir:
    hf_dir = resolve_hf_dir(hf_dir)
    config, params = models.load_hf(hf_dir)
    return config, params, load_tokenizer(hf_dir), hf_dir
  tokenizer = models.CharTokenizer()
  config = models.get_preset(model_cfg.preset, vocab_size=tokenizer.vocab_size,
                             bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                             pad_token_id=tokenizer.pad_id, **as_dict(model_cfg.get("overrides")))
  params = models.init_params(config, jax.random.key(seed))
  return config, params, tokenizer, None


def lora_config(c):
  """The run's ``models.lora.LoraConfig`` from ``c.lora`` (None: no block or ``rank`` 0)."""
  return lora.from_config(c.get("lora"))


def apply_lora(c, params, config=None, mesh=None):
  """``(params, lora_config)``: ``params`` wrapped in ``lora.LoraParams`` (frozen base,
  fresh adapters from ``fold_in(key(c.seed), 1)``) when ``c.lora.rank`` > 0, else as is.
  With a ``mesh`` (and the model ``config``) the adapters are placed by the training
  rules (``lora.logical_axes``: each factor split like its kernel's axes)."""
  cfg = lora_config(c)
  if cfg is None:
    return params, None
  wrapped = lora.wrap(cfg, params, jax.random.fold_in(jax.random.key(c.seed), 1))
  if mesh is not None:
    adapters = jax.device_put(wrapped.adapters, sharding.tree_shardings(
        lora.logical_axes(config, wrapped.adapters), wrapped.adapters, mesh))
    wrapped = wrapped.replace(adapters=adapters)
  return wrapped, cfg


def sampling_view(lora_cfg):
  """``state.params -> params for the sampler``: identity without LoRA, else the merged
  weights (jitted; one merge per rollout) or the unmerged adapters (``lora.merged_sampling``)."""
  if lora_cfg is None:
    return lambda params: params
  if lora_cfg.merged_sampling:
    return jax.jit(lora.for_sampling)
  return lambda params: lora.for_sampling(params, merged_weights=False)


def shard_on_mesh(mesh_shape, config, params):
  """``(mesh, params)``: the ``(data, fsdp, tensor)`` mesh of ``mesh_shape`` with the
  params sharded on it by the training rules, or ``(None, params)`` when it is empty."""
  if not mesh_shape:
    return None, params
  mesh = sharding.make_mesh(*mesh_shape)
  return mesh, sharding.shard_params(params, config, mesh)


def commit_state(tree, mesh):
  """``tree`` with every array committed where a jitted step on ``mesh`` returns it.

  Leaves already laid out on ``mesh`` stay; any other leaf is replicated over it
  (``mesh`` None: put on the default device). An uncommitted leaf (the optimiser's
  step count from ``jnp.zeros``) comes back from the first update committed, so the
  second call would compile the update again (measured 5-6 s with the
  ``benchmarks/rl_step_vs_trl.py`` update on a CPU split in 2 devices). On several
  processes ``tree`` is returned as it is.
  """
  if jax.process_count() > 1:
    return tree
  if mesh is None:
    return jax.device_put(tree, jax.devices()[0])
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())

  def put(x):
    s = getattr(x, "sharding", None)
    if isinstance(s, jax.sharding.NamedSharding) and s.mesh == mesh:
      return x
    return jax.device_put(x, replicated)

  return jax.tree.map(put, tree)


class RolloutPlacement(NamedTuple):
  """Where the sampler runs, and the two moves between it and the trainer.

  ``mesh``: the rollout mesh (None: the default device). ``to_rollout(params)``: the
  sampler's params laid out there; ``to_train(batch)``: a `RolloutBatch` laid out for
  the update (`training.place_batch` on the training mesh, or the default device).
  """
  mesh: Any
  to_rollout: Callable
  to_train: Callable


def rollout_placement(c, config, train_mesh) -> RolloutPlacement:
  """The sampler's placement from ``c.rollout_mesh`` (unset or ``()``: the training mesh
  ``c.mesh``, or the default device without one).

  A rollout mesh other than the training mesh suits a CPU split in devices
  (``c.cpu_devices``): decoding (one token per row a step: small ops) runs faster as
  data-parallel streams, while a data-parallel update waits in its gradient all-reduce
  whenever one device falls behind, and the waiting device holds a core. Measured on
  a 2-vCPU AMD EPYC (family 26), the ``benchmarks/rl_step_vs_trl.py`` step, 30 steps
  each (docs/results/rl_step_vs_trl_2026-12-06.txt): one device: rollout 0.204 s,
  update 0.316 s; ``cpu_devices=2, mesh=(2, 1, 1)``: rollout 0.139 s, update 0.31 s
  on 17 steps and 1.23 s on 13 (mean step 0.86 s); ``cpu_devices=2,
  rollout_mesh=(2, 1, 1), mesh=()``: rollout 0.137 s (1 ms of it to copy the params),
  update 0.311 s on one device with both cores (mean step 0.45 s). One process only.
  """
  shape = tuple(c.get("rollout_mesh", None) or ())
  if not shape or shape == tuple(c.get("mesh") or ()):
    to_train = ((lambda b: b) if train_mesh is None else
                (lambda b: place_batch(b, train_mesh)))
    return RolloutPlacement(train_mesh, lambda p: p, to_train)
  if jax.process_count() > 1:
    raise ValueError(f"config.rollout_mesh={tuple(shape)} differs from config.mesh, which "
                     f"only one process supports; this run has {jax.process_count()}")
  try:
    mesh = sharding.make_mesh(*shape)
  except (TypeError, ValueError) as e:
    raise ValueError(f"config.rollout_mesh={shape!r}: {e}") from None
  plain = sharding.param_shardings(config, mesh)  # computed once (~40 ms)
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  # Plain params by the rules; other trees (unmerged LoRA views) replicated.
  to_rollout = lambda p: jax.device_put(
      p, plain if jax.tree.structure(p) == jax.tree.structure(plain) else replicated)
  if train_mesh is None:
    dev = jax.devices()[0]
    to_train = lambda b: jax.device_put(b, dev)
  else:
    to_train = lambda b: place_batch(b, train_mesh)
  return RolloutPlacement(mesh, to_rollout, to_train)


def build_task(task_cfg, split: str):
  """A data source (``examples(seed, start, count)``) for ``split``.

  Training-split options (1-shot RLVR, ``data.one_shot``): ``task.pool_size`` > 0 makes
  a generator task a finite set of its first ``pool_size`` examples of stream
  ``task.pool_seed`` (reshuffled every epoch; item i = example i); ``task.only_examples``
  (indices into the finite set / JSONL items, or the generator's stream
  ``task.pool_seed``) keeps only those examples, cycled so one index fills every batch.
  """
  source = _task_source(task_cfg, split)
  if split != "train":
    return source
  from jaxrl_llm.data import one_shot
  pool, seed = int(task_cfg.get("pool_size", 0) or 0), int(task_cfg.get("pool_seed", 0) or 0)
  if pool < 0:
    raise ValueError(f"task.pool_size must be >= 0, got {pool}")
  if pool and not isinstance(source, data.ListSource):
    source = one_shot.finite_pool(source, pool, seed=seed)
  only = tuple(task_cfg.get("only_examples", ()) or ())
  if only:
    try:
      source = one_shot.only_examples_source(source, only, seed=seed)
    except ValueError as e:
      raise ValueError(f"task.only_examples: {e}") from None
  return source


def _task_source(task_cfg, split: str):
  name = task_cfg.name
  if name == "arithmetic":
    return data.ArithmeticTask(digits=task_cfg.digits, min_digits=task_cfg.min_digits,
                               operators=task_cfg.operators, split=split,
                               test_fraction=task_cfg.test_fraction)
  if name == "countdown":
    return data.CountdownTask(num_numbers=task_cfg.num_numbers, max_number=task_cfg.max_number,
                              max_target=task_cfg.max_target, operators=task_cfg.operators,
                              split=split, test_fraction=task_cfg.test_fraction)
  if name == "jsonl":
    path = task_cfg.test_path if split == "test" and task_cfg.get("test_path") else task_cfg.path
    if not path or not os.path.isfile(path):
      raise ValueError(f"task.path: JSONL file {path!r} does not exist")
    items = data.load_jsonl(path, prompt_template=task_cfg.get("prompt_template", "{question}"))
    return data.ListSource(items, shuffle=split == "train")
  raise ValueError(f"unknown task.name {name!r}; known: {', '.join(TASKS)}")


def eval_examples(task_cfg, num: int):
  source = build_task(task_cfg, "test")
  if isinstance(source, data.ListSource):
    return list(source.items)[:num]
  return data.distinct_examples(source, num, seed=12345)


def build_reward_fn(task_cfg):
  return rewards.get_reward_fn(task_cfg.reward)


def build_optimizer(optim_cfg, total_steps: int):
  return make_optimizer(optim_cfg.learning_rate, warmup_steps=optim_cfg.warmup_steps,
                        total_steps=total_steps, end_factor=optim_cfg.end_factor,
                        weight_decay=optim_cfg.weight_decay,
                        max_grad_norm=optim_cfg.max_grad_norm or None)


def stop_tokens(config, tokenizer) -> tuple:
  ids = set(config.eos_token_ids or ())
  if getattr(tokenizer, "eos_id", None) is not None:
    ids.add(tokenizer.eos_id)
  return tuple(sorted(ids))


def open_run(c, state, *, return_meta: bool = False):
  """Metric writer, checkpointer and start point of an experiment run.

  A workdir that already holds a run (committed checkpoints or metric lines)
  is never mixed into: with ``c.resume`` the latest committed checkpoint is
  restored (refusing one written with a different seed), the data cursor is
  taken from it and the metrics file is truncated after its step; with
  ``c.overwrite`` (not resuming) the old run's checkpoints, metrics and
  TensorBoard events are deleted and the run starts fresh; otherwise it raises
  a ``ValueError`` that says how to resume or overwrite
  (``jaxrl_llm.runs.workdir.open_run``). Returns
  ``(start_step, state, data_position, writer, checkpointer)``.
  """
  from jaxrl_llm.runs import workdir

  # The workdir rule is shared with the offline agents' loop (jaxrl_llm.runs.workdir).
  run = workdir.open_run(c, state, checkpoint_every=c.checkpoint_every,
                         keep=c.keep_checkpoints)
  position = data.DataPosition(c.seed, 0)
  if run.resumed_from is not None:
    position = data.DataPosition(*run.meta["data_position"])
    if is_main_process():
      print(f"resumed from step {run.start} (data cursor {position.cursor})", flush=True)
  if return_meta:
    return run.start, run.state, position, run.writer, run.checkpointer, dict(run.meta or {})
  return run.start, run.state, position, run.writer, run.checkpointer


# ---- multi-process runs ------------------------------------------------------------------


def init_distributed(c) -> bool:
  """``jax.distributed.initialize()`` for a multi-process run (``c.distributed`` or the
  ``JAX_COORDINATOR_ADDRESS`` / ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` environment);
  call it before anything touches a device (``sharding.maybe_initialize_distributed``)."""
  return sharding.maybe_initialize_distributed(bool(c.get("distributed", False)))


def init_process(c) -> bool:
  """What a run sets up before anything touches a device: host memory, then distributed.

  ``c.keep_freed_host_memory`` (default True): `jaxrl_llm.runs.host_memory` (glibc keeps
  XLA:CPU's freed per-call buffers instead of unmapping them; measured 0.69 -> 0.56 s a
  ``benchmarks/rl_step_vs_trl.py`` update on a 2-vCPU Xeon). ``c.cpu_devices`` (default 0:
  JAX's one CPU device): the CPU as that many devices (`jaxrl_llm.runs.cpu_devices`), to
  use with a ``c.mesh`` or ``c.rollout_mesh`` (`rollout_placement`) of that many ``data``
  shards. Returns `init_distributed`'s result.
  """
  if bool(c.get("keep_freed_host_memory", True)):
    keep_freed_host_memory()
  cpu_devices = c.get("cpu_devices", 0) or 0
  if (isinstance(cpu_devices, int) and cpu_devices > 1 and not c.get("mesh")
      and not c.get("rollout_mesh")):
    raise ValueError(f"config.cpu_devices={cpu_devices} splits the CPU into {cpu_devices} "
                     f"devices, which only a mesh uses: give config.mesh or "
                     f"config.rollout_mesh too, e.g. --config.rollout_mesh='({cpu_devices}, 1, 1)'")
  split_cpu_devices(cpu_devices)
  return init_distributed(c)


def check_distributed_mesh(mesh) -> None:
  """Several processes train one model only on a mesh spanning all their devices."""
  if jax.process_count() > 1 and mesh is None:
    raise ValueError(f"this run has {jax.process_count()} processes but config.mesh is empty; "
                     f"give a (data, fsdp, tensor) mesh over all {jax.device_count()} devices, "
                     f"e.g. --config.mesh='(1, -1, 1)'")


def is_main_process() -> bool:
  """Process 0 logs, shows the progress bar, exports and plots; every process checkpoints."""
  return sharding.is_main_process()


def process_examples(source, position, batch_size: int, mesh):
  """``(examples, rows, next_position)``: this process's share of the next global batch.

  The global batch is the ``batch_size`` examples at ``position``; a process loads
  only ``rows`` of it (``sharding.process_rows``: the rows its devices hold; all
  rows without a mesh or on one process), and every process advances the cursor
  by the global ``batch_size``, so a resumed run sees the same data.
  """
  rows = slice(0, batch_size) if mesh is None else sharding.process_rows(mesh, batch_size)
  local = data.DataPosition(position[0], int(position[1]) + rows.start)
  examples, _ = data.take_batch(source, local, rows.stop - rows.start)
  return examples, rows, data.DataPosition(position[0], int(position[1]) + batch_size)


def export_hf(path: str, config, params) -> None:
  """``models.save_hf`` of ``params`` from process 0; every process must call it (the
  parameters of a multi-process mesh are all-gathered first, ``sharding.to_host``)."""
  host = sharding.to_host(params)
  if is_main_process():
    models.save_hf(path, config, host)

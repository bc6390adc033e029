"""Offline RL training entry point (BC / IQL / RIQL / f-DVL / ReCOIL on one dataset).

  python experiments/offline.py --config=configs/offline/iql_hopper.py \
      --config.workdir=/tmp/iql_hopper --config.max_steps=100000

Steps: load the dataset (local Minari id, D4RL-format HDF5, OGBench npz, or a
synthetic smoke-test set), optionally corrupt it (RIQL's random or adversarial
corruption; adversarial observation/action/dynamics corruption first trains the
critic it attacks), preprocess (action clipping, reward scaling), then train
with `update_n` chunks of `steps_per_call` updates on device-sampled batches.
Writes `metrics.jsonl` (training and evaluation lines; TensorBoard events under
`tb/` with config.tensorboard, a W&B run with config.wandb), Orbax checkpoints under
`checkpoints/`, `scores.json`, a final score table on stdout and `curves.png`.

Re-running the same command in the same workdir resumes from the latest
checkpoint (same parameters, optimiser state and batch stream as an
uninterrupted run); a workdir whose saved config differs is refused.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, List, Optional

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=False)


def load_dataset(config):
  """The training set as NumPy-backed Transitions, before corruption/scaling."""
  import numpy as np

  from jaxrl_llm.offline import datasets

  fmt = config.dataset_format
  path = config.dataset_path
  if fmt == "auto":
    if not path:
      raise ValueError(
          "config.dataset_path is empty: give a Minari dataset id, a D4RL .hdf5 or an "
          "OGBench .npz path, or set config.dataset_format='synthetic' for a smoke test")
    if path.endswith((".hdf5", ".h5")):
      fmt = "d4rl_hdf5"
    elif path.endswith(".npz"):
      fmt = "ogbench_npz"
    else:
      fmt = "minari"
  if fmt == "d4rl_hdf5":
    return datasets.load_d4rl_hdf5(path)
  if fmt == "ogbench_npz":
    return datasets.load_ogbench_npz(path)
  if fmt == "minari":
    return datasets.load_minari(path, config.get("minari_datasets_path") or None)
  if fmt == "synthetic":
    return synthetic_dataset(config.synthetic, seed=config.seed)
  raise ValueError(
      f"unknown config.dataset_format {fmt!r}; known: auto, minari, d4rl_hdf5, "
      "ogbench_npz, synthetic")


def synthetic_dataset(spec, seed: int):
  """Episodes of a random linear system with a linear behaviour policy.

  Only for smoke tests of the training loop: no environment matches it.
  """
  import numpy as np

  from jaxrl_llm.offline import datasets

  rng = np.random.default_rng(seed)
  obs_dim, act_dim, length = spec.obs_dim, spec.act_dim, spec.episode_length
  a_mat = np.eye(obs_dim) * 0.9 + rng.normal(size=(obs_dim, obs_dim)) * 0.05
  b_mat = rng.normal(size=(act_dim, obs_dim)) * 0.3
  policy = rng.normal(size=(obs_dim, act_dim)) * 0.3
  episodes = []
  for _ in range(max(1, spec.num_transitions // length)):
    s = rng.normal(size=obs_dim)
    obs, acts, rews = [s], [], []
    for _ in range(length):
      a = np.clip(np.tanh(s @ policy) + rng.normal(size=act_dim) * 0.3, -1, 1)
      s = s @ a_mat + a @ b_mat + rng.normal(size=obs_dim) * 0.01
      acts.append(a)
      rews.append(-float(np.sum(s**2)))
      obs.append(s)
    terminations = np.zeros(length, bool)
    truncations = np.zeros(length, bool)
    truncations[-1] = True
    episodes.append(dict(observations=np.asarray(obs, np.float32),
                         actions=np.asarray(acts, np.float32),
                         rewards=np.asarray(rews, np.float32),
                         terminations=terminations, truncations=truncations))
  return datasets.transitions_from_episodes(episodes, source="synthetic dataset")


def preprocess(config, data, progress_bar: bool = False):
  """Corruption (seeded) → action clipping → reward scaling.

  Returns (data, masks, info): `masks` maps each corrupted field to its boolean
  [N] mask, `info` describes the attacked critic for adversarial corruption.
  """
  import jax

  from jaxrl_llm.offline import datasets

  masks, info = {}, {}
  corruption = config.corruption
  if corruption.fields:
    from jaxrl_llm.offline import corruption as corruption_lib

    if corruption.mode not in ("random", "adversarial"):
      raise ValueError(
          f"unknown config.corruption.mode {corruption.mode!r}; known: 'random', 'adversarial'")
    attack = {}
    if corruption.mode == "adversarial" and set(corruption.fields) - {"rewards"}:
      q_fn, policy_fn, info = train_attack_critic(config, data, progress_bar)
      attack = dict(q_fn=q_fn, policy_fn=policy_fn, steps=corruption.attack_grad_steps,
                    step_size=corruption.attack_step_size)
    data, masks = corruption_lib.corrupt_dataset(
        jax.random.key(config.corruption.seed), data, tuple(corruption.fields),
        corruption.mode, rate=corruption.rate, scale=corruption.scale, **attack)
  return clean_and_scale(config, data), masks, info


def clean_and_scale(config, data):
  """Action clipping (when configured) and the configured reward scaling."""
  from jaxrl_llm.offline import datasets

  if config.clip_actions:
    data = datasets.clip_actions(data)
  return datasets.scale_rewards(data, config.reward_scaling)


def train_attack_critic(config, clean_data, progress_bar: bool = False):
  """The critic that adversarial corruption attacks, trained on the clean data.

  RIQL attacks a pretrained EDAC ensemble; here `corruption.attack_agent` (an
  agent with `q_values`, IQL by default) is trained for `corruption.attack_steps`
  on the clean, preprocessed data, seeded by `corruption.seed`. Returns
  `(q_fn(obs, act) -> [K, N], policy_fn(obs) -> act, info)`; the policy (the
  agent's deterministic action) is what the dynamics attack evaluates at s'.
  """
  import jax
  import numpy as np
  import tqdm

  from jaxrl_llm.offline import agents
  from jaxrl_llm.offline import datasets

  corruption = config.corruption
  agent = agents.get(corruption.attack_agent)
  if not hasattr(agent, "q_values"):
    with_critic = [n for n in agents.names() if hasattr(agents.get(n), "q_values")]
    raise ValueError(
        f"config.corruption.attack_agent {corruption.attack_agent!r} has no critic to attack; "
        f"use one of {with_critic}")
  steps, chunk = corruption.attack_steps, min(config.steps_per_call, corruption.attack_steps)
  if steps <= 0 or steps % chunk:
    raise ValueError(
        f"config.corruption.attack_steps ({steps}) must be a positive multiple of "
        f"config.steps_per_call ({config.steps_per_call}) for adversarial corruption")
  agent_config = agent.get_config()
  agent_config.hidden_dims = tuple(corruption.attack_hidden_dims)
  if "max_steps" in agent_config:
    agent_config.max_steps = steps
  data = jax.device_put(datasets.validate_transitions(
      clean_and_scale(config, clean_data), "attack-critic training data"))
  key, init_key = jax.random.split(jax.random.fold_in(jax.random.key(corruption.seed), 1))
  state = agent.init(init_key, data, agent_config)
  sample = jax.jit(lambda k: datasets.sample_batches(k, data, config.batch_size, chunk))
  start = time.perf_counter()
  metrics = {}
  for _ in tqdm.trange(steps // chunk, desc=f"attack critic ({corruption.attack_agent})",
                       disable=not progress_bar, mininterval=1.0):
    key, batch_key = jax.random.split(key)
    state, metrics = agent.update_n(state, sample(batch_key))
  metrics = {k: float(np.mean(v)) for k, v in jax.device_get(metrics).items()}
  info = {"attack_agent": corruption.attack_agent, "attack_steps": steps,
          "attack_wall_s": time.perf_counter() - start,
          "attack_critic_loss": metrics.get("critic_loss", float("nan"))}
  act_key = jax.random.key(0)  # unused: deterministic actions

  def q_fn(observations, actions):
    return agent.q_values(state, observations, actions)

  def policy_fn(observations):
    return agent.act(state, observations, act_key, deterministic=True)

  return q_fn, policy_fn, info


def _savable(state):
  """The state's pytree with PRNG keys as raw uint32 data (Orbax-friendly)."""
  import jax

  def convert(x):
    if hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.key_data(x)
    return x

  return jax.tree.map(convert, state)


def make_evaluator(config) -> Optional[Callable]:
  """`evaluate(act_fn, num_episodes, seed) -> returns [num_episodes]`, or None when
  `eval_episodes` is 0 or no `env_name` is set (jaxrl_llm.offline.evaluation)."""
  if config.eval_episodes <= 0 or not config.env_name:
    return None
  import numpy as np

  from jaxrl_llm.offline import evaluation

  def evaluate(act_fn, episodes, seed):
    result = evaluation.evaluate_policy(act_fn, config.env_name, episodes, seed=seed)
    return np.asarray(result["returns"], np.float64)

  return evaluate


def local_reference(config) -> Optional[Dict[str, float]]:
  """Random/expert returns measured when the Minari dataset was generated locally.

  Read from `reference_scores.json` beside the dataset (jaxrl_llm.offline.generation);
  None for other formats or when the file is absent.
  """
  if config.dataset_format != "minari" or not config.dataset_path:
    return None
  from jaxrl_llm.offline import datasets

  path = os.path.join(os.path.dirname(datasets.minari_dataset_dir(
      config.dataset_path, config.get("minari_datasets_path") or None)), "reference_scores.json")
  if not os.path.exists(path):
    return None
  with open(path, encoding="utf-8") as f:
    ref = json.load(f).get("local_reference", {})
  if "random" in ref and "expert" in ref and ref["expert"] != ref["random"]:
    return {"random": float(ref["random"]), "expert": float(ref["expert"])}
  return None


def run(config):
  """Trains one agent as configured; returns (final state, summary dict).

  The summary is also written to `<workdir>/scores.json`.
  """
  import jax
  import numpy as np
  import tqdm

  from jaxrl_llm.offline import agents
  from jaxrl_llm.offline import datasets
  from jaxrl_llm.offline import imitation
  from jaxrl_llm.training import metrics as metrics_lib

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
  workdir = config.workdir
  os.makedirs(workdir, exist_ok=True)
  resume_step = latest_checkpoint_step(workdir) if config.checkpoint_interval > 0 else None
  if resume_step is not None:
    if not config.resume:
      raise ValueError(
          f"{workdir}/checkpoints already holds step {resume_step}; set config.resume=True to "
          "continue that run or pick a new config.workdir")
    check_resumable_config(config, workdir)
  write_atomic(os.path.join(workdir, "config.json"), config.to_json_best_effort(indent=2))

  agent = agents.get(config.agent_name)
  # The recipe's `agent` block overrides the agent's defaults (an empty block = defaults).
  agent_config = agent.get_config()
  agent_config.update(config.agent.to_dict())
  if "max_steps" in agent_config:
    agent_config.max_steps = config.max_steps  # cosine-decay horizon = run length

  data, corruption_masks, corruption_info = preprocess(config, load_dataset(config),
                                                      config.progress_bar)
  data = datasets.validate_transitions(data, "training data")
  # With a `config.expert` block (ReCOIL): expert + mixed parts and their two samplers.
  train_data, sample_fn = imitation.training_data(
      config, data, lambda source: clean_and_scale(config, load_dataset(source)))
  device_data = jax.device_put(train_data)
  key = jax.random.key(config.seed)
  key, init_key = jax.random.split(key)
  state = agent.init(init_key, device_data, agent_config)

  sample = jax.jit(lambda k, d: sample_fn(k, d, config.batch_size, config.steps_per_call))
  evaluate = make_evaluator(config)
  step = 0
  train_rows: List[Dict[str, float]] = []
  eval_rows: List[Dict[str, float]] = []
  if resume_step is not None:
    state = restore_state(workdir, state, resume_step)
    step = resume_step
    # The batch stream is a chain of key splits, one per update_n call: replay it.
    for _ in range(step // config.steps_per_call):
      key, _ = jax.random.split(key)
  # JSONL always; TensorBoard (tensorboardX) and W&B when asked (jaxrl_llm.training.metrics).
  writer = metrics_lib.MetricWriter(
      workdir, tensorboard=config.tensorboard, wandb=config.get("wandb", False),
      wandb_project=config.get("wandb_project", "jaxrl_llm"),
      wandb_mode=config.get("wandb_mode") or None, run_config=config)
  # Drop lines logged after the checkpoint (all of them on a fresh start), so the
  # file holds each step of this run once.
  writer.truncate_after(step)
  if resume_step is not None:
    rows = metrics_lib.read_metrics(writer.path)
    train_rows = [r for r in rows if any(k.startswith("train/") for k in r)]
    eval_rows = [r for r in rows if any(k.startswith("eval/") for k in r)]

  checkpointer = None
  if config.checkpoint_interval > 0:
    import orbax.checkpoint as ocp

    checkpointer = ocp.CheckpointManager(
        os.path.abspath(os.path.join(workdir, "checkpoints")),
        options=ocp.CheckpointManagerOptions(max_to_keep=config.checkpoints_to_keep))

  local_ref = local_reference(config)

  def run_eval(step):
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
                      actor=metrics["actor_loss"])
      if not all(np.isfinite(v) for v in metrics.values()):
        raise FloatingPointError(f"non-finite training metrics at step {step}: {metrics}")
    if evaluate is not None and config.eval_interval > 0 and step % config.eval_interval == 0:
      row = run_eval(step)
      bar.set_postfix(score=row["eval/normalized_score"])
    if checkpointer is not None and (step % config.checkpoint_interval == 0
                                     or step == config.max_steps):
      import orbax.checkpoint as ocp

      checkpointer.save(step, args=ocp.args.StandardSave(_savable(state)))
  bar.close()
  if evaluate is not None and (not eval_rows or eval_rows[-1]["step"] != step):
    run_eval(step)
  if checkpointer is not None:
    checkpointer.wait_until_finished()
    checkpointer.close()
  writer.close()

  summary = {
      "agent": config.agent_name, "env_name": config.env_name,
      "dataset": config.dataset_path or config.dataset_format, "seed": config.seed,
      "steps": step, "wall_s": time.perf_counter() - start, "resumed_from": resume_step,
      "num_transitions": int(data.observations.shape[0]),
      "corrupted": {k: float(np.mean(v)) for k, v in corruption_masks.items()},
      "corruption": {"mode": config.corruption.mode, **corruption_info}
                    if config.corruption.fields else {},
      "reference": {"d4rl": [config.ref_min_score, config.ref_max_score], "local": local_ref},
      "final_train": train_rows[-1] if train_rows else {},
      "evaluations": eval_rows,
  }
  write_atomic(os.path.join(workdir, "scores.json"), json.dumps(summary, indent=2))
  print(score_table(summary))
  plot_curves(train_rows, eval_rows, os.path.join(workdir, "curves.png"),
              title=f"{config.agent_name} on {summary['dataset']}")
  return state, summary


# Config keys that may change between a run and its resumption: they do not
# change what is trained (only logging, evaluation and checkpoint cadence).
RESUME_MAY_DIFFER = ("workdir", "progress_bar", "log_interval", "eval_interval",
                     "eval_episodes", "eval_seed", "checkpoint_interval",
                     "checkpoints_to_keep", "resume", "minari_datasets_path", "tensorboard",
                     "wandb", "wandb_project", "wandb_mode")


def write_atomic(path: str, text: str) -> None:
  """Writes `text` to `path` via a temporary file and an atomic rename."""
  tmp = f"{path}.tmp{os.getpid()}"
  with open(tmp, "w", encoding="utf-8") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def latest_checkpoint_step(workdir: str) -> Optional[int]:
  """The newest finished checkpoint step under `<workdir>/checkpoints`, or None."""
  directory = os.path.join(workdir, "checkpoints")
  if not os.path.isdir(directory):
    return None
  import orbax.checkpoint as ocp

  with ocp.CheckpointManager(os.path.abspath(directory)) as manager:
    return manager.latest_step()


def check_resumable_config(config, workdir: str) -> None:
  """Raises ValueError naming the fields where `config` differs from the saved run."""
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


def score_table(summary: Dict[str, Any]) -> str:
  lines = [f"{summary['agent']} | {summary['dataset']} | seed {summary['seed']} | "
           f"{summary['steps']} steps in {summary['wall_s']:.0f} s"]
  if summary["evaluations"]:
    lines.append(f"{'step':>10} {'return':>18} {'D4RL-normalized score':>22}")
    local = "eval/local_normalized_score" in summary["evaluations"][0]
    if local:
      lines[-1] += f" {'local-ref score':>16}"
    for row in summary["evaluations"]:
      lines.append(f"{row['step']:>10d} {row['eval/return_mean']:>10.1f} ± "
                   f"{row['eval/return_std']:<6.1f} {row['eval/normalized_score']:>12.1f} ± "
                   f"{row['eval/normalized_score_std']:<6.1f}" +
                   (f" {row['eval/local_normalized_score']:>16.1f}" if local else ""))
  else:
    lines.append("no environment evaluation (eval_episodes = 0 or no env_name)")
    for k, v in summary["final_train"].items():
      if k != "step":
        lines.append(f"  {k:<28} {v:.4g}")
  return "\n".join(lines)


def plot_curves(train_rows, eval_rows, path: str, title: str) -> None:
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  panels = [("train/critic_loss", "critic loss"), ("train/actor_loss", "actor loss")]
  panels = [p for p in panels if train_rows and p[0] in train_rows[0]]
  if eval_rows:
    panels.append(("eval/normalized_score", "normalized score"))
  fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(4 * max(1, len(panels)), 3.2),
                           squeeze=False)
  for ax, (key, label) in zip(axes[0], panels):
    rows = eval_rows if key.startswith("eval/") else train_rows
    ax.plot([r["step"] for r in rows], [r[key] for r in rows], marker="." if len(rows) < 30 else None)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
  fig.suptitle(title)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def restore_state(workdir: str, template_state, step: Optional[int] = None):
  """Restores the agent state saved by `run` (latest step unless given).

  `template_state` is any state of the same agent and shapes (e.g. from
  `agent.init`); its static config is kept, the arrays come from disk.
  """
  import jax
  import orbax.checkpoint as ocp

  with ocp.CheckpointManager(os.path.abspath(os.path.join(workdir, "checkpoints"))) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint under {workdir}/checkpoints")
    restored = manager.restore(step, args=ocp.args.StandardRestore(_savable(template_state)))
  is_key = lambda x: hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
  return jax.tree.map(lambda t, r: jax.random.wrap_key_data(r) if is_key(t) else r,
                      template_state, restored)


def main(argv):
  del argv
  from absl import logging

  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  run(_CONFIG.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)

"""OGBench datasets made locally, loaded back through `ogbench`, and zero-shot evaluation.

OGBench (Park et al., "OGBench: Benchmarking Offline Goal-Conditioned RL", ICLR
2025) ships its environments and the manipulation oracles in the pip package;
its data-generation scripts live only in its repository. This module makes
datasets with the package's environments:

- `pointmaze-{medium,large,giant,teleport}-navigate-v0`: a waypoint-following
  controller written here from the environment's API. At every step it asks
  the maze for the next cell on a BFS shortest path to its current goal
  (`get_oracle_subgoal`), heads for that cell's centre (for the goal itself
  once in its cell) with a unit-length action plus N(0, σ²) noise, and draws
  a new random free cell as goal once within `goal_tol` of it
  (OGBench's "navigate" protocol: an expert that wanders between random goals).
- `cube-{single,double,...}-play-v0`: the package's `CubePlanOracle` in the
  environment's `data_collection` mode, with a new random target
  (`set_new_target`) each time a plan is done.

Files use OGBench's npz layout: per trajectory the rows s_0 .. s_T with their
actions, `terminals = 1` on the last row, and the simulator state `qpos`,
`qvel` of every row (OGBench's single-task reward relabelling recomputes
rewards from `qpos`). `ogbench.make_env_and_datasets(name, dataset_path=...)`
also reads `<path>-val.npz`, so `save_npz` writes both.

`evaluate_singletask` runs the 5 single-task goals of an environment
(`<env>-singletask-task{1..5}-v0`) and reports success rates; with
`zero_shot_policy` a zero-shot agent (TD-JEPA) infers each task z by least
squares from the relabelled rewards of the dataset (`agent.infer_task`) and
then acts with `agent.act(..., task=z)`.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple

import jax
import numpy as np

from jaxrl_llm.offline.types import Transitions, goal_observations

NPZ_KEYS = ("observations", "actions", "terminals", "qpos", "qvel")
NUM_TASKS = 5
GENERATORS = ("navigate", "play")


# ----------------------------------------------------------------------------- names


def env_name_of(dataset_name: str) -> str:
  """'pointmaze-medium-navigate-v0' → 'pointmaze-medium-v0' (the dataset type removed)."""
  parts = dataset_name.split("-")
  if len(parts) < 3 or parts[-2] not in GENERATORS or not parts[-1].startswith("v"):
    raise ValueError(
        f"unsupported OGBench dataset name {dataset_name!r}: expected "
        f"'<env>-<type>-v<N>' with type in {GENERATORS}, e.g. 'pointmaze-medium-navigate-v0' "
        "or 'cube-single-play-v0'")
  return "-".join(parts[:-2] + parts[-1:])


def singletask_name(dataset_name: str, task_id: int) -> str:
  """'pointmaze-medium-navigate-v0', 3 → 'pointmaze-medium-navigate-singletask-task3-v0'."""
  if not 1 <= int(task_id) <= NUM_TASKS:
    raise ValueError(f"task_id must lie in [1, {NUM_TASKS}], got {task_id}")
  env_name_of(dataset_name)  # validates
  parts = dataset_name.split("-")
  return "-".join(parts[:-1] + ["singletask", f"task{int(task_id)}", parts[-1]])


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
  """OGBench's resets draw from NumPy's global RNG; seed it, then restore it."""
  saved = np.random.get_state()
  np.random.seed(seed % 2**32)
  try:
    yield
  finally:
    np.random.set_state(saved)


# ----------------------------------------------------------------------------- generation


def _make_env(env_name: str, episode_length: int, **kwargs):
  import gymnasium
  import ogbench  # noqa: F401  (registers the environments)

  return gymnasium.make(env_name, max_episode_steps=episode_length + 1, **kwargs)


def waypoint_action(maze, xy: np.ndarray, goal_xy: np.ndarray) -> np.ndarray:
  """Unit-length direction to the next BFS cell centre (to the goal inside its cell)."""
  if maze.xy_to_ij(xy) == maze.xy_to_ij(goal_xy):
    target = np.asarray(goal_xy, np.float64)
  else:
    target, _ = maze.get_oracle_subgoal(xy, goal_xy)
  direction = np.asarray(target, np.float64) - xy
  norm = np.linalg.norm(direction)
  return direction / norm if norm > 1e-8 else np.zeros(2)


def generate_pointmaze_navigate(dataset_name: str = "pointmaze-medium-navigate-v0",
                                num_episodes: int = 10, episode_length: int = 1001,
                                noise: float = 0.5, seed: int = 0) -> Dict[str, np.ndarray]:
  """`num_episodes` trajectories of `episode_length` rows from the waypoint controller.

  Each trajectory starts at a random free cell (plus U(±unit/4) jitter) and
  heads for a random free cell; on reaching it (within the maze's `goal_tol`)
  a new goal is drawn. Actions are `clip(waypoint_action + N(0, noise²), ±1)`.
  """
  env_name = env_name_of(dataset_name)
  if not env_name.startswith("pointmaze-"):
    raise ValueError(f"generate_pointmaze_navigate needs a pointmaze dataset, got {dataset_name!r}")
  if episode_length < 2 or num_episodes < 1:
    raise ValueError("num_episodes must be >= 1 and episode_length >= 2, got "
                     f"{num_episodes} and {episode_length}")
  rng = np.random.default_rng(seed)
  env = _make_env(env_name, episode_length, terminate_at_goal=False)
  maze = env.unwrapped
  free = np.argwhere(maze.maze_map == 0)
  jitter = maze._maze_unit / 4

  def random_cell_xy():
    i, j = free[rng.integers(len(free))]
    return np.asarray(maze.ij_to_xy((i, j)), np.float64) + rng.uniform(-jitter, jitter, 2)

  rows = {k: [] for k in NPZ_KEYS}
  with _numpy_global_seed(seed):
    for episode in range(num_episodes):
      env.action_space.seed(seed + episode)
      env.reset(seed=seed + episode)
      maze.set_xy(random_cell_xy())
      goal = random_cell_xy()
      for t in range(episode_length):
        xy = maze.get_xy()
        if np.linalg.norm(xy - goal) <= maze._goal_tol:
          goal = random_cell_xy()
        action = np.clip(waypoint_action(maze, xy, goal) + noise * rng.normal(size=2), -1, 1)
        rows["observations"].append(maze.get_ob())
        rows["qpos"].append(maze.data.qpos.copy())
        rows["qvel"].append(maze.data.qvel.copy())
        rows["actions"].append(action)
        rows["terminals"].append(float(t == episode_length - 1))
        if t < episode_length - 1:
          env.step(action.astype(np.float32))
  env.close()
  return {k: np.asarray(v, np.float32) for k, v in rows.items()}


def generate_cube_play(dataset_name: str = "cube-single-play-v0", num_episodes: int = 1,
                       episode_length: int = 1001, noise: float = 0.1,
                       noise_smoothing: float = 0.5, seed: int = 0) -> Dict[str, np.ndarray]:
  """Play data from ogbench's `CubePlanOracle`, a new random target whenever a plan is done."""
  from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle

  env_name = env_name_of(dataset_name)
  if not env_name.startswith("cube-"):
    raise ValueError(f"generate_cube_play needs a cube dataset, got {dataset_name!r}")
  if episode_length < 2 or num_episodes < 1:
    raise ValueError("num_episodes must be >= 1 and episode_length >= 2, got "
                     f"{num_episodes} and {episode_length}")
  env = _make_env(env_name, episode_length, mode="data_collection")
  rows = {k: [] for k in NPZ_KEYS}
  with _numpy_global_seed(seed):
    for episode in range(num_episodes):
      oracle = CubePlanOracle(env=env, noise=noise, noise_smoothing=noise_smoothing)
      ob, info = env.reset(seed=seed + episode)
      oracle.reset(ob, info)
      for t in range(episode_length):
        if oracle.done:
          ob, info = env.unwrapped.set_new_target()
          oracle.reset(ob, info)
        action = np.clip(oracle.select_action(ob, info), -1, 1)
        rows["observations"].append(ob)
        rows["qpos"].append(info["qpos"])
        rows["qvel"].append(info["qvel"])
        rows["actions"].append(action)
        rows["terminals"].append(float(t == episode_length - 1))
        if t < episode_length - 1:
          ob, _, _, _, info = env.step(action)
  env.close()
  return {k: np.asarray(v, np.float32) for k, v in rows.items()}


def generate(dataset_name: str, num_episodes: int, episode_length: int = 1001, seed: int = 0,
             **kwargs) -> Dict[str, np.ndarray]:
  """Dispatches on the dataset type: `navigate` (pointmaze) or `play` (cube)."""
  env_name = env_name_of(dataset_name)
  kind = dataset_name.split("-")[-2]
  if kind == "navigate" and env_name.startswith("pointmaze-"):
    return generate_pointmaze_navigate(dataset_name, num_episodes, episode_length, seed=seed,
                                       **kwargs)
  if kind == "play" and env_name.startswith("cube-"):
    return generate_cube_play(dataset_name, num_episodes, episode_length, seed=seed, **kwargs)
  raise ValueError(f"no local generator for {dataset_name!r}; supported: "
                   "pointmaze-*-navigate-v0, cube-*-play-v0")


# ----------------------------------------------------------------------------- files


def validation_path(path: str) -> str:
  """Where `ogbench.make_env_and_datasets` looks for the validation split."""
  if not path.endswith(".npz"):
    raise ValueError(f"an OGBench dataset path must end in .npz, got {path!r}")
  return path[:-len(".npz")] + "-val.npz"


def check_arrays(arrays: Mapping[str, Any], source: str) -> None:
  """Every key of `NPZ_KEYS`, equal lengths, a final `terminals = 1`; errors name the key."""
  for key in NPZ_KEYS:
    if key not in arrays:
      extra = (" (OGBench's single-task reward relabelling recomputes rewards from the "
               "simulator state; regenerate the data with jaxrl_llm.offline.ogbench_data, "
               "which stores qpos/qvel)") if key in ("qpos", "qvel") else ""
      raise ValueError(f"{source} has no `{key}`{extra}; it has {sorted(arrays)}")
  n = len(arrays["observations"])
  for key in NPZ_KEYS:
    if len(arrays[key]) != n:
      raise ValueError(f"{source}: `{key}` has {len(arrays[key])} rows but `observations` "
                       f"has {n}")
  if n == 0 or float(np.asarray(arrays["terminals"])[-1]) != 1.0:
    raise ValueError(f"{source}: `terminals` must be 1 on the last row of every trajectory")


def check_npz(path: str) -> None:
  """`check_arrays` on an npz file (FileNotFoundError when it is missing)."""
  if not os.path.exists(path):
    raise FileNotFoundError(f"OGBench dataset file not found: {path}")
  with np.load(path) as f:
    check_arrays({k: f[k] for k in f.files}, f"OGBench file {path}")


def save_npz(path: str, train: Mapping[str, np.ndarray],
             val: Optional[Mapping[str, np.ndarray]] = None) -> Tuple[str, str]:
  """Writes `path` and `<path>-val.npz` (the training split again if `val` is None)."""
  val_path = validation_path(path)
  for arrays, where in ((train, path), (val if val is not None else train, val_path)):
    check_arrays(arrays, f"OGBench data for {where}")
    os.makedirs(os.path.dirname(os.path.abspath(where)), exist_ok=True)
    tmp = where[:-len(".npz")] + ".tmp.npz"
    np.savez_compressed(tmp, **{k: np.asarray(arrays[k]) for k in NPZ_KEYS})
    os.replace(tmp, where)
  return path, val_path


def make_dataset(dataset_name: str, path: str, num_episodes: int, episode_length: int = 1001,
                 val_episodes: int = 1, seed: int = 0, **kwargs) -> Tuple[str, str]:
  """Generates the training (seed) and validation (seed + 10⁶) splits and saves them."""
  train = generate(dataset_name, num_episodes, episode_length, seed=seed, **kwargs)
  val = generate(dataset_name, val_episodes, episode_length, seed=seed + 1_000_000, **kwargs)
  return save_npz(path, train, val)


# ----------------------------------------------------------------------------- loading


def transitions_from_ogbench(dataset: Mapping[str, np.ndarray]) -> Transitions:
  """Transitions from a (non-compact) dataset of `ogbench.make_env_and_datasets`.

  Its `terminals` mark trajectory ends (time limits): they become `timeouts`.
  With single-task relabelling (`rewards`, `masks`), a reached goal is absorbing:
  `terminals = 1 − masks`. Without rewards (reward-free data) rewards are 0.
  """
  n = len(dataset["observations"])
  f32 = lambda x: np.asarray(x, np.float32).reshape(n, *np.shape(x)[1:])
  traj_end = f32(dataset["terminals"])
  terminals = 1.0 - f32(dataset["masks"]) if "masks" in dataset else np.zeros(n, np.float32)
  return Transitions(
      observations=f32(dataset["observations"]), actions=f32(dataset["actions"]),
      rewards=f32(dataset["rewards"]) if "rewards" in dataset else np.zeros(n, np.float32),
      next_observations=f32(dataset["next_observations"]),
      terminals=terminals.astype(np.float32),
      timeouts=np.where(terminals > 0, 0.0, traj_end).astype(np.float32))


def load(dataset_name: str, path: str, **env_kwargs):
  """`ogbench.make_env_and_datasets(dataset_name, dataset_path=path)`, offline.

  Single-task names (`...-singletask-taskN-v0`) relabel rewards from `qpos`.
  Returns (env, train Transitions, val Transitions).
  """
  import ogbench

  check_npz(path)
  check_npz(validation_path(path))
  env, train, val = ogbench.make_env_and_datasets(dataset_name, dataset_path=path, **env_kwargs)
  return env, transitions_from_ogbench(train), transitions_from_ogbench(val)


# ----------------------------------------------------------------------------- evaluation

# (obs [1, obs_dim], key) -> action [1, act_dim]; a policy with `goal_conditioned = True`
# is called `policy(obs, key, goal=g)` with g [1, obs_dim] the goal observation that the
# env's reset reports (`info["goal"]`).
Policy = Callable[..., Any]
MakePolicy = Callable[[int, Transitions], Policy]  # (task id, relabelled data) -> policy


def rollout_success(env, policy: Policy, key: jax.Array, seed: int) -> Tuple[bool, int]:
  """One episode of `policy` in a single-task env; (success, length)."""
  ob, info = env.reset(seed=seed)
  call = policy
  if getattr(policy, "goal_conditioned", False):
    if "goal" not in info:
      raise ValueError("a goal-conditioned policy needs the env's reset info['goal']; this "
                       "env's reset did not report one")
    goal = np.asarray(info["goal"], np.float32)[None]
    call = lambda obs, k: policy(obs, k, goal=goal)
  steps = 0
  while True:
    key, step_key = jax.random.split(key)
    action = np.asarray(call(np.asarray(ob, np.float32)[None], step_key)).reshape(-1)
    ob, _, terminated, truncated, info = env.step(np.clip(action, -1.0, 1.0))
    steps += 1
    if info.get("success", 0.0) > 0 or terminated or truncated:
      return bool(info.get("success", 0.0) > 0), steps


def evaluate_singletask(make_policy: MakePolicy, dataset_name: str, path: str, *,
                        tasks: Sequence[int] = tuple(range(1, NUM_TASKS + 1)),
                        episodes_per_task: int = 10, seed: int = 0,
                        max_episode_steps: Optional[int] = None) -> Dict[str, Any]:
  """Success rates of `make_policy(task_id, data)` on the single-task goals.

  For each task the dataset is loaded through `ogbench.make_env_and_datasets`
  with the task's reward relabelling; the policy gets that data (to infer its
  task) and runs `episodes_per_task` episodes (reset seeds seed, seed + 1, ...).
  Returns {"task{i}": success rate, "lengths": {...}, "mean": mean rate}.
  """
  out: Dict[str, Any] = {"lengths": {}}
  kwargs = {} if max_episode_steps is None else {"max_episode_steps": max_episode_steps}
  key = jax.random.key(seed)
  for task_id in tasks:
    env, data, _ = load(singletask_name(dataset_name, task_id), path, **kwargs)
    policy = make_policy(task_id, data)
    successes, lengths = [], []
    with _numpy_global_seed(seed + 7919 * task_id):
      for episode in range(episodes_per_task):
        key, episode_key = jax.random.split(key)
        ok, steps = rollout_success(env, policy, episode_key, seed + episode)
        successes.append(ok)
        lengths.append(steps)
    env.close()
    out[f"task{task_id}"] = float(np.mean(successes))
    out["lengths"][f"task{task_id}"] = lengths
  out["mean"] = float(np.mean([out[f"task{t}"] for t in tasks]))
  return out


def zero_shot_policy(agent, state, *, num_inference_samples: int = 10_000,
                     reward_shift: float = 1.0, seed: int = 0,
                     deterministic: bool = True) -> MakePolicy:
  """For each task: z = agent.infer_task(state, s, r + shift) on relabelled samples, then act.

  OGBench's single-task rewards are r(s) ∈ {−1, 0} of the row's own state
  (success_timing 'pre'), so the regression pairs each reward with its
  `observations` row; `reward_shift` = 1 makes them success indicators {0, 1}.
  `num_inference_samples` rows are drawn uniformly (all when there are fewer).
  """

  def make_policy(task_id: int, data: Transitions) -> Policy:
    rng = np.random.default_rng(seed + task_id)
    n = data.observations.shape[0]
    idx = rng.choice(n, min(n, num_inference_samples), replace=False)
    z = agent.infer_task(state, data.observations[idx], data.rewards[idx] + reward_shift)

    def policy(observations, key):
      return agent.act(state, observations, key, deterministic=deterministic, task=z)

    policy.task = z
    return policy

  return make_policy


def goal_conditioned_policy(agent, state, *, deterministic: bool = True) -> MakePolicy:
  """A goal-conditioned agent (BC with ``goal_conditioned=True``, i.e. GCBC) given each
  task's goal observation: ``act(state, [s, g])``. The baseline that is told the goal,
  where a zero-shot agent must infer its task from rewards."""
  def make_policy(task_id: int, data: Transitions) -> Policy:
    del task_id, data

    def policy(observations, key, *, goal):
      return agent.act(state, goal_observations(observations, goal), key,
                       deterministic=deterministic)

    policy.goal_conditioned = True
    return policy

  return make_policy


def random_policy(action_dim: int) -> MakePolicy:
  """The uniform-random baseline: U(−1, 1)^action_dim, whatever the task."""

  def make_policy(task_id: int, data: Transitions) -> Policy:
    del task_id, data
    return lambda observations, key: jax.random.uniform(
        key, (observations.shape[0], action_dim), minval=-1.0, maxval=1.0)

  return make_policy


def evaluate_zero_shot(agent, state, dataset_name: str, path: str, **kwargs) -> Dict[str, Any]:
  """`evaluate_singletask(zero_shot_policy(agent, state), ...)`: infer_task per goal, then act.

  kwargs go to `evaluate_singletask` (tasks, episodes_per_task, seed,
  max_episode_steps) or `zero_shot_policy` (num_inference_samples, reward_shift).
  """
  policy_keys = ("num_inference_samples", "reward_shift", "deterministic")
  policy_kwargs = {k: kwargs.pop(k) for k in policy_keys if k in kwargs}
  return evaluate_singletask(zero_shot_policy(agent, state, **policy_kwargs), dataset_name,
                             path, **kwargs)


EVAL_POLICIES = ("zero_shot", "goal_conditioned")


# ----------------------------------------------------------------------------- config helpers


def ensure_dataset(config) -> str:
  """Makes `config.dataset_path` from the `config.ogbench` recipe unless it (and its -val
  split) exists; returns the path. Recipe fields: dataset_name, num_episodes,
  episode_length, val_episodes, seed (plus generator options in `generator`)."""
  recipe = config.get("ogbench")
  path = config.dataset_path
  if recipe is None:
    raise ValueError("config.ogbench is missing (the recipe that generates the OGBench data)")
  for field in ("dataset_name", "num_episodes", "episode_length", "val_episodes", "seed"):
    if field not in recipe:
      raise ValueError(f"config.ogbench.{field} is missing")
  if not (os.path.exists(path) and os.path.exists(validation_path(path))):
    make_dataset(recipe.dataset_name, path, recipe.num_episodes, recipe.episode_length,
                 recipe.val_episodes, recipe.seed,
                 **(recipe.generator.to_dict() if "generator" in recipe else {}))
  check_npz(path)
  return path


def make_zero_shot_evaluator(config) -> Optional[Callable]:
  """`evaluate(agent, state) -> {"eval/task{i}_success": ..., "eval/success_mean": ...}`
  from a `config.zero_shot` block (dataset_name, episodes_per_task,
  num_inference_samples, reward_shift, seed, max_episode_steps, and `policy`:
  "zero_shot" (default; `infer_task` from rewards) or "goal_conditioned" (GCBC,
  told each task's goal observation)), or None without one."""
  block = config.get("zero_shot")
  if block is None:
    return None
  for field in ("dataset_name", "episodes_per_task", "num_inference_samples"):
    if field not in block:
      raise ValueError(f"config.zero_shot.{field} is missing")
  kind = block.get("policy", "zero_shot")
  if kind not in EVAL_POLICIES:
    raise ValueError(f"config.zero_shot.policy must be one of {EVAL_POLICIES}, got {kind!r}")

  def evaluate(agent, state) -> Dict[str, float]:
    common = dict(episodes_per_task=block.episodes_per_task, seed=block.get("seed", 0),
                  max_episode_steps=block.get("max_episode_steps") or None)
    if kind == "goal_conditioned":
      result = evaluate_singletask(goal_conditioned_policy(agent, state), block.dataset_name,
                                   config.dataset_path, **common)
    else:
      result = evaluate_zero_shot(
          agent, state, block.dataset_name, config.dataset_path,
          num_inference_samples=block.num_inference_samples,
          reward_shift=block.get("reward_shift", 1.0), **common)
    row = {f"eval/task{t}_success": result[f"task{t}"]
           for t in range(1, NUM_TASKS + 1) if f"task{t}" in result}
    row["eval/success_mean"] = result["mean"]
    return row

  return evaluate

"""OGBench data made locally (offline/ogbench_data.py): names, the pointmaze
waypoint controller, cube play data, npz round trips through
`ogbench.make_env_and_datasets` with its single-task relabelling, named errors,
and the single-task / zero-shot evaluation."""

import importlib.util
import os
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline import ogbench_data

PM = "pointmaze-medium-navigate-v0"
# pointmaze-medium task goals (ogbench maze.py `set_tasks`) as cells (i, j);
# xy = (4 j − 4, 4 i − 4), goal tolerance 1.0.
TASK_GOAL_XY = {1: (20.0, 20.0), 2: (20.0, 0.0), 3: (4.0, 12.0), 4: (0.0, 20.0), 5: (0.0, 0.0)}


def test_names():
  assert ogbench_data.env_name_of(PM) == "pointmaze-medium-v0"
  assert ogbench_data.env_name_of("cube-single-play-v0") == "cube-single-v0"
  assert (ogbench_data.singletask_name(PM, 3)
          == "pointmaze-medium-navigate-singletask-task3-v0")
  with pytest.raises(ValueError, match="unsupported OGBench dataset name"):
    ogbench_data.env_name_of("pointmaze-medium-v0")
  with pytest.raises(ValueError, match=r"task_id must lie in \[1, 5\]"):
    ogbench_data.singletask_name(PM, 6)
  with pytest.raises(ValueError, match="no local generator"):
    ogbench_data.generate("antmaze-medium-navigate-v0", 1)


@pytest.fixture(scope="module")
def maze():
  env = ogbench_data._make_env("pointmaze-medium-v0", 10, terminate_at_goal=False)
  env.reset(seed=0)
  yield env.unwrapped
  env.close()


def test_waypoint_action_hand_cases(maze):
  """Medium maze, row 1 = [1, 0, 0, 1, 1, 0, 0, 1]. From the centre of cell (1, 1),
  xy (0, 0), to a goal in cell (1, 2): the next cell's centre (4, 0) → (1, 0).
  Inside the goal's cell: straight at the goal, (0.3, 0.4)/0.5. Cell (2, 1) → (3, 1)
  is a wall, so from (2, 1), xy (0, 4), to cell (4, 1) the path goes right first."""
  np.testing.assert_allclose(ogbench_data.waypoint_action(maze, np.zeros(2), np.array([4.5, 0.2])),
                             [1.0, 0.0], atol=1e-9)
  np.testing.assert_allclose(ogbench_data.waypoint_action(maze, np.zeros(2), np.array([0.3, 0.4])),
                             [0.6, 0.8], atol=1e-9)
  np.testing.assert_allclose(
      ogbench_data.waypoint_action(maze, np.array([0.0, 4.0]), np.array([0.0, 12.0])),
      [1.0, 0.0], atol=1e-9)


@pytest.fixture(scope="module")
def pointmaze_file(tmp_path_factory):
  arrays = ogbench_data.generate_pointmaze_navigate(PM, num_episodes=2, episode_length=150,
                                                    seed=3)
  path = str(tmp_path_factory.mktemp("ogbench") / "pointmaze-medium-navigate-v0.npz")
  ogbench_data.save_npz(path, arrays)
  return arrays, path


def test_pointmaze_generation_layout_and_determinism(pointmaze_file):
  arrays, _ = pointmaze_file
  assert {k: v.shape for k, v in arrays.items()} == {
      "observations": (300, 2), "actions": (300, 2), "terminals": (300,),
      "qpos": (300, 2), "qvel": (300, 2)}
  np.testing.assert_array_equal(np.flatnonzero(arrays["terminals"]), [149, 299])
  np.testing.assert_array_equal(arrays["observations"], arrays["qpos"])  # pointmaze ob = xy
  assert np.all(np.abs(arrays["actions"]) <= 1.0)
  # The point moves 0.2 · action per step (ogbench PointEnv), up to wall contacts.
  steps = np.linalg.norm(np.diff(arrays["qpos"][:150], axis=0), axis=-1)
  assert np.all(steps <= 0.2 * np.sqrt(2) + 1e-4) and steps.mean() > 0.1
  again = ogbench_data.generate_pointmaze_navigate(PM, num_episodes=2, episode_length=150, seed=3)
  for key in arrays:
    np.testing.assert_array_equal(arrays[key], again[key])
  other = ogbench_data.generate_pointmaze_navigate(PM, num_episodes=1, episode_length=150, seed=4)
  assert not np.array_equal(other["observations"], arrays["observations"][:150])


def test_round_trip_through_make_env_and_datasets(pointmaze_file):
  arrays, path = pointmaze_file
  env, train, val = ogbench_data.load(PM, path)
  env.close()
  # Rows with terminals = 0 become transitions; s' is the next row of the trajectory.
  keep = arrays["terminals"] == 0
  assert train.observations.shape == (298, 2)
  np.testing.assert_array_equal(train.observations, arrays["observations"][keep])
  np.testing.assert_array_equal(train.actions, arrays["actions"][keep])
  np.testing.assert_array_equal(train.next_observations, arrays["observations"][1:][keep[:-1]])
  np.testing.assert_array_equal(np.flatnonzero(train.timeouts), [148, 297])
  assert not np.any(train.terminals) and not np.any(train.rewards)
  assert val.observations.shape == (298, 2)


def test_singletask_relabelling_on_hand_placed_states(tmp_path):
  """Two trajectories whose states sit at, near and far from task 1's goal (20, 20):
  ogbench relabels r = 1(‖xy − goal‖ ≤ 1) − 1 and masks = 1 − success from qpos."""
  xy = np.array([[0.0, 0.0], [19.5, 20.0], [20.0, 21.5], [30.0, 30.0],  # trajectory 1
                 [20.0, 20.0], [0.0, 0.0], [5.0, 5.0]], np.float32)      # trajectory 2
  arrays = dict(observations=xy, actions=np.zeros((7, 2), np.float32),
                terminals=np.array([0, 0, 0, 1, 0, 0, 1], np.float32), qpos=xy,
                qvel=np.zeros((7, 2), np.float32))
  path = str(tmp_path / "hand.npz")
  ogbench_data.save_npz(path, arrays)
  env, train, _ = ogbench_data.load(ogbench_data.singletask_name(PM, 1), path)
  env.close()
  # Transitions are rows 0, 1, 2, 4, 5 (their states' distances: 28.3, 0.5, 1.5, 0, 28.3).
  np.testing.assert_array_equal(train.rewards, [-1.0, 0.0, -1.0, 0.0, -1.0])
  np.testing.assert_array_equal(train.terminals, [0.0, 1.0, 0.0, 1.0, 0.0])
  np.testing.assert_array_equal(train.timeouts, [0.0, 0.0, 1.0, 0.0, 1.0])


def test_missing_qpos_and_missing_files_are_named(tmp_path):
  arrays = dict(observations=np.zeros((3, 2), np.float32), actions=np.zeros((3, 2), np.float32),
                terminals=np.array([0, 0, 1], np.float32), qvel=np.zeros((3, 2), np.float32))
  with pytest.raises(ValueError, match="has no `qpos`.*relabelling"):
    ogbench_data.save_npz(str(tmp_path / "a.npz"), arrays)
  path = str(tmp_path / "no_qpos.npz")
  np.savez(path, **arrays)
  np.savez(str(tmp_path / "no_qpos-val.npz"), **arrays)
  with pytest.raises(ValueError, match=f"OGBench file {path} has no `qpos`"):
    ogbench_data.load(ogbench_data.singletask_name(PM, 1), path)
  with pytest.raises(FileNotFoundError, match="missing-val.npz"):
    full = dict(arrays, qpos=np.zeros((3, 2), np.float32))
    np.savez(str(tmp_path / "missing.npz"), **full)
    ogbench_data.load(PM, str(tmp_path / "missing.npz"))
  bad = dict(arrays, qpos=np.zeros((3, 2), np.float32), terminals=np.zeros(3, np.float32))
  with pytest.raises(ValueError, match="`terminals` must be 1 on the last row"):
    ogbench_data.save_npz(str(tmp_path / "b.npz"), bad)
  with pytest.raises(ValueError, match="must end in .npz"):
    ogbench_data.validation_path(str(tmp_path / "c.h5"))


def test_cube_single_play_generation_and_relabelling(tmp_path):
  arrays = ogbench_data.generate_cube_play("cube-single-play-v0", num_episodes=1,
                                           episode_length=120, seed=0)
  assert arrays["observations"].shape[0] == 120 and arrays["actions"].shape == (120, 5)
  assert arrays["qpos"].shape[1] == 14 + 7  # UR5e + gripper joints, then the cube's free joint
  assert np.all(np.abs(arrays["actions"]) <= 1.0)
  # The oracle moves the arm: the effector joints change over the episode.
  assert np.ptp(arrays["qpos"][:, :6], axis=0).max() > 0.05
  path = str(tmp_path / "cube-single-play-v0.npz")
  ogbench_data.save_npz(path, arrays)
  env, train, _ = ogbench_data.load("cube-single-play-singletask-task1-v0", path)
  target = np.array(env.unwrapped._data.mocap_pos[0])  # task 1's target, set by the relabelling
  env.close()
  assert train.observations.shape == (119, arrays["observations"].shape[1])
  # The stored cube position is qpos[14:17]; success within 0.04 of the target.
  success = np.linalg.norm(arrays["qpos"][:119, 14:17] - target, axis=-1) <= 0.04
  np.testing.assert_array_equal(train.rewards, success.astype(np.float32) - 1.0)


def _task_oracle(maze):
  """A policy that knows each task's goal: the waypoint controller towards it."""

  def make_policy(task_id, data):
    assert data.rewards.shape == data.observations.shape[:1]
    goal = np.asarray(TASK_GOAL_XY[task_id])
    return lambda obs, key: ogbench_data.waypoint_action(maze, np.asarray(obs[0], float),
                                                         goal)[None]

  return make_policy


def test_evaluate_singletask_oracle_succeeds_and_random_fails(pointmaze_file, maze):
  _, path = pointmaze_file
  result = ogbench_data.evaluate_singletask(_task_oracle(maze), PM, path,
                                            episodes_per_task=1)
  assert {f"task{t}": result[f"task{t}"] for t in range(1, 6)} == {
      f"task{t}": 1.0 for t in range(1, 6)}
  assert result["mean"] == 1.0
  assert all(0 < n[0] < 1000 for n in result["lengths"].values())
  rand = ogbench_data.evaluate_singletask(ogbench_data.random_policy(2), PM, path, tasks=(1,),
                                          episodes_per_task=2, max_episode_steps=30)
  assert rand["task1"] == 0.0 and rand["lengths"]["task1"] == [30, 30]


def test_zero_shot_policy_infers_from_shifted_rewards_of_the_rows(pointmaze_file):
  """A stub agent records what infer_task and act receive."""
  _, path = pointmaze_file
  calls = {}

  def infer_task(state, next_observations, rewards):
    calls["infer"] = (np.asarray(next_observations), np.asarray(rewards))
    return jnp.array([1.0, 2.0])

  def act(state, observations, key, deterministic=True, task=None):
    calls["task"] = np.asarray(task)
    return jnp.zeros((observations.shape[0], 2))

  agent = types.SimpleNamespace(infer_task=infer_task, act=act)
  result = ogbench_data.evaluate_zero_shot(agent, None, PM, path, tasks=(2,),
                                           episodes_per_task=1, max_episode_steps=5,
                                           num_inference_samples=50)
  obs, rewards = calls["infer"]
  assert obs.shape == (50, 2) and set(np.unique(rewards)) <= {0.0, 1.0}
  env, data, _ = ogbench_data.load(ogbench_data.singletask_name(PM, 2), path)
  env.close()
  # Each reward is the relabelled reward of its own row, shifted by +1.
  row = {tuple(o): r for o, r in zip(data.observations, data.rewards)}
  np.testing.assert_array_equal(rewards, [row[tuple(o)] + 1.0 for o in obs])
  np.testing.assert_array_equal(calls["task"], [1.0, 2.0])
  assert result["task2"] == 0.0 and result["lengths"]["task2"] == [5]


def _load_config(name):
  path = os.path.join(os.path.dirname(__file__), "..", "..", "configs", "offline", name)
  spec = importlib.util.spec_from_file_location(f"cfg_{name[:-3]}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def test_td_jepa_recipe_end_to_end(tmp_path):
  """configs/offline/td_jepa_pointmaze.py, shrunk: make the data, load it as the loop does,
  sample future-goal batches, a few TD-JEPA updates, then the zero-shot evaluation."""
  from jaxrl_llm.offline import datasets, future_goals
  from jaxrl_llm.offline.agents import td_jepa

  config = _load_config("td_jepa_pointmaze.py")
  config.dataset_path = str(tmp_path / "pm.npz")
  config.ogbench.update(dict(num_episodes=2, episode_length=100, val_episodes=1))
  config.agent.update(dict(encoder_hidden_dims=(8,), embed_dims=(), hidden_dims=(8,),
                           phi_dim=4, psi_dim=4))
  config.zero_shot.update(dict(episodes_per_task=1, num_inference_samples=100,
                               max_episode_steps=10))
  assert ogbench_data.ensure_dataset(config) == config.dataset_path
  data = datasets.load_ogbench_npz(config.dataset_path)
  assert data.observations.shape == (198, 2)
  goal_data, sample = future_goals.training_data(config, data)
  batches = sample(jax.random.key(0), goal_data, 32, 3)
  state = td_jepa.init(jax.random.key(1), jax.tree.map(lambda x: x[0], batches), config.agent)
  state, metrics = td_jepa.update_n(state, batches)
  assert np.all(np.isfinite(metrics["representation_loss"]))
  row = ogbench_data.make_zero_shot_evaluator(config)(td_jepa, state)
  assert set(row) == {f"eval/task{t}_success" for t in range(1, 6)} | {"eval/success_mean"}
  assert all(0.0 <= v <= 1.0 for v in row.values())
  cube = _load_config("td_jepa_cube.py")
  assert cube.ogbench.dataset_name == cube.zero_shot.dataset_name == "cube-single-play-v0"
  with pytest.raises(ValueError, match="config.ogbench is missing"):
    ogbench_data.ensure_dataset(_load_config("base.py"))
  assert ogbench_data.make_zero_shot_evaluator(_load_config("base.py")) is None


def test_goal_conditioned_policy_gets_each_reset_goal(pointmaze_file):
  """The GCBC policy is called with act(state, [s, g]) where g is the env's reset
  info['goal']: in pointmaze the goal observation is the task's goal xy."""
  _, path = pointmaze_file
  seen = []

  def act(state, observations, key, deterministic=True):
    seen.append(np.asarray(observations))
    return jnp.zeros((observations.shape[0], 2))

  agent = types.SimpleNamespace(act=act)
  result = ogbench_data.evaluate_singletask(
      ogbench_data.goal_conditioned_policy(agent, None), PM, path, tasks=(1, 3),
      episodes_per_task=1, max_episode_steps=3)
  assert len(seen) == 6 and all(x.shape == (1, 4) for x in seen)
  for x in seen[:3]:  # task 1, then task 3; each goal within the maze's 1.0 goal tolerance
    assert np.linalg.norm(x[0, 2:] - TASK_GOAL_XY[1]) < 1.0
  for x in seen[3:]:
    assert np.linalg.norm(x[0, 2:] - TASK_GOAL_XY[3]) < 1.0
  assert result["task1"] == result["task3"] == 0.0


def test_gcbc_recipe_trains_on_hindsight_goals_and_evaluates(tmp_path):
  """configs/offline/gcbc_pointmaze.py, shrunk: same data recipe and tasks as TD-JEPA's;
  a goal-conditioned BC actor on [s, g]; evaluation told the goal; a bad policy name."""
  from jaxrl_llm.offline import datasets, future_goals
  from jaxrl_llm.offline.agents import bc

  config = _load_config("gcbc_pointmaze.py")
  tdj = _load_config("td_jepa_pointmaze.py")
  assert config.ogbench == tdj.ogbench and config.dataset_path == tdj.dataset_path
  assert config.agent_name == "bc" and config.agent.goal_conditioned
  config.dataset_path = str(tmp_path / "pm.npz")
  config.ogbench.update(dict(num_episodes=2, episode_length=100, val_episodes=1))
  config.agent.hidden_dims = (8,)
  config.zero_shot.update(dict(episodes_per_task=1, max_episode_steps=5))
  ogbench_data.ensure_dataset(config)
  data = datasets.load_ogbench_npz(config.dataset_path)
  goal_data, sample = future_goals.training_data(config, data)
  batches = sample(jax.random.key(0), goal_data, 16, 2)
  state = bc.init(jax.random.key(1), jax.tree.map(lambda x: x[0], batches), config.agent)
  assert state.params["actor"]["params"]["MLP_0"]["Dense_0"]["kernel"].shape[0] == 4
  state, metrics = bc.update_n(state, batches)
  assert np.all(np.isfinite(metrics["actor_loss"]))
  row = ogbench_data.make_zero_shot_evaluator(config)(bc, state)
  assert set(row) == {f"eval/task{t}_success" for t in range(1, 6)} | {"eval/success_mean"}
  config.zero_shot.policy = "oracle"
  with pytest.raises(ValueError, match="config.zero_shot.policy must be one of"):
    ogbench_data.make_zero_shot_evaluator(config)

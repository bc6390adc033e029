"""Smoke tests of the offline recipes (configs/offline/*.py) through the library loop
(jaxrl_llm.offline.train) and the entry point experiments/offline.py, on a tiny
synthetic dataset (no env eval)."""

import importlib.util
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxrl_llm.offline import datasets
from jaxrl_llm.offline import prepare
from jaxrl_llm.offline import train as offline_train

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load(name, path):
  spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, path))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _smoke_config(recipe, workdir, **overrides):
  config = _load(f"cfg_{recipe}", f"configs/offline/{recipe}.py").get_config()
  config.dataset_format = "synthetic"
  config.dataset_path = ""
  config.synthetic.num_transitions = 600
  config.env_name = ""
  config.eval_episodes = 0
  config.agent.hidden_dims = (16, 16)
  config.batch_size = 32
  config.max_steps = 20
  config.steps_per_call = 10
  config.log_interval = 10
  config.checkpoint_interval = 10
  config.progress_bar = False
  config.workdir = str(workdir)
  config.update(overrides)
  return config


def test_iql_recipe_trains_logs_checkpoints_and_plots(tmp_path):
  config = _smoke_config("iql_hopper", tmp_path)
  state, summary = offline_train.train(config)
  assert int(state.step) == 20
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert [l["step"] for l in lines] == [10, 20]
  for key in ("train/critic_loss", "train/value_loss", "train/actor_loss"):
    assert np.isfinite(lines[-1][key])
  assert json.load(open(tmp_path / "scores.json"))["steps"] == 20
  assert summary["num_transitions"] == 600
  assert os.path.getsize(tmp_path / "curves.png") > 1000
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "20"]
  # The config's cosine-decay horizon follows the run length.
  assert state.config.max_steps == 20

  from jaxrl_llm.offline import agents

  data = datasets.synthetic_dataset(config.synthetic, seed=config.seed)
  cfg = agents.iql.get_config()
  cfg.update(config.agent.to_dict())
  template = agents.iql.init(jax.random.key(7), data, cfg)  # other key: values must come from disk
  restored = offline_train.restore_state(str(tmp_path), template)
  for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(state)):
    if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
      a, b = jax.random.key_data(a), jax.random.key_data(b)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_riql_recipe_with_reward_corruption(tmp_path):
  config = _smoke_config("riql_hopper", tmp_path, checkpoint_interval=0)
  config.agent.num_critics = 3
  config.corruption.fields = ("rewards",)
  state, summary = offline_train.train(config)
  assert int(state.step) == 20
  # 30 % of 600 transitions are corrupted (Bernoulli per transition).
  assert 0.2 < summary["corrupted"]["rewards"] < 0.4
  assert not os.path.exists(tmp_path / "checkpoints")


def test_bad_experiment_config_errors(tmp_path):
  config = _smoke_config("bc_hopper", tmp_path, max_steps=25)
  with pytest.raises(ValueError, match="steps_per_call"):
    offline_train.train(config)
  config = _smoke_config("bc_hopper", tmp_path, dataset_format="parquet")
  with pytest.raises(ValueError, match="dataset_format"):
    offline_train.train(config)


def _leaves(state):
  return [np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
                     else x) for x in jax.tree.leaves(state)]


def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path):
  import shutil

  full = _smoke_config("iql_hopper", tmp_path / "full", max_steps=30, checkpoints_to_keep=3)
  full_state, _ = offline_train.train(full)
  # An interrupted run: its last checkpoint is step 10 and it logged past it (step 20).
  cut = tmp_path / "cut"
  shutil.copytree(tmp_path / "full", cut)
  shutil.rmtree(cut / "checkpoints" / "30")
  shutil.rmtree(cut / "checkpoints" / "20")
  os.remove(cut / "scores.json")
  resumed_state, summary = offline_train.train(
      _smoke_config("iql_hopper", cut, max_steps=30, checkpoints_to_keep=3, resume=True))
  assert summary["resumed_from"] == 10
  for a, b in zip(_leaves(resumed_state), _leaves(full_state)):
    np.testing.assert_array_equal(a, b)
  # Lines logged after the checkpoint are replaced, not duplicated.
  assert [json.loads(l)["step"] for l in open(cut / "metrics.jsonl")] == [10, 20, 30]

  with pytest.raises(ValueError, match=r"\['seed'\]"):
    offline_train.train(_smoke_config("iql_hopper", cut, max_steps=30, checkpoints_to_keep=3,
                                      seed=5, resume=True))
  with pytest.raises(ValueError, match="config.resume"):
    offline_train.train(_smoke_config("iql_hopper", cut, max_steps=30, checkpoints_to_keep=3,
                                      resume=False))


def test_adversarial_corruption_attacks_a_trained_critic(tmp_path):
  from jaxrl_llm.offline import agents

  config = _smoke_config("iql_hopper", tmp_path, checkpoint_interval=0, max_steps=10)
  config.corruption.update(mode="adversarial", fields=("observations",), attack_steps=20,
                           attack_hidden_dims=(16, 16), seed=3, attack_grad_steps=20)
  clean = datasets.synthetic_dataset(config.synthetic, seed=config.seed)
  q_fn, _, info = prepare.train_attack_critic(config, clean)
  assert info["attack_steps"] == 20 and np.isfinite(info["attack_critic_loss"])

  corrupted, masks, _ = prepare.preprocess(config, clean)
  rows = masks["observations"]
  assert 0.2 < rows.mean() < 0.4
  delta = (corrupted.observations - clean.observations) / np.std(clean.observations, 0)
  assert np.all(delta[~rows] == 0)  # untouched rows stay clean
  assert np.max(np.abs(delta)) <= 1.0 + 1e-5  # projected onto [-scale, scale]·std
  # The attack lowers the attacked critic's Q on the corrupted rows, more than
  # random noise of the same size does.
  random_config = _smoke_config("iql_hopper", tmp_path, checkpoint_interval=0)
  random_config.corruption.update(mode="random", fields=("observations",), seed=3)
  noisy, _, _ = prepare.preprocess(random_config, clean)
  act = clean.actions[rows]
  q_clean = float(np.mean(q_fn(clean.observations[rows], act)))
  q_attacked = float(np.mean(q_fn(corrupted.observations[rows], act)))
  q_noisy = float(np.mean(q_fn(noisy.observations[rows], act)))
  assert q_attacked < q_clean and q_attacked < q_noisy

  _, summary = offline_train.train(config)
  assert summary["corruption"]["attack_agent"] == "iql"

  bad = _smoke_config("iql_hopper", tmp_path, checkpoint_interval=0)
  bad.corruption.update(mode="adversarial", fields=("actions",), attack_agent="bc")
  with pytest.raises(ValueError, match="attack_agent 'bc' has no critic"):
    prepare.preprocess(bad, clean)
  bad.corruption.update(mode="sneaky")
  with pytest.raises(ValueError, match="corruption.mode"):
    prepare.preprocess(bad, clean)


def test_attack_check_script_runs(tmp_path):
  import subprocess
  import sys

  result = subprocess.run(
      [sys.executable, os.path.join(ROOT, "experiments/offline_attack_check.py"),
       "--config=" + os.path.join(ROOT, "configs/offline/base.py"),
       "--config.corruption.attack_steps=20", "--config.steps_per_call=10",
       "--config.batch_size=32", "--config.corruption.attack_hidden_dims=(16,16)",
       "--config.corruption.attack_grad_steps=5", "--config.progress_bar=False",
       f"--config.workdir={tmp_path}"],
      capture_output=True, text=True, timeout=300, cwd=ROOT,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert result.returncode == 0, result.stderr[-3000:]
  out = json.load(open(tmp_path / "attack_check.json"))
  for field in ("observations", "actions", "dynamics"):
    assert set(out[field]) >= {"clean", "random", "adversarial"}
    # Fixed seeds: here the attack lowers the attacked critic's mean Q on its rows.
    assert out[field]["adversarial"] <= out[field]["clean"] + 1e-6


# f-DVL and ReCOIL recipes (configs/offline/fdvl_*.py, recoil_*.py).


def _recipe_config(recipe, workdir, *args):
  """A tiny synthetic run of an f-DVL / ReCOIL recipe (`args` go to its get_config)."""
  config = _load(f"cfg_{recipe}", f"configs/offline/{recipe}.py").get_config(*args)
  config.update(dataset_format="synthetic", dataset_path="", env_name="", eval_episodes=0,
                batch_size=32, max_steps=20, steps_per_call=10, log_interval=10,
                checkpoint_interval=0, progress_bar=False, tensorboard=False,
                workdir=str(workdir))
  config.synthetic.num_transitions = 600  # 12 episodes of 50 steps
  config.agent.hidden_dims = (16, 16)
  return config


def test_fdvl_recipe_trains(tmp_path):
  config = _recipe_config("fdvl_hopper", tmp_path, "total-variation")
  assert config.agent_name == "fdvl" and config.batch_size == 32
  state, summary = offline_train.train(config)
  assert int(state.step) == 20 and state.config.divergence == "total-variation"
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  for key in ("train/value_loss", "train/critic_loss", "train/actor_loss"):
    assert np.isfinite(lines[-1][key])


def test_recoil_recipe_trains_on_expert_and_mixed_parts(tmp_path):
  config = _recipe_config("recoil_hopper", tmp_path)
  config.expert.update(dataset_format="synthetic", dataset_path="", num_unlabelled_episodes=2,
                       expert_ratio=0.25)
  state, summary = offline_train.train(config)
  assert int(state.step) == 20
  assert summary["num_transitions_by_part"] == {"expert": 50, "mixed": 600 + 2 * 50}
  assert summary["num_transitions"] == 750
  row = json.loads(open(tmp_path / "metrics.jsonl").readlines()[-1])
  for key in ("train/critic_loss", "train/q_expert", "train/q_mixed", "train/actor_loss"):
    assert np.isfinite(row[key]), key
  # The loop's sampler: 8 of 32 rows from the one labelled episode (50 steps).
  from jaxrl_llm.offline import imitation
  mixture, sample = imitation.training_data(
      config, datasets.synthetic_dataset(config.synthetic, seed=config.seed),
      lambda source: prepare.load_dataset(source))
  assert mixture.expert.observations.shape[0] == 50
  assert mixture.mixed.observations.shape[0] == 600 + 2 * 50
  batches = sample(jax.random.key(0), mixture, 32, 3)
  assert batches.expert.observations.shape[:2] == (3, 8)
  assert batches.mixed.observations.shape[:2] == (3, 24)


def test_recoil_recipe_errors_name_the_expert_fields(tmp_path):
  config = _recipe_config("recoil_hopper", tmp_path)
  config.expert.update(dataset_format="synthetic", dataset_path="", num_unlabelled_episodes=50)
  with pytest.raises(ValueError, match="num_episodes must lie in"):
    offline_train.train(config)
  del config.expert["expert_ratio"]
  with pytest.raises(ValueError, match="config.expert.expert_ratio is missing"):
    offline_train.train(config)


def test_bc_few_expert_recipe_trains_on_one_recoil_part(tmp_path):
  """configs/offline/bc_few_expert_hopper.py:<part>: BC on the labelled expert episode or on
  the unlabelled mixture that ReCOIL's recipe builds (12 synthetic episodes of 50 steps)."""
  from jaxrl_llm.offline import imitation
  for part, rows in (("mixed", 600 + 2 * 50), ("expert", 50)):
    config = _recipe_config("bc_few_expert_hopper", tmp_path, part)
    config.expert.update(dataset_format="synthetic", dataset_path="", num_unlabelled_episodes=2)
    assert config.agent_name == "bc" and config.expert.train_on == part
    data, _ = imitation.training_data(
        config, datasets.synthetic_dataset(config.synthetic, seed=config.seed),
        lambda source: prepare.load_dataset(source))
    assert data.observations.shape[0] == rows
  state, summary = offline_train.train(config)  # the expert part: 50 rows, batches of 32
  assert int(state.step) == 20 and summary["agent"] == "bc"
  assert summary["num_transitions"] == 50  # the part it trained on, not the 600 random rows
  row = json.loads(open(tmp_path / "metrics.jsonl").readlines()[-1])
  assert np.isfinite(row["train/actor_loss"])
  with pytest.raises(ValueError, match="must be one of"):
    _recipe_config("bc_few_expert_hopper", tmp_path, "labelled")


def test_offline_claims_few_expert_and_fdvl_cells(tmp_path):
  """experiments/offline_claims.py: the issue-15 cells, the --agents filter and the
  few-expert --unlabelled_episodes override."""
  import argparse
  claims = _load("offline_claims", "experiments/offline_claims.py")
  args = argparse.Namespace(
      settings=["clean", "few-expert"], agents=["IQL", "f-DVL", "ReCOIL", "BC-expert",
                                                "BC-mixed"], seeds=[0, 1], root=str(tmp_path),
      datasets="/tmp/d", steps=2000, steps_per_call=1000, episodes=10, unlabelled_episodes=150)
  jobs = claims.pending(args)
  assert [(s, a, seed) for s, a, seed, _ in jobs][:5] == [
      ("clean", "IQL", 0), ("clean", "f-DVL", 0), ("few-expert", "ReCOIL", 0),
      ("few-expert", "BC-expert", 0), ("few-expert", "BC-mixed", 0)]
  assert len(jobs) == 10  # BC and RIQL of `clean` filtered out; 5 agents x 2 seeds
  for setting, agent, _, cmd in jobs:
    assert ("--config.expert.num_unlabelled_episodes=150" in cmd) == (setting == "few-expert")
  assert any(c.endswith("configs/offline/fdvl_hopper.py:chi-square") for c in jobs[1][3])
  assert any(c.endswith("bc_few_expert_hopper.py:mixed") for c in jobs[4][3])
  os.makedirs(claims.workdir(str(tmp_path), "clean", "IQL", 0))
  open(os.path.join(claims.workdir(str(tmp_path), "clean", "IQL", 0), "scores.json"), "w").close()
  assert len(claims.pending(args)) == 9  # a finished run is skipped
  for cand, base in (("f-DVL", "IQL"), ("ReCOIL", "BC-expert"), ("ReCOIL", "BC-mixed")):
    assert any(c[1:] == (cand, base) for c in claims.CLAIMS)


def test_entry_point_trains_then_refuses_the_used_workdir(tmp_path):
  """experiments/offline.py runs the library loop; a second run in the same workdir is
  refused (it names --config.resume / --config.overwrite) before any data is loaded."""
  args = [sys.executable, os.path.join(ROOT, "experiments/offline.py"),
          "--config=" + os.path.join(ROOT, "configs/offline/bc_hopper.py"),
          "--config.dataset_format=synthetic", "--config.dataset_path=",
          "--config.synthetic.num_transitions=200", "--config.env_name=",
          "--config.eval_episodes=0", "--config.agent.hidden_dims=(8,8)",
          "--config.batch_size=16", "--config.max_steps=10", "--config.steps_per_call=5",
          "--config.log_interval=5", "--config.checkpoint_interval=10",
          "--config.progress_bar=False", "--config.tensorboard=False",
          f"--config.workdir={tmp_path}"]
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  first = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "bc | synthetic | seed 42 | 10 steps" in first.stdout  # the score table
  assert json.load(open(tmp_path / "scores.json"))["steps"] == 10
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10"]
  second = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
  assert second.returncode != 0
  assert "already holds a run (checkpoints at steps [10])" in second.stderr
  assert "--config.resume=True" in second.stderr and "--config.overwrite=True" in second.stderr


def test_zero_shot_claim_commands_and_report(tmp_path, monkeypatch, capsys):
  """experiments/zero_shot_claim.py (issue 15 (c)): the two recipes per seed, finished runs
  skipped, and the report's per-task means and P(TD-JEPA > baseline) by hand."""
  import argparse
  claim = _load("zero_shot_claim", "experiments/zero_shot_claim.py")
  args = argparse.Namespace(steps=6000, steps_per_call=500, episodes=10, seeds=[0, 1],
                            agents=["TD-JEPA", "GCBC"], root=str(tmp_path / "runs"),
                            out=str(tmp_path / "out"), tag="zs", reps=200)
  cmd = claim.command(args, "GCBC", 1)
  assert any(c.endswith("configs/offline/gcbc_pointmaze.py") for c in cmd)
  assert "--config.seed=1" in cmd and "--config.max_steps=6000" in cmd
  assert "--config.zero_shot.episodes_per_task=10" in cmd
  success = {("TD-JEPA", 0): [0.1, 0, 0, 0, 0], ("TD-JEPA", 1): [0.3, 0.1, 0, 0, 0],
             ("GCBC", 0): [0.0] * 5, ("GCBC", 1): [0.0] * 5}
  for (agent, seed), rates in success.items():
    os.makedirs(claim.workdir(args, agent, seed))
    final = {f"eval/task{t}_success": r for t, r in zip(range(1, 6), rates)}
    final["eval/success_mean"] = sum(rates) / 5
    with open(os.path.join(claim.workdir(args, agent, seed), "scores.json"), "w") as f:
      json.dump({"steps": 6000, "wall_s": 1.0, "final_train": {}, "evaluations": [final]}, f)
  monkeypatch.setattr(claim, "random_rows", lambda args, path: [
      {"agent": "random", "seed": s, "steps": 0, **{f"task{t}": 0.0 for t in range(1, 6)},
       "mean": 0.0} for s in args.seeds])
  claim.report(args)
  table = json.load(open(tmp_path / "out" / "zs.json"))
  agg = table["aggregates"]
  assert agg["TD-JEPA"]["mean"] == pytest.approx(0.05)  # (0.1 + 0.3 + 0.1) / 10
  assert agg["TD-JEPA"]["per_seed"] == pytest.approx([0.02, 0.08])
  assert agg["GCBC"]["mean"] == 0.0 and agg["random"]["n"] == 2
  # Per task, P(x > y) + 0.5 P(x = y) against all-zero baselines: task 1 -> 1, task 2 -> 0.75
  # (one of the two TD-JEPA runs is 0), tasks 3-5 all ties -> 0.5; mean 3.25 / 5.
  for claim_row in table["claims"]:
    assert claim_row["p_improvement"] == pytest.approx(0.65)
  assert {c["baseline"] for c in table["claims"]} == {"random", "GCBC"}
  assert "| TD-JEPA | 1 | 6000 | 0.30 | 0.10 | 0.00 | 0.00 | 0.00 | 0.080 |" in capsys.readouterr().out

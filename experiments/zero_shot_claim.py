"""Issue 15 claim (c): TD-JEPA zero-shot success on the 5 pointmaze-medium tasks, against a
uniform-random policy and goal-conditioned BC (GCBC) trained on the same data.

  python experiments/zero_shot_claim.py run --steps=6000      # trains, one run at a time
  python experiments/zero_shot_claim.py report --steps=6000   # docs/results/*.json + table

Data: `configs/offline/td_jepa_pointmaze.py`'s `ogbench` recipe (made locally on first use,
1000 trajectories x 1001 steps of a noisy BFS-waypoint controller). TD-JEPA
(`td_jepa_pointmaze.py`) is reward-free in training and infers each task's z from the
relabelled rewards (`infer_task`); GCBC (`gcbc_pointmaze.py`) is told each task's goal
observation; the random policy draws U(-1, 1)^2 actions. Every policy is scored on the same
`--episodes` episodes per task (reset seeds 0, 1, ...; the configs' `zero_shot.seed`).
`run` calls experiments/offline.py under `nice -n 10` per (agent, seed), seed-major, and
skips runs whose scores.json exists. The random policy has no training seed: its rows are
evaluations with PRNG seeds 0, 1, 2 (and the same resets).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

DATASET = "pointmaze-medium-navigate-v0"
AGENTS = {"TD-JEPA": "configs/offline/td_jepa_pointmaze.py",
          "GCBC": "configs/offline/gcbc_pointmaze.py"}
TASKS = tuple(range(1, 6))


def workdir(args, agent, seed):
  return os.path.join(args.root, f"{agent.lower()}_s{seed}")


def command(args, agent, seed):
  return ["nice", "-n", "10", sys.executable, os.path.join(REPO, "experiments/offline.py"),
          f"--config={os.path.join(REPO, AGENTS[agent])}", f"--config.seed={seed}",
          f"--config.max_steps={args.steps}", f"--config.steps_per_call={args.steps_per_call}",
          f"--config.log_interval={args.steps_per_call}", "--config.eval_interval=0",
          f"--config.zero_shot.episodes_per_task={args.episodes}",
          "--config.checkpoint_interval=0", "--config.overwrite=True",
          "--config.progress_bar=False", f"--config.workdir={workdir(args, agent, seed)}"]


def run(args):
  for seed in args.seeds:
    for agent in args.agents:
      if os.path.exists(os.path.join(workdir(args, agent, seed), "scores.json")):
        continue
      t0 = time.time()
      print(f"[{time.strftime('%H:%M:%S')}] {agent} seed {seed}", flush=True)
      subprocess.run(command(args, agent, seed), check=True, stdout=subprocess.DEVNULL)
      print(f"  done in {time.time() - t0:.0f} s", flush=True)


def random_rows(args, path):
  """The random policy's success rates, one row per action-PRNG seed (same resets)."""
  import jax
  from jaxrl_llm.offline import ogbench_data
  rows = []
  for seed in args.seeds:
    uniform = ogbench_data.random_policy(2)

    def make_policy(task_id, data, seed=seed):
      policy = uniform(task_id, data)
      return lambda obs, key: policy(obs, jax.random.fold_in(key, seed))

    res = ogbench_data.evaluate_singletask(make_policy, DATASET, path,
                                           episodes_per_task=args.episodes, seed=0)
    rows.append({"agent": "random", "seed": seed, "steps": 0,
                 **{f"task{t}": res[f"task{t}"] for t in TASKS}, "mean": res["mean"]})
  return rows


def trained_rows(args):
  rows = []
  for seed in args.seeds:
    for agent in args.agents:
      path = os.path.join(workdir(args, agent, seed), "scores.json")
      if not os.path.exists(path):
        continue
      with open(path, encoding="utf-8") as f:
        summary = json.load(f)
      final = summary["evaluations"][-1]
      rows.append({"agent": agent, "seed": seed, "steps": summary["steps"],
                   "wall_s": summary["wall_s"],
                   "updates_per_s": summary["final_train"].get("train/updates_per_s"),
                   **{f"task{t}": final[f"eval/task{t}_success"] for t in TASKS},
                   "mean": final["eval/success_mean"]})
  return rows


def report(args):
  from jaxrl_llm.evaluation import stats
  path = f"/tmp/jaxrl_llm_ogbench/{DATASET}.npz"  # the recipes' dataset_path
  rows = trained_rows(args) + random_rows(args, path)
  table = {"steps": args.steps, "episodes_per_task": args.episodes, "dataset": DATASET,
           "runs": rows, "aggregates": {}, "claims": []}
  groups = {}
  for r in rows:
    groups.setdefault(r["agent"], []).append(r)
  for agent, rs in groups.items():
    scores = np.asarray([[r[f"task{t}"] for t in TASKS] for r in rs], np.float64)  # [runs, 5]
    point, ci = stats.stratified_bootstrap_ci(scores, stats.mean, reps=args.reps, seed=0)
    table["aggregates"][agent] = {"n": len(rs), "per_seed": [r["mean"] for r in rs],
                                  "mean": float(point), "mean_ci95": [float(ci[0]), float(ci[1])]}
  for base in ("random", "GCBC"):
    if "TD-JEPA" not in groups or base not in groups:
      continue
    x = np.asarray([[r[f"task{t}"] for t in TASKS] for r in groups["TD-JEPA"]])
    y = np.asarray([[r[f"task{t}"] for t in TASKS] for r in groups[base]])
    point, ci = stats.probability_of_improvement_ci(x, y, reps=args.reps, seed=0)
    table["claims"].append({"candidate": "TD-JEPA", "baseline": base,
                            "p_improvement": float(point),
                            "p_improvement_ci95": [float(ci[0]), float(ci[1])],
                            "mean_difference": float(x.mean() - y.mean())})
  os.makedirs(args.out, exist_ok=True)
  out = os.path.join(args.out, f"{args.tag}.json")
  with open(out, "w", encoding="utf-8") as f:
    json.dump(table, f, indent=2)
  print(f"wrote {out}")
  print("| policy | seed | steps | " + " | ".join(f"task{t}" for t in TASKS) + " | mean |")
  print("|---|---|---|" + "---|" * (len(TASKS) + 1))
  for r in rows:
    print(f"| {r['agent']} | {r['seed']} | {r['steps']} | "
          + " | ".join(f"{r[f'task{t}']:.2f}" for t in TASKS) + f" | {r['mean']:.3f} |")
  for agent, a in table["aggregates"].items():
    print(f"{agent}: mean {a['mean']:.3f} [{a['mean_ci95'][0]:.3f}, {a['mean_ci95'][1]:.3f}] "
          f"over {a['n']}")
  for c in table["claims"]:
    print(f"P(TD-JEPA > {c['baseline']}) = {c['p_improvement']:.2f} "
          f"[{c['p_improvement_ci95'][0]:.2f}, {c['p_improvement_ci95'][1]:.2f}]")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("command", choices=("run", "report"))
  parser.add_argument("--steps", type=int, default=6000)
  parser.add_argument("--steps_per_call", type=int, default=500)
  parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
  parser.add_argument("--root", default="/tmp/jaxrl_llm_zero_shot")
  parser.add_argument("--out", default=os.path.join(REPO, "docs", "results"))
  parser.add_argument("--tag", default=None)
  parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples")
  args = parser.parse_args()
  args.tag = args.tag or f"td_jepa_zero_shot_{args.steps}steps"
  run(args) if args.command == "run" else report(args)


if __name__ == "__main__":
  main()

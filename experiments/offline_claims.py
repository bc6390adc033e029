"""Reproduces the offline-RL claims tables of docs/results.md (issues 7 and 15), on CPU.

Claims (each over >= 3 training seeds, on locally generated Hopper-v5 data):
  issue 7, medium-replay:
  (a) IQL beats BC on clean data;
  (b) RIQL beats IQL under 30 % random corruption (scale 1.0) of rewards, and of dynamics
      (next observations), RIQL's protocol (Yang et al. 2023).
  issue 15:
  (c) f-DVL (χ²) against IQL on clean medium-replay data (setting `clean`, Sikchi et al. 2024);
  (d) setting `few-expert` (ReCOIL's protocol): ReCOIL with one labelled expert trajectory
      plus a mixture of the random data and unlabelled expert trajectories beats BC on the
      expert trajectory (BC-expert) and BC on the mixture (BC-mixed); all three read the same
      two parts (`offline.imitation.training_data`, `config.expert.train_on` for the BCs).
A clean-data RIQL control and each agent's drop from clean to corrupted data are reported
beside the claims.

  python experiments/offline_claims.py run --steps=20000     # trains, one run at a time
  python experiments/offline_claims.py report --steps=20000  # docs/results/*.json + PNG
  python experiments/offline_claims.py run --settings few-expert --jobs 2   # two at a time
  python experiments/offline_claims.py run --settings clean --agents IQL f-DVL

`run` calls experiments/offline.py once per (setting, agent, seed) with `nice -n 10` and
skips runs whose scores.json already exists. Training seed s also seeds the corruption
(RIQL draws its corrupted indices from the training seed). Evaluation: the final policy,
`--episodes` deterministic episodes on clean Hopper-v5, episode seeds 42, 43, ... (the
entry point's default, identical for every run; nothing is tuned on them).
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
DATASET = "jaxrl/hopper/medium-replay-v0"

# (setting, agent label, config argument, corrupted field or None)
RUNS = [
    ("clean", "BC", "configs/offline/bc_hopper.py", None),
    ("clean", "IQL", "configs/offline/iql_hopper.py", None),
    # Control: RIQL (its hopper/random/dynamics σ, α, K) on clean data, to separate
    # robustness to corruption from RIQL simply doing better on this data.
    ("clean", "RIQL", "configs/offline/riql_hopper.py:dynamics", None),
    ("rewards", "IQL", "configs/offline/iql_hopper.py", "rewards"),
    ("rewards", "RIQL", "configs/offline/riql_hopper.py:rewards", "rewards"),
    ("dynamics", "IQL", "configs/offline/iql_hopper.py", "dynamics"),
    ("dynamics", "RIQL", "configs/offline/riql_hopper.py:dynamics", "dynamics"),
    ("clean", "f-DVL", "configs/offline/fdvl_hopper.py:chi-square", None),
    # ReCOIL's few-expert data (random + expert datasets), rewards unused.
    ("few-expert", "ReCOIL", "configs/offline/recoil_hopper.py:random", None),
    ("few-expert", "BC-expert", "configs/offline/bc_few_expert_hopper.py:expert", None),
    ("few-expert", "BC-mixed", "configs/offline/bc_few_expert_hopper.py:mixed", None),
]
# (setting, candidate, baseline) for each claim, then the clean-data control.
CLAIMS = [("clean", "IQL", "BC"), ("rewards", "RIQL", "IQL"), ("dynamics", "RIQL", "IQL"),
          ("clean", "RIQL", "IQL"), ("clean", "f-DVL", "IQL"),
          ("few-expert", "ReCOIL", "BC-expert"), ("few-expert", "ReCOIL", "BC-mixed")]
# (agent, corrupted setting): how much each corruption costs the agent vs clean data.
DEGRADATION = [("IQL", "rewards"), ("IQL", "dynamics"), ("RIQL", "rewards"), ("RIQL", "dynamics")]


def workdir(root, setting, agent, seed):
  return os.path.join(root, f"{setting}_{agent.lower()}_s{seed}")


def command(args, setting, agent, config, field, seed):
  cmd = ["nice", "-n", "10", sys.executable, os.path.join(REPO, "experiments/offline.py"),
         f"--config={os.path.join(REPO, config)}",
         f"--config.minari_datasets_path={args.datasets}",
         f"--config.seed={seed}",
         f"--config.max_steps={args.steps}",
         f"--config.steps_per_call={args.steps_per_call}",
         f"--config.log_interval={args.steps_per_call}",
         "--config.eval_interval=0",  # final evaluation only
         f"--config.eval_episodes={args.episodes}",
         "--config.checkpoint_interval=0",
         "--config.overwrite=True",  # a run without scores.json was interrupted: start it again
         "--config.progress_bar=False",
         f"--config.workdir={workdir(args.root, setting, agent, seed)}"]
  if setting == "few-expert" and args.unlabelled_episodes is not None:
    cmd += [f"--config.expert.num_unlabelled_episodes={args.unlabelled_episodes}"]
  if field is None:
    cmd += ["--config.corruption.fields=()"]  # a recipe's default corruption is switched off
  else:
    cmd += ["--config.corruption.mode=random", f"--config.corruption.fields=('{field}',)",
            "--config.corruption.rate=0.3", "--config.corruption.scale=1.0",
            f"--config.corruption.seed={seed}"]
  return cmd


def pending(args):
  """(setting, agent, cmd) of every selected run without scores.json, seed-major."""
  todo = []
  for seed in args.seeds:  # seed-major order: an interrupted study still has whole seeds
    for setting, agent, config, field in RUNS:
      if setting not in args.settings or (args.agents and agent not in args.agents):
        continue
      out = workdir(args.root, setting, agent, seed)
      if os.path.exists(os.path.join(out, "scores.json")):
        continue
      todo.append((setting, agent, seed, command(args, setting, agent, config, field, seed)))
  return todo


def run(args):
  from concurrent.futures import ThreadPoolExecutor

  def one(job):
    setting, agent, seed, cmd = job
    print(" ".join(cmd[3:]), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    print(f"  {setting}/{agent}/seed {seed}: {time.time() - start:.0f} s wall", flush=True)

  with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # --jobs runs at a time
    for future in [pool.submit(one, job) for job in pending(args)]:
      future.result()  # a failed run raises here


def load(args):
  rows = []
  for seed in args.seeds:
    for setting, agent, _, _ in RUNS:
      path = os.path.join(workdir(args.root, setting, agent, seed), "scores.json")
      if not os.path.exists(path):
        continue
      with open(path, encoding="utf-8") as f:
        summary = json.load(f)
      final = summary["evaluations"][-1]
      train = summary["final_train"]
      rows.append(dict(
          setting=setting, agent=agent, seed=seed, steps=summary["steps"],
          wall_s=summary["wall_s"], corrupted_fraction=summary["corrupted"],
          return_mean=final["eval/return_mean"], return_std=final["eval/return_std"],
          d4rl_score=final["eval/normalized_score"],
          local_score=final.get("eval/local_normalized_score"),
          updates_per_s=train.get("train/updates_per_s")))
  return rows


def report(args):
  from jaxrl_llm.evaluation import stats

  rows = load(args)
  os.makedirs(args.out, exist_ok=True)
  table = {"steps": args.steps, "episodes": args.episodes, "dataset": DATASET, "runs": rows,
           "aggregates": {}, "claims": []}
  if any(r["setting"] == "few-expert" for r in rows):
    table["few_expert_data"] = {
        "labelled": "1 episode of jaxrl/hopper/expert-v0",
        "mixed": "jaxrl/hopper/random-v0 + the next unlabelled_episodes expert episodes",
        "unlabelled_episodes": args.unlabelled_episodes}  # None: recoil_hopper.py's default
  groups = {}
  for r in rows:
    groups.setdefault((r["setting"], r["agent"]), []).append(r)
  for (setting, agent), rs in groups.items():
    for key in ("d4rl_score", "local_score"):
      scores = np.asarray([[r[key]] for r in rs], np.float64)  # [runs, 1 task]
      entry = {"n": len(rs), "per_seed": scores[:, 0].tolist()}
      for name, fn in (("mean", stats.mean), ("iqm", stats.iqm)):
        point, ci = stats.stratified_bootstrap_ci(scores, fn, reps=args.reps, seed=0)
        entry[name] = float(point)
        entry[f"{name}_ci95"] = [float(ci[0]), float(ci[1])]
      table["aggregates"][f"{setting}/{agent}/{key}"] = entry
  for setting, cand, base in CLAIMS:
    if (setting, cand) not in groups or (setting, base) not in groups:
      continue
    x = np.asarray([[r["d4rl_score"]] for r in groups[(setting, cand)]])
    y = np.asarray([[r["d4rl_score"]] for r in groups[(setting, base)]])
    point, ci = stats.probability_of_improvement_ci(x, y, reps=args.reps, seed=0)
    table["claims"].append({"setting": setting, "candidate": cand, "baseline": base,
                            "n_candidate": len(x), "n_baseline": len(y),
                            "p_improvement": float(point), "p_improvement_ci95": [float(ci[0]), float(ci[1])],
                            "mean_difference": float(x.mean() - y.mean())})
  table["degradation"] = []
  for agent, setting in DEGRADATION:
    if ("clean", agent) not in groups or (setting, agent) not in groups:
      continue
    clean = np.asarray([[r["d4rl_score"]] for r in groups[("clean", agent)]])
    corrupted = np.asarray([[r["d4rl_score"]] for r in groups[(setting, agent)]])
    point, ci = stats.probability_of_improvement_ci(clean, corrupted, reps=args.reps, seed=0)
    table["degradation"].append({
        "agent": agent, "setting": setting, "clean_mean": float(clean.mean()),
        "corrupted_mean": float(corrupted.mean()),
        "drop": float(clean.mean() - corrupted.mean()),
        "p_clean_better": float(point), "p_clean_better_ci95": [float(ci[0]), float(ci[1])]})
  path = os.path.join(args.out, f"{args.tag}.json")
  with open(path, "w", encoding="utf-8") as f:
    json.dump(table, f, indent=2)
  print(f"wrote {path}")
  plot(table, os.path.join(args.out, f"{args.tag}.png"))
  print_markdown(table)


def plot(table, path):
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(7, 3.2))
  labels = []
  for i, (setting, agent, _, _) in enumerate(RUNS):
    entry = table["aggregates"].get(f"{setting}/{agent}/d4rl_score")
    if entry is None:
      continue
    lo, hi = entry["iqm_ci95"]
    ax.plot([lo, hi], [i, i], color="C0", lw=6, alpha=0.35, solid_capstyle="butt")
    ax.plot(entry["per_seed"], [i] * entry["n"], "k.", ms=5)
    ax.plot([entry["iqm"]], [i], "C3|", ms=14, mew=2)
    labels.append((i, f"{agent} ({setting})"))
  ax.set_yticks([i for i, _ in labels], [l for _, l in labels])
  ax.invert_yaxis()
  ax.set_xlabel("D4RL-normalised score (IQM, 95% bootstrap CI; dots = seeds)")
  ax.set_title(f"Hopper-v5 (local data), {table['steps']} gradient steps")
  ax.grid(axis="x", alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)
  print(f"wrote {path}")


def print_markdown(table):
  print("| setting | agent | seeds | per-seed D4RL score | mean [95% CI] | IQM [95% CI] | "
        "per-seed local-ref score | wall s/run |")
  print("|---|---|---|---|---|---|---|---|")
  for setting, agent, _, _ in RUNS:
    e = table["aggregates"].get(f"{setting}/{agent}/d4rl_score")
    if e is None:
      continue
    loc = table["aggregates"][f"{setting}/{agent}/local_score"]
    walls = [r["wall_s"] for r in table["runs"] if r["setting"] == setting and r["agent"] == agent]
    print(f"| {setting} | {agent} | {e['n']} | {', '.join(f'{s:.1f}' for s in e['per_seed'])} | "
          f"{e['mean']:.1f} [{e['mean_ci95'][0]:.1f}, {e['mean_ci95'][1]:.1f}] | "
          f"{e['iqm']:.1f} [{e['iqm_ci95'][0]:.1f}, {e['iqm_ci95'][1]:.1f}] | "
          f"{', '.join(f'{s:.1f}' for s in loc['per_seed'])} | "
          f"{np.mean(walls):.0f} |")
  print()
  print("| claim | P(candidate > baseline) [95% CI] | mean difference | holds? |")
  print("|---|---|---|---|")
  for c in table["claims"]:
    lo, hi = c["p_improvement_ci95"]
    print(f"| {c['candidate']} > {c['baseline']} ({c['setting']}) | {c['p_improvement']:.2f} "
          f"[{lo:.2f}, {hi:.2f}] | {c['mean_difference']:+.1f} | |")
  if table.get("degradation"):
    print()
    print("| agent | corruption | clean mean | corrupted mean | drop | P(clean > corrupted) [95% CI] |")
    print("|---|---|---|---|---|---|")
    for d in table["degradation"]:
      lo, hi = d["p_clean_better_ci95"]
      print(f"| {d['agent']} | {d['setting']} | {d['clean_mean']:.1f} | {d['corrupted_mean']:.1f} | "
            f"{d['drop']:+.1f} | {d['p_clean_better']:.2f} [{lo:.2f}, {hi:.2f}] |")


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("mode", choices=["run", "report"])
  parser.add_argument("--steps", type=int, default=20000)
  parser.add_argument("--steps_per_call", type=int, default=1000)
  parser.add_argument("--episodes", type=int, default=10)
  parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
  parser.add_argument("--datasets", default=os.environ.get("MINARI_DATASETS_PATH", "/tmp/jaxrl_datasets"))
  parser.add_argument("--root", default="/tmp/jaxrl_llm_offline/claims")
  parser.add_argument("--out", default=os.path.join(REPO, "docs/results"))
  parser.add_argument("--reps", type=int, default=10000)
  parser.add_argument("--settings", nargs="+", default=["clean", "rewards", "dynamics"],
                      choices=sorted({r[0] for r in RUNS}),
                      help="which settings `run` trains (report reads whatever exists)")
  parser.add_argument("--agents", nargs="+", default=None, choices=sorted({r[1] for r in RUNS}),
                      help="only these agents (default: every agent of the settings)")
  parser.add_argument("--jobs", type=int, default=1, help="runs trained at the same time")
  parser.add_argument("--unlabelled_episodes", type=int, default=None,
                      help="few-expert: expert.num_unlabelled_episodes (default: the recipe's)")
  parser.add_argument("--tag", default="offline_claims", help="file stem of the report outputs")
  args = parser.parse_args()
  if args.steps % args.steps_per_call:
    raise ValueError(f"--steps ({args.steps}) must be a multiple of --steps_per_call ({args.steps_per_call})")
  run(args) if args.mode == "run" else report(args)


if __name__ == "__main__":
  main()

"""The reasoning-boundary crossover at toy scale: does GRPO win at pass@1 while its SFT
starting point matches or overtakes it at large k? (Yue et al. 2025, arXiv 2504.13837.)

Per seed s (experiments/dph_rl_claim.py's Countdown setup):

  sft    --sft_steps of SFT of the tiny character-level Llama on clean Countdown
         demonstrations (configs/sft_countdown.py via dph_rl_claim.configs_for), seed s
  grpo   --rl_steps of GRPO from that SFT model on the Countdown train split (32 prompts x
         16, lr 5e-4, PPO clip 0.2 / 0.28, token mean, no KL, no dynamic sampling), seed s
  eval   experiments/reasoning_boundary.py on both: n = --n samples at T = 1 of each of the
         first --num_problems held-out problems (sampling key key(s), the same for both)

Summary: per k, the mean over seeds of pass@k per model with a percentile-bootstrap band
over problems of the seed-averaged per-problem pass@k (same problems for every seed and
model, so one resample index serves both models and their difference), the per-seed values,
and Δ = GRPO − SFT with its band; the crossover is the smallest k with Δ <= 0.

    python experiments/boundary_claim.py --workdir=/tmp/jaxrl_llm/boundary_claim [--seeds=3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

MODELS = ("sft", "grpo")


def grpo_config(workdir, task, init_from, seed, steps):
  from experiments import dph_rl_claim
  _, c = dph_rl_claim.configs_for(task)
  c.workdir = workdir
  c.init_from = init_from
  c.seed = seed
  c.steps = steps
  c.eval_every = steps
  c.eval_size = 200
  c.eval_at_start = False
  c.checkpoint_every = steps
  c.overwrite, c.resume, c.progress_bar = True, False, False
  return c


def summarize(per_seed: dict, *, reps: int = 10000, confidence: float = 0.95, seed: int = 0):
  """``per_seed[s][model]`` = reasoning_boundary curves (with ``correct_counts``)."""
  from jaxrl_llm.evaluation import boundary
  seeds = sorted(per_seed)
  first = per_seed[seeds[0]]["sft"]
  n, ks = first["n"], first["ks"]
  per_problem = {m: np.mean([boundary.pass_at_k_per_problem(
      np.asarray(per_seed[s][m]["correct_counts"]), n, ks) for s in seeds], axis=0)
      for m in MODELS}  # [P, K], averaged over seeds
  rng = np.random.default_rng(seed)
  idx = rng.integers(0, per_problem["sft"].shape[0], size=(reps, per_problem["sft"].shape[0]))
  a = (1 - confidence) / 2
  out = {"ks": ks, "n": n, "seeds": seeds, "num_problems": int(per_problem["sft"].shape[0])}
  series = dict(per_problem, delta=per_problem["grpo"] - per_problem["sft"])
  for name, x in series.items():
    boot = x[idx].mean(axis=1)
    lo, hi = np.quantile(boot, [a, 1 - a], axis=0)
    out[name] = {"mean": x.mean(0).tolist(), "low": lo.tolist(), "high": hi.tolist()}
    if name in MODELS:
      out[name]["per_seed"] = [per_seed[s][name]["pass_at_k"] for s in seeds]
  d = np.asarray(out["delta"]["mean"])
  out["crossover_k"] = next((k for k, v in zip(ks, d) if v <= 0), None)
  return out


def format_table(summary):
  rows = ["| k | SFT pass@k | GRPO pass@k | GRPO − SFT | per-seed SFT | per-seed GRPO |",
          "|---|---|---|---|---|---|"]
  def cell(s, i, sign=""):
    lo, hi = 100 * s["low"][i], 100 * s["high"][i]
    return f"{100 * s['mean'][i]:{sign}5.1f} [{lo:{sign}5.1f}, {hi:{sign}5.1f}]"

  for i, k in enumerate(summary["ks"]):
    seeds = lambda m: " / ".join(f"{100 * p[i]:.1f}" for p in summary[m]["per_seed"])  # noqa: E731
    rows.append(f"| {k} | {cell(summary['sft'], i)} | {cell(summary['grpo'], i)} | "
                f"{cell(summary['delta'], i, '+')} | {seeds('sft')} | {seeds('grpo')} |")
  return "\n".join(rows)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="/tmp/jaxrl_llm/boundary_claim")
  parser.add_argument("--task", default="countdown", choices=("countdown", "arithmetic"))
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--sft_steps", type=int, default=3000)
  parser.add_argument("--rl_steps", type=int, default=100)
  parser.add_argument("--n", type=int, default=256)
  parser.add_argument("--num_problems", type=int, default=100)
  parser.add_argument("--sample_chunk", type=int, default=64)
  parser.add_argument("--prompts_per_batch", type=int, default=8)
  args = parser.parse_args(argv)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  from configs import reasoning_boundary as boundary_config
  from experiments import demo_rlvr, dph_rl_claim, reasoning_boundary, rl
  os.makedirs(args.workdir, exist_ok=True)
  demo_rlvr.enable_compilation_cache(os.path.join(args.workdir, "jax_cache"))
  t0 = time.time()
  log = {"args": vars(args), "runs": {}}
  per_seed = {}
  for seed in range(args.seeds):
    sdir = os.path.join(args.workdir, f"seed{seed}")
    t1 = time.time()
    s_cfg, _ = dph_rl_claim.configs_for(args.task)
    s_cfg.workdir, s_cfg.seed, s_cfg.steps = os.path.join(sdir, "sft"), seed, args.sft_steps
    s_cfg.eval_every = s_cfg.checkpoint_every = args.sft_steps
    s_cfg.overwrite, s_cfg.resume, s_cfg.progress_bar = True, False, False
    from experiments import sft
    sft_acc = sft.run(s_cfg)["eval/accuracy"]
    t2 = time.time()
    g_cfg = grpo_config(os.path.join(sdir, "grpo"), args.task, s_cfg.workdir, seed,
                        args.rl_steps)
    grpo_acc = rl.run(g_cfg)["eval/accuracy"]
    t3 = time.time()
    b = boundary_config.get_config()
    _, r = dph_rl_claim.configs_for(args.task)
    b.task, b.model = r.task, r.model
    b.max_new_tokens = r.sampling.max_new_tokens
    b.sampling.temperature = r.sampling.temperature
    b.output_dir = os.path.join(sdir, "boundary")
    b.checkpoints = f"sft={s_cfg.workdir},grpo={g_cfg.workdir}"
    b.n, b.num_problems, b.sample_chunk = args.n, args.num_problems, args.sample_chunk
    b.prompts_per_batch, b.seed, b.progress_bar = args.prompts_per_batch, seed, False
    b.title = f"Countdown, seed {seed}: pass@k (n={args.n}, {args.num_problems} problems)"
    out = reasoning_boundary.run(b)
    per_seed[seed] = out["checkpoints"]
    log["runs"][str(seed)] = {
        "sft_greedy": sft_acc, "grpo_greedy": grpo_acc, "sft_s": t2 - t1, "grpo_s": t3 - t2,
        "eval_s": time.time() - t3, "curves": out["checkpoints"]}
    print(f"seed {seed}: SFT greedy {sft_acc:.3f} ({t2 - t1:.0f} s), GRPO greedy {grpo_acc:.3f} "
          f"({t3 - t2:.0f} s), boundary eval {time.time() - t3:.0f} s; total "
          f"{time.time() - t0:.0f} s", flush=True)
    with open(os.path.join(args.workdir, "boundary_claim.json"), "w") as f:
      json.dump(log, f)
  log["summary"] = summarize(per_seed)
  log["wall_s"] = time.time() - t0
  from jaxrl_llm.evaluation import boundary
  s = log["summary"]
  boundary.plot_pass_at_k(
      {m: {"ks": s["ks"], "pass_at_k": s[m]["mean"], "low": s[m]["low"], "high": s[m]["high"]}
       for m in MODELS}, os.path.join(args.workdir, "pass_at_k.png"),
      title=f"Countdown, {len(s['seeds'])} seeds, n={s['n']}, {s['num_problems']} problems "
            "(95% bands over problems)")
  with open(os.path.join(args.workdir, "boundary_claim.json"), "w") as f:
    json.dump(log, f, indent=1)
  print(format_table(s))
  print(f"crossover k (first k with GRPO - SFT <= 0): {s['crossover_k']}")
  print(f"total wall time {log['wall_s']:.0f} s", flush=True)
  return log


if __name__ == "__main__":
  main()

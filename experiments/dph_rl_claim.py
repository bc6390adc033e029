"""DPH-RL's claim at toy scale: f-divergence rehearsal (forward KL, JS) keeps pass@k at
large k closer to the starting model than reverse KL or no divergence.

Li et al. 2025, "The Choice of Divergence: A Neglected Key to Mitigating Diversity
Collapse in Reinforcement Learning with Verifiable Reward", arXiv 2509.07430.

Stages (one workdir; every stage is started fresh):

  sft        SFT of the tiny character-level Llama on clean Countdown (or arithmetic)
             demonstrations (configs/sft_countdown.py; --sft_steps), seed 0: pi_0.
  presample  pi_0 samples each of --num_problems training problems k = 8 times at T = 1;
             solved 8/8 -> D_pef (one correct sample + pi_0's log-probs stored in
             rehearsal.npz), the others -> D_exp (d_exp.jsonl, the RL prompts of every arm).
  arms       per seed, the same --rl_steps from pi_0 on D_exp (32 prompts x 16, lr 5e-4,
             PPO clip 0.2 / 0.28, GRPO advantages, token mean):
               grpo         no divergence
               reverse_kl   + kl_coef * k3 KL(pi_theta || pi_0) on the RL samples
               dph_forward  DPH-RL, 64 rehearsal rows, eta * forward KL (u - log u - 1)
               dph_js       DPH-RL, 64 rehearsal rows, eta * js_low_var
  eval       pass@k for k = 1 .. 64 (unbiased estimator, n = 64 samples at T = 1 per
             held-out test problem) of pi_0 and of every arm; pi_0 is evaluated with each
             seed's sampling key.

Summary: mean and 95 % percentile-bootstrap CI over seeds (10,000 resamples of the
seeds) of pass@1 and pass@64 per arm, and of the per-seed differences to pi_0.

    python experiments/dph_rl_claim.py --workdir=/tmp/jaxrl_llm/dph_rl_claim [--seeds=3]
    python experiments/dph_rl_claim.py --stage=presample --init_from=DIR --workdir=DIR2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

ARMS = ("grpo", "reverse_kl", "dph_forward", "dph_js")
KS = tuple(range(1, 65))


def bootstrap_ci(values, *, reps: int = 10000, confidence: float = 0.95, seed: int = 0):
  """``(mean, low, high)``: percentile bootstrap CI of the mean of ``values``.

  Resamples the ``n`` values with replacement ``reps`` times and takes the
  ``(1 -+ confidence) / 2`` quantiles of the resampled means (Efron & Tibshirani 1993).
  With 3 seeds the interval cannot be wider than the range of the values.
  """
  x = np.asarray(values, np.float64)
  if x.ndim != 1 or x.size < 1:
    raise ValueError(f"bootstrap_ci needs a 1-d array of values, got shape {x.shape}")
  rng = np.random.default_rng(seed)
  means = x[rng.integers(0, x.size, size=(reps, x.size))].mean(axis=1)
  a = (1.0 - confidence) / 2
  return float(x.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def configs_for(task: str):
  from configs import demo_rlvr
  s, r = demo_rlvr.get_configs(task)
  r.rl.dynamic_sampling = False  # the same prompts for every arm
  r.rl.reward_shaping = "none"
  r.rl.reward_shaping_kwargs = {}
  r.rl.loss = "ppo"
  r.rl.loss_kwargs = {"clip_low": 0.2, "clip_high": 0.28, "agg_mode": "token-mean"}
  r.rl.kl = ""
  r.rl.kl_coef = 0.0
  return s, r


def run_sft(workdir, task, steps):
  from experiments import sft
  s, _ = configs_for(task)
  s.workdir = os.path.join(workdir, "sft")
  s.seed = 0
  s.steps = steps
  s.eval_every = steps
  s.checkpoint_every = steps
  s.overwrite, s.resume, s.progress_bar = True, False, False
  return sft.run(s)["eval/accuracy"], s.workdir


def run_presample(workdir, task, init_from, num_problems, k):
  import jax
  from jaxrl_llm import data
  from jaxrl_llm.data import rehearsal as rehearsal_data
  from jaxrl_llm.training import presample, setup
  _, r = configs_for(task)
  config, params, tokenizer, _ = setup.build_model(r.model, init_from, 0)
  exs = data.distinct_examples(setup.build_task(r.task, "train"), num_problems, seed=0)
  out = presample.presample(config, params, tokenizer, exs, setup.build_reward_fn(r.task),
                            jax.random.key(1), k=k, max_new_tokens=r.sampling.max_new_tokens,
                            temperature=r.sampling.temperature, prompts_per_batch=64,
                            stop_tokens=setup.stop_tokens(config, tokenizer),
                            add_bos=r.task.add_bos)
  if out.rehearsal is None:
    raise ValueError(f"D_pef is empty (no problem solved {k}/{k}): train the SFT model longer")
  paths = {"rehearsal": os.path.join(workdir, "rehearsal.npz"),
           "d_exp": os.path.join(workdir, "d_exp.jsonl")}
  rehearsal_data.save_rehearsal(paths["rehearsal"], out.rehearsal,
                                {"k": k, "temperature": r.sampling.temperature,
                                 "init_from": init_from, "task": task})
  rehearsal_data.save_examples(paths["d_exp"], out.exp_examples)
  counts = np.bincount((out.rewards >= 1.0).sum(1), minlength=k + 1).tolist()
  return {**out.metrics, "correct_count_histogram": counts, **paths}


def arm_config(arm, workdir, task, init_from, seed, steps, paths, *, eta_forward, eta_js,
               kl_coef, rehearsal_rows):
  from configs import dph_rl_arithmetic
  _, c = configs_for(task)
  c.workdir = os.path.join(workdir, f"seed{seed}", arm)
  c.init_from = init_from
  c.seed = seed
  c.steps = steps
  c.eval_every = steps
  c.eval_size = 200
  c.eval_at_start = False
  c.checkpoint_every = steps
  c.overwrite, c.resume, c.progress_bar = True, False, False
  c.task.train_examples = paths["d_exp"]
  if arm == "reverse_kl":
    c.rl.kl = "k3"
    c.rl.kl_coef = kl_coef
  elif arm in ("dph_forward", "dph_js"):
    dph_rl_arithmetic.apply_dph_rl(
        c, rehearsal_path=paths["rehearsal"], exp_path=paths["d_exp"],
        divergence="forward_kl" if arm == "dph_forward" else "js",
        eta=eta_forward if arm == "dph_forward" else eta_js, rehearsal_rows=rehearsal_rows)
  elif arm != "grpo":
    raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
  return c


def pass_at_k_eval(task, model_dir, seed, *, num_problems, n, prompts_per_batch=16):
  """Mean pass@k over held-out problems for k in KS (n samples each at T = 1)."""
  import jax
  from jaxrl_llm import evaluation
  from jaxrl_llm.training import rollout, setup
  _, r = configs_for(task)
  config, params, tokenizer, _ = setup.build_model(r.model, model_dir, 0)
  exs = setup.eval_examples(r.task, num_problems)
  reward_fn = setup.build_reward_fn(r.task)
  stops = setup.stop_tokens(config, tokenizer)
  key = jax.random.key(10_000 + seed)
  correct = []
  for i in range(0, len(exs), prompts_per_batch):
    chunk = exs[i:i + prompts_per_batch]
    n_real = len(chunk)
    chunk = chunk + [chunk[-1]] * (prompts_per_batch - n_real)
    key, sub = jax.random.split(key)
    rd = rollout.sample_groups(config, params, tokenizer, chunk, sub, group_size=n,
                               max_new_tokens=r.sampling.max_new_tokens,
                               temperature=r.sampling.temperature, stop_tokens=stops,
                               add_bos=r.task.add_bos)
    rew = rollout.score(reward_fn, rd.texts, chunk, n).reshape(prompts_per_batch, n)[:n_real]
    correct.extend((rew >= 1.0).sum(1).tolist())
  c = np.asarray(correct, np.int64)
  return {"pass_at_k": [float(np.mean(evaluation.pass_at_k(n, c, k))) for k in KS],
          "correct": c.tolist()}


def summarize(results, seeds, arms=ARMS):
  out = {}
  for name in ("base",) + tuple(arms):
    per = [results[str(s)][name]["pass_at_k"] for s in seeds]
    row = {}
    for k in (1, 4, 16, 64):
      vals = [p[k - 1] for p in per]
      row[f"pass@{k}"] = {"values": vals, "ci": bootstrap_ci(vals)}
      if name != "base":
        d = [p[k - 1] - results[str(s)]["base"]["pass_at_k"][k - 1] for p, s in zip(per, seeds)]
        row[f"delta_pass@{k}"] = {"values": d, "ci": bootstrap_ci(d)}
    out[name] = row
  return out


def format_table(summary):
  pct = lambda ci: f"{100 * ci[0]:5.1f} [{100 * ci[1]:5.1f}, {100 * ci[2]:5.1f}]"  # noqa: E731
  dpt = lambda ci: f"{100 * ci[0]:+5.1f} [{100 * ci[1]:+5.1f}, {100 * ci[2]:+5.1f}]"  # noqa: E731
  lines = ["| model | pass@1 | pass@4 | pass@16 | pass@64 | Δpass@1 vs π0 | Δpass@64 vs π0 |",
           "|---|---|---|---|---|---|---|"]
  for name, row in summary.items():
    cells = [pct(row[f"pass@{k}"]["ci"]) for k in (1, 4, 16, 64)]
    if name == "base":
      cells += ["", ""]
    else:
      cells += [dpt(row["delta_pass@1"]["ci"]), dpt(row["delta_pass@64"]["ci"])]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="/tmp/jaxrl_llm/dph_rl_claim")
  parser.add_argument("--stage", default="all", choices=("all", "presample"))
  parser.add_argument("--task", default="countdown", choices=("countdown", "arithmetic"))
  parser.add_argument("--init_from", default="", help="an SFT workdir; empty: train one")
  parser.add_argument("--sft_steps", type=int, default=3000)
  parser.add_argument("--num_problems", type=int, default=3072, help="pre-sampled problems")
  parser.add_argument("--k", type=int, default=8)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--rl_steps", type=int, default=100)
  parser.add_argument("--arms", default=",".join(ARMS))
  parser.add_argument("--eta_forward", type=float, default=1.0)
  parser.add_argument("--eta_js", type=float, default=1.0)
  parser.add_argument("--kl_coef", type=float, default=0.1)
  parser.add_argument("--rehearsal_rows", type=int, default=64)
  parser.add_argument("--eval_problems", type=int, default=200)
  parser.add_argument("--eval_n", type=int, default=64)
  args = parser.parse_args(argv)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  from experiments import demo_rlvr, rl
  os.makedirs(args.workdir, exist_ok=True)
  demo_rlvr.enable_compilation_cache(os.path.join(args.workdir, "jax_cache"))
  t0 = time.time()
  log = {"args": vars(args)}
  init_from = args.init_from
  if not init_from and args.stage == "all":
    acc, init_from = run_sft(args.workdir, args.task, args.sft_steps)
    log["sft"] = {"greedy_accuracy": acc, "wall_s": time.time() - t0}
    print(f"SFT {args.sft_steps} steps: greedy {100 * acc:.1f}% ({time.time() - t0:.0f} s)",
          flush=True)
  if not init_from:
    raise ValueError("--stage=presample needs --init_from (an SFT workdir)")
  split = run_presample(args.workdir, args.task, init_from, args.num_problems, args.k)
  log["presample"] = split
  print(f"presample: {json.dumps(split)} ({time.time() - t0:.0f} s)", flush=True)
  if args.stage == "presample":
    return log
  paths = {"rehearsal": split["rehearsal"], "d_exp": split["d_exp"]}
  arms = [a for a in args.arms.split(",") if a]
  seeds = list(range(args.seeds))
  results = {}
  for seed in seeds:
    res = {"base": pass_at_k_eval(args.task, init_from, seed, num_problems=args.eval_problems,
                                  n=args.eval_n)}
    print(f"seed {seed} base: pass@1 {res['base']['pass_at_k'][0]:.3f} "
          f"pass@64 {res['base']['pass_at_k'][-1]:.3f} ({time.time() - t0:.0f} s)", flush=True)
    for arm in arms:
      c = arm_config(arm, args.workdir, args.task, init_from, seed, args.rl_steps, paths,
                     eta_forward=args.eta_forward, eta_js=args.eta_js, kl_coef=args.kl_coef,
                     rehearsal_rows=args.rehearsal_rows)
      t1 = time.time()
      summary = rl.run(c)
      ev = pass_at_k_eval(args.task, c.workdir, seed, num_problems=args.eval_problems,
                          n=args.eval_n)
      with open(os.path.join(c.workdir, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f if "train/loss" in line][-1]
      ev.update({"greedy_accuracy": summary["eval/accuracy"], "wall_s": time.time() - t1,
                 "last_train": {k: v for k, v in last.items()
                                if k.startswith("train/") and isinstance(v, float)}})
      res[arm] = ev
      print(f"seed {seed} {arm}: pass@1 {ev['pass_at_k'][0]:.3f} pass@64 "
            f"{ev['pass_at_k'][-1]:.3f} greedy {summary['eval/accuracy']:.3f} "
            f"({ev['wall_s']:.0f} s)", flush=True)
    results[str(seed)] = res
    with open(os.path.join(args.workdir, "claim_results.json"), "w") as f:
      json.dump({**log, "results": results}, f)
  log["results"] = results
  log["summary"] = summarize(results, seeds, arms)
  print(format_table(log["summary"]))
  log["wall_s"] = time.time() - t0
  with open(os.path.join(args.workdir, "claim_results.json"), "w") as f:
    json.dump(log, f, indent=1)
  print(f"total wall time {log['wall_s']:.0f} s", flush=True)
  return log


if __name__ == "__main__":
  main()

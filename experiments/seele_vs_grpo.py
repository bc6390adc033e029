"""SEELE vs plain GRPO on the problems a weak SFT policy cannot solve (Countdown, toy scale).

SEELE (arXiv 2509.06923, spec section 12) hints a prefix of the reference solution so each
problem's rollout accuracy sits near a* = 0.5; its premise is that on hard problems plain
GRPO sees mostly all-wrong groups (zero advantage). Stages (one workdir, started fresh):

  sft        configs/sft_countdown.py for --sft_steps (seed 0): pi_0.
  split      pi_0 samples --num_problems distinct training problems and --eval_problems
             held-out test problems k = 8 times at T = 1; "hard" = at most --hard_max of 8
             correct. The hard training problems are every arm's RL prompts
             (task.train_examples).
  arms       per seed, --rl_steps from pi_0, 32 problems x 16 rollouts per step, lr 5e-4,
             no KL, no dynamic sampling:
               grpo    PPO clip 0.2 / 0.28, GRPO advantage (mean/std), token mean
               seele   rl.rollout_method 'seele' (4 rounds x 4, a* = 0.5, hints of
                       Example.completion), Dr. GRPO advantage over the 16, loss 'seele'
                       (clip 0.2 / 0.28, gamma 0.001, seq-mean-token-sum)
  eval       on the hard held-out problems and on all held-out problems, WITHOUT hints:
             greedy accuracy and pass@1 / pass@8 from n = 8 samples at T = 1 (unbiased
             estimator); pi_0 is evaluated the same way.

    python experiments/seele_vs_grpo.py --workdir=/tmp/jaxrl_llm/seele_vs_grpo [--seeds=3]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

ARMS = ("grpo", "seele")


def rl_config(arm, workdir, init_from, seed, steps, train_path):
  from configs import demo_rlvr
  _, c = demo_rlvr.get_configs("countdown")
  c.workdir = os.path.join(workdir, f"seed{seed}", arm)
  c.init_from = init_from
  c.seed = seed
  c.steps = steps
  c.eval_every = steps
  c.eval_size = 50
  c.eval_at_start = False
  c.checkpoint_every = steps
  c.overwrite, c.resume, c.progress_bar = True, False, False
  c.task.train_examples = train_path
  c.rl.dynamic_sampling = False
  c.rl.reward_shaping = "none"
  c.rl.reward_shaping_kwargs = {}
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.group_size = 16
  c.rl.batch_size = 512
  if arm == "grpo":
    c.rl.loss = "ppo"
    c.rl.loss_kwargs = {"clip_low": 0.2, "clip_high": 0.28, "agg_mode": "token-mean"}
    c.rl.advantage = "grpo"
  elif arm == "seele":
    c.rl.rollout_method = "seele"
    c.rl.rollout_method_kwargs = {"rounds": 4, "target_accuracy": 0.5,
                                  "solution_field": "completion", "length_unit": "tokens"}
    c.rl.advantage = "dr_grpo"
    c.rl.loss = "seele"
    c.rl.loss_kwargs = {"gamma": 0.001, "clip_low": 0.2, "clip_high": 0.28,
                        "agg_mode": "seq-mean-token-sum"}
  else:
    raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
  return c


def sample_correct(config, params, tokenizer, examples, reward_fn, key, *, k, max_new_tokens,
                   temperature, stops, add_bos, batch=64):
  """``[P, k]`` correctness of k samples per example (greedy when temperature is 0)."""
  import jax
  from jaxrl_llm.training import rollout
  out = []
  for i in range(0, len(examples), batch):
    chunk = list(examples[i:i + batch])
    n_real = len(chunk)
    chunk += [chunk[-1]] * (batch - n_real)
    key, sub = jax.random.split(key)
    rd = rollout.sample_groups(config, params, tokenizer, chunk, sub, group_size=k,
                               max_new_tokens=max_new_tokens, temperature=temperature,
                               stop_tokens=stops, add_bos=add_bos)
    r = rollout.score(reward_fn, rd.texts, chunk, k).reshape(batch, k)[:n_real]
    out.append(r >= 1.0)
  return np.concatenate(out)


def evaluate(model_dir, sets, seed, n):
  import jax
  from configs import demo_rlvr
  from jaxrl_llm import evaluation
  from jaxrl_llm.training import setup
  _, r = demo_rlvr.get_configs("countdown")
  config, params, tokenizer, _ = setup.build_model(r.model, model_dir, 0)
  reward_fn = setup.build_reward_fn(r.task)
  kw = dict(max_new_tokens=r.sampling.max_new_tokens, stops=setup.stop_tokens(config, tokenizer),
            add_bos=r.task.add_bos)
  res = {}
  for name, exs in sets.items():
    greedy = sample_correct(config, params, tokenizer, exs, reward_fn, jax.random.key(0), k=1,
                            temperature=0.0, **kw)[:, 0]
    samp = sample_correct(config, params, tokenizer, exs, reward_fn,
                          jax.random.key(10_000 + seed), k=n, temperature=1.0, **kw)
    c = samp.sum(1)
    res[name] = {"greedy": float(greedy.mean()),
                 "pass@1": float(np.mean(evaluation.pass_at_k(n, c, 1))),
                 f"pass@{n}": float(np.mean(evaluation.pass_at_k(n, c, n))),
                 "problems": len(exs)}
  return res


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="/tmp/jaxrl_llm/seele_vs_grpo")
  parser.add_argument("--init_from", default="", help="an SFT workdir; empty: train one")
  parser.add_argument("--sft_steps", type=int, default=1200)
  parser.add_argument("--num_problems", type=int, default=2048)
  parser.add_argument("--eval_problems", type=int, default=400)
  parser.add_argument("--hard_max", type=int, default=1, help="hard: <= this many of 8 right")
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--rl_steps", type=int, default=60)
  parser.add_argument("--arms", default=",".join(ARMS))
  parser.add_argument("--eval_n", type=int, default=8)
  args = parser.parse_args(argv)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  import jax
  from configs import demo_rlvr as demo_cfg
  from experiments import demo_rlvr, rl
  from experiments.dph_rl_claim import bootstrap_ci, run_sft
  from jaxrl_llm import data
  from jaxrl_llm.data import rehearsal as rehearsal_data
  from jaxrl_llm.training import setup
  os.makedirs(args.workdir, exist_ok=True)
  demo_rlvr.enable_compilation_cache(os.path.join(args.workdir, "jax_cache"))
  t0 = time.time()
  log = {"args": vars(args)}
  init_from = args.init_from
  if not init_from:
    acc, init_from = run_sft(args.workdir, "countdown", args.sft_steps)
    log["sft"] = {"greedy_accuracy_200": acc, "wall_s": time.time() - t0}
    print(f"SFT {args.sft_steps} steps: greedy {100 * acc:.1f}% ({time.time() - t0:.0f} s)",
          flush=True)
  # The hard split, by pi_0's solve rate over 8 samples at T = 1.
  _, r = demo_cfg.get_configs("countdown")
  config, params, tokenizer, _ = setup.build_model(r.model, init_from, 0)
  reward_fn = setup.build_reward_fn(r.task)
  kw = dict(max_new_tokens=r.sampling.max_new_tokens, stops=setup.stop_tokens(config, tokenizer),
            add_bos=r.task.add_bos, temperature=1.0, k=8)
  train = data.distinct_examples(setup.build_task(r.task, "train"), args.num_problems, seed=0)
  test = setup.eval_examples(r.task, args.eval_problems)
  tr = sample_correct(config, params, tokenizer, train, reward_fn, jax.random.key(1), **kw)
  te = sample_correct(config, params, tokenizer, test, reward_fn, jax.random.key(2), **kw)
  hard_train = [ex for ex, c in zip(train, tr.sum(1)) if c <= args.hard_max]
  hard_test = [ex for ex, c in zip(test, te.sum(1)) if c <= args.hard_max]
  train_path = os.path.join(args.workdir, "hard_train.jsonl")
  rehearsal_data.save_examples(train_path, hard_train)
  log["split"] = {"train_problems": len(train), "hard_train": len(hard_train),
                  "test_problems": len(test), "hard_test": len(hard_test),
                  "train_solve_histogram": np.bincount(tr.sum(1), minlength=9).tolist(),
                  "test_solve_histogram": np.bincount(te.sum(1), minlength=9).tolist()}
  print(f"split: {json.dumps(log['split'])} ({time.time() - t0:.0f} s)", flush=True)
  sets = {"hard_test": hard_test, "all_test": test}
  arms = [a for a in args.arms.split(",") if a]
  results = {}
  for seed in range(args.seeds):
    res = {"base": evaluate(init_from, sets, seed, args.eval_n)}
    print(f"seed {seed} base: {json.dumps(res['base'])} ({time.time() - t0:.0f} s)", flush=True)
    for arm in arms:
      c = rl_config(arm, args.workdir, init_from, seed, args.rl_steps, train_path)
      t1 = time.time()
      rl.run(c)
      ev = evaluate(c.workdir, sets, seed, args.eval_n)
      with open(os.path.join(c.workdir, "metrics.jsonl")) as f:
        train_recs = [json.loads(line) for line in f if "train/loss" in line]
      keys = ("train/accuracy", "train/informative_group_frac", "train/hint_rate",
              "train/accuracy_gap", "train/accuracy_round1", "train/accuracy_round4")
      ev["train_first10"] = {k: float(np.mean([t[k] for t in train_recs[:10]]))
                             for k in keys if k in train_recs[0]}
      ev["train_last10"] = {k: float(np.mean([t[k] for t in train_recs[-10:]]))
                            for k in keys if k in train_recs[0]}
      ev["wall_s"] = time.time() - t1
      res[arm] = ev
      print(f"seed {seed} {arm}: {json.dumps(ev)}", flush=True)
    results[str(seed)] = res
    with open(os.path.join(args.workdir, "results.json"), "w") as f:
      json.dump({**log, "results": results}, f, indent=1)
  summary = {}
  for name in ("base",) + tuple(arms):
    summary[name] = {}
    for split in sets:
      for metric in ("greedy", "pass@1", f"pass@{args.eval_n}"):
        vals = [results[str(s)][name][split][metric] for s in range(args.seeds)]
        summary[name][f"{split}/{metric}"] = {"values": vals, "ci": bootstrap_ci(vals)}
  log["results"] = results
  log["summary"] = summary
  log["wall_s"] = time.time() - t0
  with open(os.path.join(args.workdir, "results.json"), "w") as f:
    json.dump(log, f, indent=1)
  print("| model | " + " | ".join(summary["base"]) + " |")
  for name, row in summary.items():
    print(f"| {name} | " + " | ".join(f"{100 * v['ci'][0]:.1f} [{100 * v['ci'][1]:.1f}, "
                                      f"{100 * v['ci'][2]:.1f}]" for v in row.values()) + " |")
  print(f"total wall time {log['wall_s']:.0f} s", flush=True)
  return log


if __name__ == "__main__":
  main()

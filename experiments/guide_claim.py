"""Guide's claim at toy scale: on problems the policy fails every sample of, hinted rerolls
with the off-policy correction learn more than plain GRPO at a comparable sample budget.

Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement Learning of Reasoning
Models", arXiv 2506.13923 (spec: /work/shared/reference/rlvr_methods.md section 11).

Stages (one workdir, every stage started fresh):

  sft     the tiny character-level Llama on clean Countdown demonstrations, a fraction
          ``--hinted_frac`` of them with the prompt ``"Hint: <first h chars of the
          solution>\\n" + prompt`` (so the toy model can read a hint at all: an SFT on plain
          prompts alone makes hints hurt, see docs/results.md), seed 0: pi_0.
  split   pi_0 samples 8 completions (T = 1) of --num_problems training problems and of
          --num_test test problems; the problems with 0/8 correct are the hard train split
          (RL prompts of every arm, with ``metadata.hint`` = the partial solution) and the
          hard held-out split.
  arms    per seed, --rl_steps from pi_0 on the hard train split (32 prompts a step, PPO
          clip 0.2, GRPO advantages, token mean, lr 5e-4, no KL):
            grpo      G = 8
            grpo16    G = 16 (at least Guide's sample count: Guide draws 8 + 8 per rerolled group)
            guide     G = 8, rollout method 'guide' (all-fail groups re-sampled with the
                      hint, kept iff accuracy in (0.001, 0.999)), loss 'guide'
  eval    on the hard held-out split, plain prompts: mean accuracy of 8 samples at T = 1
          (and greedy accuracy), for pi_0 and every arm.

Summary: mean and 95 % percentile-bootstrap CI over seeds of the held-out accuracy of each
arm and of the per-seed difference guide - grpo / guide - grpo16; and the completions
each arm sampled.

    python experiments/guide_claim.py --workdir=/tmp/jaxrl_llm/guide_claim [--seeds=3]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from experiments.dph_rl_claim import bootstrap_ci  # noqa: E402

ARMS = ("grpo", "grpo16", "guide")
HINT_TEMPLATE = "Hint: {hint}\n{prompt}"


def partial_hint(example, chars: int) -> str:
  """The first ``chars`` characters of the example's reference solution."""
  return example.completion[:chars]


def hinted(example, chars: int):
  return dataclasses.replace(
      example, prompt=HINT_TEMPLATE.format(prompt=example.prompt,
                                           hint=partial_hint(example, chars)))


def run_sft(workdir, steps, hinted_frac, hint_chars, seed=0):
  """Our own SFT loop (experiments/sft.py reads its task only): a hinted_frac share of each
  batch gets the hinted prompt. Returns the HF directory of pi_0."""
  import jax
  from configs import demo_rlvr
  from jaxrl_llm import data, training
  from jaxrl_llm.training import setup
  s, _ = demo_rlvr.get_configs("countdown")
  config, params, tok, _ = setup.build_model(s.model, "", seed)
  opt = setup.build_optimizer(s.optim, steps)
  state = training.init_train_state(params, opt)
  step_fn = jax.jit(training.make_sft_step(config, opt), donate_argnums=0)
  src = setup.build_task(s.task, "train")
  position = (seed, 0)
  rng = np.random.default_rng(seed)
  for _ in range(steps):
    exs, position = data.take_batch(src, position, s.batch_size)
    exs = [hinted(e, hint_chars) if rng.random() < hinted_frac else e for e in exs]
    state, _ = step_fn(state, training.sft_batch(tok, exs, 48, s.task.add_bos))
  out = os.path.join(workdir, "sft", "hf")
  setup.export_hf(out, config, state.params)
  return out


def sample_accuracy(config, params, tok, examples, key, *, g, max_new_tokens, stops, reward_fn,
                    hint_chars=None, chunk=64):
  """``[P]`` accuracy of g samples at T = 1 per problem (plain or hinted prompts)."""
  import jax
  from jaxrl_llm.training import rollout
  accs = []
  for i in range(0, len(examples), chunk):
    part = list(examples[i:i + chunk])
    n_real = len(part)
    part += [part[-1]] * (chunk - n_real)
    plan = None if hint_chars is None else rollout.PromptPlan(
        [hinted(e, hint_chars).prompt for e in part])
    key, sub = jax.random.split(key)
    rd = rollout.sample_groups(config, params, tok, part, sub, group_size=g,
                               max_new_tokens=max_new_tokens, temperature=1.0,
                               stop_tokens=stops, plan=plan)
    r = rollout.score(reward_fn, rd.texts, part, g).reshape(chunk, g)[:n_real]
    accs.append((r >= 1.0).mean(1))
  return np.concatenate(accs)


def run_split(workdir, model_dir, num_problems, num_test, hint_chars):
  import jax
  from configs import demo_rlvr
  from jaxrl_llm import data
  from jaxrl_llm.data import rehearsal as rehearsal_data
  from jaxrl_llm.training import setup
  _, r = demo_rlvr.get_configs("countdown")
  config, params, tok, _ = setup.build_model(r.model, model_dir, 0)
  reward_fn = setup.build_reward_fn(r.task)
  stops = setup.stop_tokens(config, tok)
  kw = dict(g=8, max_new_tokens=r.sampling.max_new_tokens, stops=stops, reward_fn=reward_fn)
  train = data.distinct_examples(setup.build_task(r.task, "train"), num_problems, seed=0)
  test = setup.eval_examples(r.task, num_test)
  acc_train = sample_accuracy(config, params, tok, train, jax.random.key(1), **kw)
  acc_test = sample_accuracy(config, params, tok, test, jax.random.key(2), **kw)
  acc_hint = sample_accuracy(config, params, tok, train, jax.random.key(3), hint_chars=hint_chars,
                             **kw)
  hard = [dataclasses.replace(e, metadata={**e.metadata, "hint": partial_hint(e, hint_chars)})
          for e, a in zip(train, acc_train) if a == 0.0]
  hard_test = [e for e, a in zip(test, acc_test) if a == 0.0]
  paths = {"train": os.path.join(workdir, "hard_train.jsonl"),
           "test": os.path.join(workdir, "hard_test.jsonl")}
  rehearsal_data.save_examples(paths["train"], hard)
  rehearsal_data.save_examples(paths["test"], hard_test)
  fail = acc_train == 0.0
  return {"train_accuracy": float(acc_train.mean()), "test_accuracy": float(acc_test.mean()),
          "hinted_train_accuracy": float(acc_hint.mean()),
          "hinted_accuracy_on_hard": float(acc_hint[fail].mean()) if fail.any() else 0.0,
          "hinted_informative_on_hard": float(((acc_hint > 0) & (acc_hint < 1))[fail].mean())
          if fail.any() else 0.0,
          "hard_train": len(hard), "hard_test": len(hard_test), **paths}


def arm_config(arm, workdir, model_dir, seed, steps, paths):
  from configs import demo_rlvr, guide_arithmetic
  _, c = demo_rlvr.get_configs("countdown")
  c.workdir = os.path.join(workdir, f"seed{seed}", arm)
  c.init_from = model_dir
  c.seed = seed
  c.steps = steps
  c.eval_every = steps
  c.eval_size = 50
  c.eval_at_start = False
  c.checkpoint_every = steps
  c.overwrite, c.resume, c.progress_bar, c.export_hf = True, False, False, True
  c.task.train_examples = paths["train"]
  c.rl.dynamic_sampling = False
  c.rl.reward_shaping = "none"
  c.rl.reward_shaping_kwargs = {}
  c.rl.loss = "ppo"
  c.rl.loss_kwargs = {"clip_low": 0.2, "agg_mode": "token-mean"}
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.group_size = 16 if arm == "grpo16" else 8
  c.rl.batch_size = 32 * c.rl.group_size
  if arm == "guide":
    g = guide_arithmetic.get_config()
    c.rl.loss = g.rl.loss
    c.rl.loss_kwargs = dict(g.rl.loss_kwargs)
    c.rl.rollout_method = "guide"
    c.rl.rollout_method_kwargs = {"hint_field": "metadata.hint", "hint_template": HINT_TEMPLATE}
  elif arm not in ARMS:
    raise ValueError(f"unknown arm {arm!r}; known: {', '.join(ARMS)}")
  return c


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="/tmp/jaxrl_llm/guide_claim")
  parser.add_argument("--sft_steps", type=int, default=1500)
  parser.add_argument("--hinted_frac", type=float, default=0.3)
  parser.add_argument("--hint_chars", type=int, default=2)
  parser.add_argument("--num_problems", type=int, default=2048)
  parser.add_argument("--num_test", type=int, default=400)
  parser.add_argument("--seeds", type=int, default=3)
  parser.add_argument("--rl_steps", type=int, default=40)
  parser.add_argument("--arms", default=",".join(ARMS))
  args = parser.parse_args(argv)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  import jax
  from experiments import demo_rlvr, rl
  from jaxrl_llm.data import rehearsal as rehearsal_data
  from jaxrl_llm.training import setup
  os.makedirs(args.workdir, exist_ok=True)
  demo_rlvr.enable_compilation_cache(os.path.join(args.workdir, "jax_cache"))
  t0 = time.time()
  log = {"args": vars(args)}
  model_dir = run_sft(args.workdir, args.sft_steps, args.hinted_frac, args.hint_chars)
  print(f"SFT {args.sft_steps} steps ({time.time() - t0:.0f} s)", flush=True)
  split = run_split(args.workdir, model_dir, args.num_problems, args.num_test, args.hint_chars)
  log["split"] = split
  print(f"split: {json.dumps(split)} ({time.time() - t0:.0f} s)", flush=True)
  hard_test = rehearsal_data.load_examples(split["test"])
  from configs import demo_rlvr as demo_configs
  _, r = demo_configs.get_configs("countdown")

  def held_out(model, seed):
    config, params, tok, _ = setup.build_model(r.model, model, 0)
    acc = sample_accuracy(config, params, tok, hard_test, jax.random.key(10_000 + seed), g=8,
                          max_new_tokens=r.sampling.max_new_tokens,
                          stops=setup.stop_tokens(config, tok),
                          reward_fn=setup.build_reward_fn(r.task))
    return float(acc.mean())

  arms = [a for a in args.arms.split(",") if a]
  seeds = list(range(args.seeds))
  results = {}
  for seed in seeds:
    res = {"base": {"accuracy": held_out(model_dir, seed)}}
    for arm in arms:
      c = arm_config(arm, args.workdir, model_dir, seed, args.rl_steps, split)
      t1 = time.time()
      rl.run(c)
      with open(os.path.join(c.workdir, "metrics.jsonl")) as f:
        train = [json.loads(line) for line in f if "train/loss" in line]
      sampled = sum(r_["perf/tokens_per_s"] * r_["perf/step_time_s"] for r_ in train)
      completions = sum(c.rl.batch_size * (1.0 + r_.get("train/guide_rerolled_frac", 0.0))
                        for r_ in train)
      ev = {"accuracy": held_out(os.path.join(c.workdir, "hf"), seed),
            "completions_sampled": completions, "tokens_sampled": sampled,
            "train_accuracy_last10": float(np.mean([r_["train/accuracy"] for r_ in train[-10:]])),
            "wall_s": time.time() - t1}
      if arm == "guide":
        for k in ("guide_rerolled_frac", "guide_kept_frac", "guide_hinted_accuracy", "gamma"):
          ev[k] = float(np.mean([r_[f"train/{k}"] for r_ in train]))
      res[arm] = ev
      print(f"seed {seed} {arm}: {json.dumps(ev)}", flush=True)
    results[str(seed)] = res
    with open(os.path.join(args.workdir, "claim_results.json"), "w") as f:
      json.dump({**log, "results": results}, f)
  summary = {}
  for name in ["base"] + arms:
    summary[name] = bootstrap_ci([results[str(s)][name]["accuracy"] for s in seeds])
  for other in ("grpo", "grpo16"):
    if "guide" in arms and other in arms:
      summary[f"guide-{other}"] = bootstrap_ci(
          [results[str(s)]["guide"]["accuracy"] - results[str(s)][other]["accuracy"]
           for s in seeds])
  log["results"], log["summary"] = results, summary
  for k, (m, lo, hi) in summary.items():
    print(f"{k:14s} {100 * m:6.2f} [{100 * lo:6.2f}, {100 * hi:6.2f}]")
  log["wall_s"] = time.time() - t0
  with open(os.path.join(args.workdir, "claim_results.json"), "w") as f:
    json.dump(log, f, indent=1)
  print(f"total wall time {log['wall_s']:.0f} s", flush=True)
  return log


if __name__ == "__main__":
  main()

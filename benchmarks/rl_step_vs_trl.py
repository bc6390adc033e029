"""GRPO step time of this library vs TRL's ``GRPOTrainer`` on one workload, side by side.

Workload (TRL's own kind): a random Llama (4 layers, hidden 128, MLP 512, vocab
512, 4 heads / 2 KV heads, untied head, ~1.1 M parameters), 16 prompts of 16
tokens x G = 8 completions of exactly 64 new tokens (no stop token: TRL gets
``min_new_tokens=64``, this sampler gets no stop tokens), temperature 1, fp32,
beta = 0 (no reference model), AdamW lr 1e-5, gradient clipping at 1, one
optimiser step per rollout batch (so the importance ratio is 1 and neither side
runs a separate old-log-prob forward: TRL skips it when ``num_iterations=1`` and
one step per generation; here ``make_rl_step(single_update=True)``). The reward is
cheap (how often one token occurs), the same function of the text on both sides.

Both sides start from identical weights: this script draws the parameters with
`jaxrl_llm.models.init_params`, writes them with `jaxrl_llm.models.save_hf` next
to a word-level ``tokenizer.json`` (``w2 .. w511``), and TRL loads that directory.
Both read the same prompt stream in the same order.

This library's side is the public API exactly as ``experiments/rl.py`` uses it:
``training.rollout.collect_rollouts`` (``sampling.generate`` + decode + reward),
``jax.jit(make_rl_step(...).prepare)`` and ``jax.jit(update, donate_argnums=0)``, with
``share_prompt_forward=True`` as ``experiments/rl.py``'s ``"auto"`` sets it for this loop
(each group's 8 rows share one prompt, so the trainer runs the prompt's layers once per
group: 16 x 16 + 128 x 64 tokens instead of 128 x 80; TRL has no such option).
Like ``experiments/rl.py`` (``setup.init_process``) it first applies
``jaxrl_llm.runs.keep_freed_host_memory`` (glibc keeps XLA:CPU's freed per-call buffers);
TRL runs with and without the same glibc settings (``--trl-allocator``) and the table
takes its faster configuration. Our side runs on JAX's one CPU device, on the CPU split
into 2 devices with the rollout and the update data-parallel on a ``(2, 1, 1)`` mesh
(``experiments/rl.py --config.cpu_devices=2 --config.mesh='(2, 1, 1)'``, see
`jaxrl_llm.runs.cpu_devices`), and on the 2 devices with the rollout on the mesh and the
update on one device (``--config.cpu_devices=2 --config.rollout_mesh='(2, 1, 1)'``,
`jaxrl_llm.training.setup.rollout_placement`); ``--ours`` picks them. The table takes
each side's configuration with the lowest mean total (a configuration whose steps are
bimodal can have a good median and a bad mean), and every configuration's median and
mean totals are printed above it.

TRL runs in its own virtual environment ``benchmarks/.venv-trl`` (created on first
use: CPU torch 2.13.0 first, then ``trl==1.16.*``), in a subprocess running
``benchmarks/_trl_grpo_side.py``; this library's side also runs in its own
subprocess, so the two never share a thread pool. Each phase is the median over
``--steps`` steps after ``--warmup`` steps (compilation happens in the warm-up),
pooled over ``--repeats`` runs of each side that alternate (ours, TRL, ours, TRL, ...):
on a shared VM the speed of one run drifts by up to 2x, so single runs are not compared.
The last row of the table is the mean total step over the same steps.

    .venv/bin/python benchmarks/rl_step_vs_trl.py [--steps 10] [--warmup 3] [--repeats 3] [--save]

``--save`` writes the printed report to ``docs/results/rl_step_vs_trl_<date>.txt``.
Not a test: timings depend on the machine and on what else shares its cores
(the load average is printed with each side).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from _machine import cpu_model  # benchmarks/ is on sys.path (run as a script)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRL_VENV = os.path.join(ROOT, "benchmarks", ".venv-trl")
TRL_SIDE = os.path.join(ROOT, "benchmarks", "_trl_grpo_side.py")
TORCH_PIN, TRL_PIN = "torch==2.13.0", "trl==1.16.*"

MODEL = dict(family="llama", vocab_size=512, hidden_size=128, intermediate_size=512,
             num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32,
             tie_word_embeddings=False)
NUM_PROMPTS, GROUP, PROMPT_LEN, NEW_TOKENS, LR = 16, 8, 16, 64, 1e-5
PAD, EOS, REWARD_WORD = "<pad>", "<eos>", "w7"
# jaxrl_llm.runs.keep_freed_host_memory's settings, for a process we only start.
KEEP_FREED_TUNABLES = ("glibc.malloc.arena_max=1:glibc.malloc.mmap_max=0:"
                       "glibc.malloc.trim_threshold=18446744073709551615")


def load() -> str:
  return "load average %.2f %.2f %.2f" % os.getloadavg()


# ------------------------------------------------------------------ workload files
def write_workload(workdir: str, total_steps: int, seed: int = 0) -> dict:
  """Random weights (save_hf), a word-level tokenizer and the prompt stream."""
  import jax
  from tokenizers import Tokenizer, models as tok_models, pre_tokenizers
  from jaxrl_llm import models

  config = models.ModelConfig(**MODEL)
  params = models.init_params(config, jax.random.key(seed))
  hf_dir = os.path.join(workdir, "hf")
  models.save_hf(hf_dir, config, jax.device_get(params))
  vocab = {PAD: 0, EOS: 1, **{f"w{i}": i for i in range(2, MODEL["vocab_size"])}}
  tok = Tokenizer(tok_models.WordLevel(vocab, unk_token=PAD))
  tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
  tok.save(os.path.join(hf_dir, "tokenizer.json"))
  with open(os.path.join(hf_dir, "tokenizer_config.json"), "w") as f:
    json.dump({"pad_token": PAD, "eos_token": EOS, "padding_side": "left"}, f)
  rng = np.random.default_rng(seed)
  ids = rng.integers(2, MODEL["vocab_size"], (NUM_PROMPTS * total_steps, PROMPT_LEN))
  spec = dict(prompts=[" ".join(f"w{i}" for i in row) for row in ids], pad_token=PAD,
              eos_token=EOS, reward_word=REWARD_WORD, num_prompts=NUM_PROMPTS,
              group_size=GROUP, new_tokens=NEW_TOKENS, learning_rate=LR)
  with open(os.path.join(workdir, "prompts.json"), "w") as f:
    json.dump(spec, f)
  return spec


# --------------------------------------------------------------------- our side
def run_ours(workdir: str, steps: int, out: str, cpu_devices: int = 0,
             rollout_only: bool = False):
  """This library's GRPO loop (as experiments/rl.py runs it), timed per phase.

  ``cpu_devices`` n > 1: as ``experiments/rl.py --config.cpu_devices=n
  --config.mesh='(n, 1, 1)'`` (`jaxrl_llm.runs.cpu_devices`): the CPU as n devices, the
  rollout and the update data-parallel over them; with ``rollout_only`` as
  ``--config.cpu_devices=n --config.rollout_mesh='(n, 1, 1)'``: the rollout over the n
  devices, the update on one (`training.setup.rollout_placement`)."""
  sys.path.insert(0, ROOT)
  from jaxrl_llm.runs import cpu_devices as cpu_devices_lib, host_memory
  host_memory.keep_freed_host_memory()  # as experiments/rl.py does, before JAX starts
  cpu_devices_lib.split_cpu_devices(cpu_devices)
  import jax
  from jaxrl_llm import data, models, training
  from jaxrl_llm.training import metrics as metrics_lib, rollout, setup

  with open(os.path.join(workdir, "prompts.json")) as f:
    spec = json.load(f)
  hf_dir = os.path.join(workdir, "hf")
  config, params = models.load_hf(hf_dir)
  split = (cpu_devices, 1, 1) if cpu_devices > 1 else ()
  c = {"mesh": () if rollout_only else split, "rollout_mesh": split if rollout_only else ()}
  mesh, params = setup.shard_on_mesh(c["mesh"], config, params)
  tokenizer = models.HFTokenizer(hf_dir)
  source = data.ListSource([data.Example(prompt=p, answer="") for p in spec["prompts"]],
                           shuffle=False)
  position = data.DataPosition(seed=0, cursor=0)

  def reward_fn(text, example):
    del example
    return text.count(spec["reward_word"]) / spec["new_tokens"]

  optimizer = training.make_optimizer(spec["learning_rate"], total_steps=steps,
                                      max_grad_norm=1.0)
  step_fns = training.make_rl_step(
      config, optimizer, group_size=spec["group_size"], loss="ppo",
      loss_kwargs={"clip_low": 0.2, "agg_mode": "token-mean"}, advantage="grpo",
      temperature=1.0, single_update=True,
      share_prompt_forward=True, mesh=mesh)  # share: what rl.py's "auto" picks here
  state = setup.commit_state(training.init_train_state(params, optimizer, None), mesh)
  placement = setup.rollout_placement(c, config, mesh)
  prepare = jax.jit(step_fns.prepare)
  update = jax.jit(step_fns.update, donate_argnums=0)
  base_key = jax.random.key(0)
  for it in range(steps):
    t0 = time.perf_counter()
    ro = rollout.collect_rollouts(
        config, placement.to_rollout(state.params), tokenizer, source, position, reward_fn,
        jax.random.fold_in(base_key, it), num_prompts=spec["num_prompts"],
        group_size=spec["group_size"], max_new_tokens=spec["new_tokens"], temperature=1.0,
        stop_tokens=(), add_bos=False, mesh=placement.mesh)
    position = ro.position
    batch = placement.to_train(ro.batch)
    jax.block_until_ready(batch)
    t1 = time.perf_counter()
    prepared, prep_metrics = prepare(state, batch, None)
    jax.block_until_ready(prepared)
    t2 = time.perf_counter()
    state, m = update(state, prepared)
    m = metrics_lib.to_floats(m)
    t3 = time.perf_counter()
    training.raise_if_prompts_unshared(m)
    if not np.isfinite(m["loss"]):
      raise FloatingPointError(f"step {it}: loss {m['loss']}")
    rec = {"step": it + 1, "generate": t1 - t0, "prepare": t2 - t1, "update": t3 - t2,
           "total": t3 - t0, "reward_mean": ro.metrics["reward_mean"],
           "response_length": ro.metrics["response_length"]}
    with open(out, "a") as f:
      f.write(json.dumps(rec) + "\n")


# --------------------------------------------------------------------- TRL side
def trl_python() -> str:
  """The venv's python, creating the venv (CPU torch first, then TRL) when missing."""
  py = os.path.join(TRL_VENV, "bin", "python")
  if os.path.exists(os.path.join(TRL_VENV, ".installed")):
    return py
  base = os.path.join(sys.base_prefix, "bin", "python3")
  print(f"creating {TRL_VENV} ({TORCH_PIN}, then {TRL_PIN}) ...", flush=True)
  if not os.path.exists(py):
    subprocess.run([base, "-m", "venv", TRL_VENV], check=True)
  # CPU torch first: a plain `torch` requirement of TRL would pull a CUDA build.
  subprocess.run([py, "-m", "pip", "install", "-q", TORCH_PIN], check=True)
  subprocess.run([py, "-m", "pip", "install", "-q", TRL_PIN], check=True)
  open(os.path.join(TRL_VENV, ".installed"), "w").close()
  return py


def versions(py: str, modules) -> str:
  code = ("import importlib,sys\nfor m in sys.argv[1:]:\n"
          "  print(m, importlib.import_module(m).__version__)")
  out = subprocess.run([py, "-c", code, *modules], capture_output=True, text=True)
  return ", ".join(out.stdout.split("\n")[:-1]).replace("\n", ", ")


# ---------------------------------------------------------------------- report
def timed_records(path: str, warmup: int) -> list[dict]:
  """The per-step records of one side's run, without its ``warmup`` first steps."""
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()][warmup:]


def step_stats(recs: list[dict], stat=np.median) -> dict:
  """``stat`` (median by default, or e.g. ``np.mean``) of every timed field over ``recs``."""
  keys = [k for k in recs[0] if k != "step" and isinstance(recs[0][k], float)]
  return {k: float(stat([r[k] for r in recs if k in r])) for k in keys}


def parse_ours(spec: str) -> list[tuple[int, bool]]:
  """``--ours`` entries: ``n`` (n CPU devices; n > 1: rollout and update on a (n, 1, 1)
  mesh) or ``nr`` (n > 1 devices, the rollout on the mesh, the update on one device)."""
  out = []
  for x in (x.strip() for x in spec.split(",")):
    if not x:
      continue
    rollout_only = x.endswith("r")
    try:
      n = int(x.removesuffix("r"))
    except ValueError:
      raise SystemExit(f"--ours: entries are n or nr (n CPU devices), got {x!r}") from None
    if n < 1 or (rollout_only and n < 2):
      raise SystemExit(f"--ours: n >= 1 CPU devices (nr: n >= 2), got {x!r}")
    out.append((n, rollout_only))
  if not out:
    raise SystemExit(f"--ours: no configuration in {spec!r}")
  return out


def side_name(n: int, rollout_only: bool) -> str:
  return f"ours@{n}cpu" + ("-rollout" if rollout_only else "")


def describe_ours(name: str) -> str:
  n, rollout_only = int(name.split("@")[1].split("cpu")[0]), name.endswith("-rollout")
  if n == 1:
    return "ours on one CPU device"
  if rollout_only:
    return f"ours on {n} CPU devices, rollout on mesh ({n}, 1, 1), update on one"
  return f"ours on {n} CPU devices, rollout and update on mesh ({n}, 1, 1)"


def side(cmd, env=None) -> tuple[float, str, str]:
  before = load()
  start = time.perf_counter()
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
  if proc.returncode:
    sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-8000:])
    raise SystemExit(f"{cmd[1]} failed with exit code {proc.returncode}")
  return time.perf_counter() - start, before, load()


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--steps", type=int, default=10, help="timed steps per side")
  ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
  ap.add_argument("--side", choices=("ours",), help=argparse.SUPPRESS)
  ap.add_argument("--cpu-devices", type=int, default=0, help=argparse.SUPPRESS)
  ap.add_argument("--rollout-only", action="store_true", help=argparse.SUPPRESS)
  ap.add_argument("--ours", default="1,2,2r",
                  help="configurations of our side: n = the CPU as n devices (1: JAX's one "
                       "CPU device; n > 1: rollout and update data-parallel on a (n, 1, 1) "
                       "mesh), nr = n devices with the rollout on the mesh and the update on "
                       "one (config.rollout_mesh); the table uses our fastest configuration "
                       "by mean total, as it does TRL's")
  ap.add_argument("--workdir", help=argparse.SUPPRESS)
  ap.add_argument("--out", help=argparse.SUPPRESS)
  ap.add_argument("--only", choices=("ours", "trl"), help="run one side only")
  ap.add_argument("--trl-threads", default="0",
                  help="torch thread counts to run TRL with (0: torch's default); the table "
                       "uses the fastest total (PyTorch's barrier spinning suffers on a "
                       "loaded machine, one thread does not; on the idle Xeon of "
                       "docs/results 1 thread ran 1.68 s/step, the default 0.97)")
  ap.add_argument("--trl-allocator", default="default,keep-freed",
                  help="glibc settings to run TRL with: 'default', and/or 'keep-freed' (the "
                       "GLIBC_TUNABLES equivalent of jaxrl_llm.runs.keep_freed_host_memory, "
                       "which our side applies); the table uses TRL's fastest configuration")
  ap.add_argument("--repeats", type=int, default=3,
                  help="run every side this many times, alternating (ours, TRL, ours, ...); "
                       "medians pool the timed steps of all runs (a shared VM's speed drifts "
                       "between runs by up to 2x, so one run per side is not a comparison)")
  ap.add_argument("--save", action="store_true", help="write docs/results/rl_step_vs_trl_<date>.txt")
  a = ap.parse_args()
  if a.repeats < 1:
    raise SystemExit(f"--repeats must be >= 1, got {a.repeats}")
  total = a.steps + a.warmup
  if a.side == "ours":
    run_ours(a.workdir, total, a.out, a.cpu_devices, a.rollout_only)
    return
  ours_configs = parse_ours(a.ours)
  threads = [int(x) for x in a.trl_threads.split(",") if x.strip()]
  sides = ([side_name(n, r) for n, r in ours_configs] if a.only != "trl" else [])
  if a.only != "ours":
    allocators = [x.strip() for x in a.trl_allocator.split(",") if x.strip()]
    bad = sorted(set(allocators) - {"default", "keep-freed"})
    if bad:
      raise SystemExit(f"--trl-allocator: unknown {bad}; known: default, keep-freed")
    sides += [f"trl@{n}" + (":keep-freed" if al == "keep-freed" else "")
              for n in threads for al in allocators]
  py_trl = trl_python() if a.only != "ours" else None
  lines = []

  def say(s=""):
    print(s, flush=True)
    lines.append(s)

  say(f"rl_step_vs_trl  {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
  say(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; {load()}")
  say(f"workload: Llama {MODEL['num_layers']}L h{MODEL['hidden_size']} mlp"
      f"{MODEL['intermediate_size']} V{MODEL['vocab_size']} {MODEL['num_heads']}q/"
      f"{MODEL['num_kv_heads']}kv heads, fp32; {NUM_PROMPTS} prompts x G={GROUP}, prompt "
      f"{PROMPT_LEN} + exactly {NEW_TOKENS} new tokens, T=1, beta=0, lr {LR}, 1 step/rollout")
  say(f"{a.repeats} alternating runs per side; median (and mean) of their {a.steps} steps "
      f"each after {a.warmup} warm-up steps (pooled); configurations chosen by mean total")
  records, raw = {name: [] for name in sides}, {}
  with tempfile.TemporaryDirectory() as workdir:
    write_workload(workdir, total)
    for rep, name in ((r, n) for r in range(a.repeats) for n in sides):
      out = os.path.join(workdir, f"{name}.{rep}.jsonl")
      if name.startswith("ours"):
        n = int(name.split("@")[1].split("cpu")[0])
        cmd = [sys.executable, os.path.abspath(__file__), "--side", "ours", "--workdir",
               workdir, "--out", out, "--steps", str(a.steps), "--warmup", str(a.warmup),
               "--cpu-devices", str(n if n > 1 else 0)]
        if name.endswith("-rollout"):
          cmd.append("--rollout-only")
        env = None
      else:
        cmd = [py_trl, TRL_SIDE, "--workdir", workdir, "--steps", str(total), "--out", out,
               "--threads", name.split("@")[1].split(":")[0]]
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
        if name.endswith(":keep-freed"):
          env["GLIBC_TUNABLES"] = KEEP_FREED_TUNABLES
      wall, before, after = side(cmd, env)
      recs = timed_records(out, a.warmup)
      records[name] += recs
      with open(out) as f:
        raw[f"{name} run {rep + 1}"] = f.read()
      say(f"{name} run {rep + 1}: {len(recs)} timed steps, total "
          f"{step_stats(recs)['total']:.3f} s/step median, "
          f"{step_stats(recs, np.mean)['total']:.3f} mean, process wall {wall:.0f} "
          f"s; before: {before}; after: {after}")
  results = {name: step_stats(recs) for name, recs in records.items()}
  means = {name: step_stats(recs, np.mean) for name, recs in records.items()}
  if py_trl:
    say("TRL env: " + versions(py_trl, ["torch", "transformers", "trl"]))
  import jax
  say(f"ours: jax {jax.__version__}")
  say()
  say(f"{'phase (s/step, median)':34s} {'TRL':>8s} {'ours':>8s} {'TRL/ours':>9s}")
  trl_runs = {k: v for k, v in results.items() if k.startswith("trl@")}
  best = min(trl_runs, key=lambda k: means[k]["total"]) if trl_runs else None
  for k, v in trl_runs.items():
    n, _, alloc = k.split("@")[1].partition(":")
    say(f"TRL with {'default' if n == '0' else n} torch threads, "
        f"{'glibc keeps freed memory' if alloc else 'default glibc malloc'}: "
        f"total {v['total']:.3f} s/step median, {means[k]['total']:.3f} mean"
        + ("  <- used below" if k == best else ""))
  our_runs = {k: v for k, v in results.items() if k.startswith("ours@")}
  ours_best = min(our_runs, key=lambda k: means[k]["total"]) if our_runs else None
  for k, v in our_runs.items():
    say(f"{describe_ours(k)}: total {v['total']:.3f} s/step median, {means[k]['total']:.3f} "
        f"mean" + ("  <- used below" if k == ours_best else ""))
  trl, ours = (trl_runs[best] if best else {}), (our_runs[ours_best] if ours_best else {})
  rows = [("generate (+decode, reward)", "generate", "generate"),
          ("old/ref log-probs (prepare)", None, "prepare"),
          ("update: fwd+bwd (+clip)", "fwd_bwd", None),
          ("update: optimizer", "optimizer", None),
          ("update (all)", "update", "update"),
          ("total step", "total", "total"),
          ("total step (mean)", "total", "total")]
  if trl and "fwd_bwd" in trl:
    trl["update"] = trl["total"] - trl["generate"]
  for label, tk, ok in rows:
    mean_row = label.endswith("(mean)")
    t = (means[best] if mean_row else trl).get(tk) if tk and best else None
    o = (means[ours_best] if mean_row else ours).get(ok) if ok and ours_best else None
    ratio = f"{t / o:8.2f}x" if t is not None and o else ""
    say(f"{label:34s} {'' if t is None else f'{t:8.3f}':>8s} "
        f"{'' if o is None else f'{o:8.3f}':>8s} {ratio:>9s}")
  say()
  say("TRL: generate = step begin -> reward call; update = reward call -> step end (advantages,\n"
      "loss forward+backward, clipping, AdamW; TRL runs no separate old-log-prob forward here).\n"
      "ours: generate = collect_rollouts (sampling.generate, decode, reward, RolloutBatch);\n"
      "prepare = jit(prepare) (single_update: advantages only); update = jit(update).")
  say()
  say("raw per-step records (warm-up steps first):")
  for name, text in raw.items():
    say(f"[{name}]")
    say(text.rstrip())
  if a.save:
    date = datetime.date.today().isoformat()
    path = os.path.join(ROOT, "docs", "results", f"rl_step_vs_trl_{date}.txt")
    with open(path, "a") as f:
      f.write("\n".join(lines) + "\n\n")
    print(f"appended to {path}")


if __name__ == "__main__":
  main()

"""The GPU rows of the kernel, sampler and RL-step benchmarks, as one Markdown table.

Run by ``benchmarks/gpu_check.sh`` (which installs a CUDA jax and runs the compiled
Triton kernel tests first); by hand on a GPU machine:

    .venv-gpu/bin/python benchmarks/gpu_check.py --out docs/results/gpu_check_<date>.md

Rows (same workloads as the CPU benchmarks, on ``jax.devices()[0]``):

* kernel: ``benchmarks/fused_logprob.py`` fwd+bwd time and temporary memory of the
  fused log-prob op, ``impl=gpu`` (Pallas Triton) and ``xla`` vs the naive
  materialised-logits path, at two shapes (f32 T=4096 D=1024 V=65536, and bf16
  T=16384 D=2048 V=151936 with entropy and full KL, Qwen-sized vocabulary);
* sampler: ``sampling.generate`` tokens/s and compile time on the
  ``benchmarks/sampler_vs_hf.py`` models (16 prompts x 64 tokens, 128 new tokens,
  top-p 0.95), weights drawn with ``models.init_params`` (throughput does not
  depend on their values: no stop token, every row runs all 128 steps);
* RL step: the ``benchmarks/rl_step_vs_trl.py`` GRPO step of this library
  (generate / prepare / update / total, medians after warm-up steps).

``--smoke`` runs tiny shapes and allows a CPU (``impl=xla`` only), to check this
script itself on a machine without a GPU. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import sampler_vs_hf  # benchmarks/ is on sys.path (run as a script)
import rl_step_vs_trl

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))

KERNEL_CASES = [
    ("f32 T=4096 D=1024 V=65536", ["--t=4096", "--d=1024", "--v=65536", "--dtype=float32"]),
    ("bf16 T=16384 D=2048 V=151936 +H +KL", ["--t=16384", "--d=2048", "--v=151936",
                                             "--dtype=bfloat16", "--entropy", "--kl=full"]),
]
SMOKE_KERNEL_CASES = [("f32 T=256 D=64 V=1024", ["--t=256", "--d=64", "--v=1024"])]


def kernel_rows(smoke: bool, repeats: int):
  """(case, impl, temp GiB, temp/naive, fwd+bwd s, time/naive) from fused_logprob.py's table."""
  rows, raw = [], []
  impls = "xla" if smoke else "gpu,xla"
  for label, args in (SMOKE_KERNEL_CASES if smoke else KERNEL_CASES):
    cmd = [sys.executable, os.path.join(HERE, "fused_logprob.py"), f"--impls={impls}",
           f"--repeats={repeats}", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    shown = " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd[1:])
    raw.append(f"$ python {shown}\n{proc.stdout}")
    if proc.returncode:  # recorded (and the script exits non-zero at the end), not fatal
      err = proc.stderr.strip().splitlines()
      raw[-1] += f"FAILED (rc {proc.returncode}):\n" + "\n".join(err[-40:]) + "\n"
      rows.append((label, impls, "FAILED", "", "", err[-1][:120] if err else ""))
      continue
    lines = proc.stdout.splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("impl "))
    for line in lines[start + 1:]:
      parts = line.split()
      if len(parts) == 5:  # impl, temp GiB, temp / naive, fwd+bwd s, time / naive
        rows.append((label, *parts))
  return rows, raw


def _save_model(size: str, directory: str) -> int:
  """A random model of ``sampler_vs_hf.SIZES[size]`` (Llama kwargs) written with save_hf."""
  import jax
  from jaxrl_llm import models
  s = sampler_vs_hf.SIZES[size]
  config = models.ModelConfig(
      family="llama", vocab_size=s["vocab_size"], hidden_size=s["hidden_size"],
      intermediate_size=s["intermediate_size"], num_layers=s["num_hidden_layers"],
      num_heads=s["num_attention_heads"], num_kv_heads=s["num_key_value_heads"],
      head_dim=s["hidden_size"] // s["num_attention_heads"],
      tie_word_embeddings=s["tie_word_embeddings"], max_position_embeddings=1024,
      pad_token_id=0)
  params = models.init_params(config, jax.random.key(0))
  models.save_hf(directory, config, jax.device_get(params))
  return sum(x.size for x in jax.tree.leaves(params))


def sampler_rows(sizes, repeats: int):
  rows = []
  for size in sizes:
    with tempfile.TemporaryDirectory() as directory:
      n = _save_model(size, directory)
      r = sampler_vs_hf._time_ours(directory, repeats)  # pylint: disable=protected-access
      best = min(r["times"])
      tokens_per_s = sampler_vs_hf.BATCH * sampler_vs_hf.NEW_TOKENS / best
      rows.append((size, f"{n / 1e6:.2f}M", f"{tokens_per_s:,.0f}", f"{best:.3f}",
                   f"{r['compile']:.1f}"))
  return rows


def rl_step_row(steps: int, warmup: int):
  with tempfile.TemporaryDirectory() as workdir:
    rl_step_vs_trl.write_workload(workdir, steps + warmup)
    out = os.path.join(workdir, "ours.jsonl")
    rl_step_vs_trl.run_ours(workdir, steps + warmup, out)
    with open(out) as f:
      records = [json.loads(line) for line in f if line.strip()][warmup:]
  med = {k: statistics.median(r[k] for r in records)
         for k in ("generate", "prepare", "update", "total")}
  return med, len(records)


def _gpu_name() -> str:
  try:
    out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
    return out.stdout.strip().replace("\n", "; ") or "unknown"
  except (OSError, subprocess.SubprocessError):
    return "no nvidia-smi"


def main():
  ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  ap.add_argument("--out", required=True, help="Markdown file to write")
  ap.add_argument("--tests", default="", help="the compiled-kernel test summary line (from the .sh)")
  ap.add_argument("--smoke", action="store_true", help="tiny shapes; a CPU is allowed")
  a = ap.parse_args()

  # fused_logprob.py runs in child processes: this process must not hold 75 % of the GPU.
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  import jax
  device = jax.devices()[0]
  if device.platform != "gpu" and not a.smoke:
    sys.exit(f"gpu_check.py: jax's first device is {device.platform!r}, not a GPU "
             f"(devices: {jax.devices()}); install a CUDA jax or pass --smoke")
  start = time.perf_counter()
  timings = {}

  t0 = time.perf_counter()
  krows, kraw = kernel_rows(a.smoke, repeats=2 if a.smoke else 3)
  timings["kernel"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  srows = sampler_rows(["1m"] if a.smoke else ["1m", "rl-1m", "125m"], repeats=1 if a.smoke else 3)
  timings["sampler"] = time.perf_counter() - t0
  t0 = time.perf_counter()
  steps, warmup = (2, 1) if a.smoke else (10, 3)
  rl, n_steps = rl_step_row(steps, warmup)
  timings["rl_step"] = time.perf_counter() - t0

  import jaxlib
  plugins = []
  for name in ("jax_cuda12_plugin", "jax_cuda13_plugin"):
    try:
      from importlib.metadata import version
      plugins.append(f"{name.replace('_', '-')} {version(name.replace('_', '-'))}")
    except Exception:  # pylint: disable=broad-except  # not installed
      pass
  lines = [
      f"# GPU check {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}"
      + (" (SMOKE RUN: tiny shapes, not GPU numbers)" if a.smoke else ""),
      "",
      f"- device: {device.platform} {device.device_kind}; nvidia-smi: {_gpu_name()}",
      f"- jax {jax.__version__}, jaxlib {jaxlib.__version__}"
      + (f", {', '.join(plugins)}" if plugins else ""),
      f"- written by `benchmarks/gpu_check.sh` / `benchmarks/gpu_check.py`; "
      f"benchmark phases {', '.join(f'{k} {v:.0f} s' for k, v in timings.items())}",
  ]
  if a.tests:
    lines.append(f"- compiled Triton kernel tests (`JAXRL_REQUIRE_GPU=1`, interpret=False): {a.tests}")
  lines += ["", "## Fused log-prob kernel (fwd+bwd, `benchmarks/fused_logprob.py`)", "",
            "| shape | impl | temp GiB | temp / naive | fwd+bwd s | time / naive |",
            "|---|---|---:|---:|---:|---:|"]
  lines += [f"| {' | '.join(r)} |" for r in krows]
  lines += ["", f"## Sampler (`sampling.generate`, {sampler_vs_hf.BATCH} prompts x "
            f"{sampler_vs_hf.PROMPT_LEN} tokens, {sampler_vs_hf.NEW_TOKENS} new, top-p "
            f"{sampler_vs_hf.TOP_P})", "",
            "| model | params | tokens/s | best s | compile s |", "|---|---:|---:|---:|---:|"]
  lines += [f"| {' | '.join(r)} |" for r in srows]
  lines += ["", f"## GRPO step of this library (`benchmarks/rl_step_vs_trl.py` workload, median of "
            f"{n_steps} steps after {warmup} warm-up)", "",
            "| generate (+decode, reward) s | prepare s | update s | total s |",
            "|---:|---:|---:|---:|",
            f"| {rl['generate']:.3f} | {rl['prepare']:.3f} | {rl['update']:.3f} | {rl['total']:.3f} |",
            "", "## Raw kernel benchmark output", ""]
  for block in kraw:
    lines += ["```", block.rstrip(), "```"]
  os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
  with open(a.out, "w") as f:
    f.write("\n".join(lines) + "\n")
  print("\n".join(lines))
  print(f"wrote {a.out} ({time.perf_counter() - start:.0f} s)")
  failed = [r[0] for r in krows if r[2] == "FAILED"]
  if failed:
    sys.exit(f"gpu_check.py: the kernel benchmark failed for {failed} (see the raw output in {a.out})")


if __name__ == "__main__":
  main()

"""Throughput of `jaxrl_llm.sampling.generate` vs `transformers` `generate` on CPU.

Same weights (a random Hugging Face Llama saved to disk, read by this sampler
with `jaxrl_llm.models.load_hf`), same batch: 16 prompts x 64 tokens, 128 new
tokens, top-p 0.95 (no top-k), temperature 1, no stop token (every row runs the
full 128 steps). Reports decoded tokens per second (steady state, best of
``--repeats`` runs) for both (for each, the better of its default thread count
and one thread: an oversubscribed shared CPU can make either's default thread
pool much slower), and this sampler's compile time separately
(first call minus the best steady-state call).

Each sampler is timed in its own fresh process (``--impl``), so XLA's and
PyTorch's thread pools never compete inside one process.

    .venv/bin/python benchmarks/sampler_vs_hf.py [--sizes 1m,rl-1m,125m] [--repeats 3]

Not a test: timings depend on the machine and on whatever else shares its cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from _machine import cpu_model as _cpu_model  # benchmarks/ is on sys.path (run as a script)

BATCH, PROMPT_LEN, NEW_TOKENS, TOP_P = 16, 64, 128, 0.95

SIZES = {
    # ~0.9M parameters (tied embeddings).
    "1m": dict(vocab_size=2048, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
               num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True),
    # ~1.1M parameters: the RL-step workload of benchmarks/rl_step_vs_trl.py (TRL's random
    # tiny Llama shape): 4 layers, hidden 128, MLP 512, vocab 512, 4 heads / 2 KV heads.
    "rl-1m": dict(vocab_size=512, hidden_size=128, intermediate_size=512, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False),
    # ~127M parameters, Llama shape: 12 layers, 768 wide, 32k vocab.
    "125m": dict(vocab_size=32000, hidden_size=768, intermediate_size=1792, num_hidden_layers=12,
                 num_attention_heads=12, num_key_value_heads=12, tie_word_embeddings=False),
}


def _prompts(vocab_size):
  tokens = np.random.default_rng(0).integers(1, vocab_size, (BATCH, PROMPT_LEN)).astype(np.int32)
  return tokens, np.ones_like(tokens)


def _seconds(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def _save_hf_model(size: str, directory: str) -> int:
  import torch
  from transformers import AutoModelForCausalLM, LlamaConfig
  torch.manual_seed(0)
  cfg = LlamaConfig(max_position_embeddings=1024, bos_token_id=None, eos_token_id=None,
                    pad_token_id=0, **SIZES[size])
  model = AutoModelForCausalLM.from_config(cfg)
  model.save_pretrained(directory)
  return sum(p.numel() for p in model.parameters())


def _time_hf(directory, repeats, threads=None):
  import torch
  from transformers import AutoModelForCausalLM
  if threads:
    torch.set_num_threads(threads)
  model = AutoModelForCausalLM.from_pretrained(directory).eval()
  tokens, mask = _prompts(model.config.vocab_size)
  ids, am = torch.tensor(tokens, dtype=torch.long), torch.tensor(mask)
  kwargs = dict(do_sample=True, top_p=TOP_P, top_k=0, temperature=1.0, eos_token_id=None,
                pad_token_id=0)

  def run(max_new_tokens=NEW_TOKENS):
    with torch.no_grad():
      out = model.generate(input_ids=ids, attention_mask=am, max_new_tokens=max_new_tokens,
                           min_new_tokens=max_new_tokens, **kwargs)
    assert out.shape == (BATCH, PROMPT_LEN + max_new_tokens), out.shape

  run(4)  # warm-up
  return dict(times=[_seconds(run) for _ in range(repeats)], threads=torch.get_num_threads(),
              version=torch.__version__)


def _time_ours(directory, repeats, threads=None):
  del threads  # XLA's thread pool is set by XLA_FLAGS in the parent (see main)
  import jax
  from jaxrl_llm import models, sampling
  config, params = models.load_hf(directory)
  tokens, mask = _prompts(config.vocab_size)
  seeds = iter(range(10**6))

  def run():
    out = sampling.generate(config, params, tokens, mask, jax.random.key(next(seeds)),
                            max_new_tokens=NEW_TOKENS, top_p=TOP_P)
    jax.block_until_ready(out)
    assert int(out.lengths.min()) == NEW_TOKENS

  first = _seconds(run)  # includes compilation
  times = [_seconds(run) for _ in range(repeats)]
  return dict(times=times, compile=first - min(times), version=jax.__version__,
              platform=jax.devices()[0].platform)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="1m,rl-1m,125m")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--impl", choices=("ours", "hf"), help="(internal) time one sampler")
  parser.add_argument("--model-dir", help="(internal) saved HF model")
  parser.add_argument("--threads", type=int, default=0, help="(internal) torch threads")
  args = parser.parse_args()
  if args.impl:
    timer = _time_ours if args.impl == "ours" else _time_hf
    print("RESULT " + json.dumps(timer(args.model_dir, args.repeats, args.threads)), flush=True)
    return

  print(f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}")
  rows = []
  for size in args.sizes.split(","):
    with tempfile.TemporaryDirectory() as directory:
      num_params = _save_hf_model(size, directory)
      results = {}
      # PyTorch with its default threads (one per core) and with one thread: on a shared,
      # oversubscribed CPU OpenMP barriers can make the default much slower; HF gets the best.
      # The same two settings for XLA (its thread pool limited by XLA_FLAGS in that process).
      for impl, threads in (("ours", 0), ("ours", 1), ("hf", 0), ("hf", 1)):
        env = dict(os.environ)
        if impl == "ours" and threads == 1:
          env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=false"
                              " intra_op_parallelism_threads=1").strip()
        proc = subprocess.run([sys.executable, __file__, "--impl", impl, "--model-dir", directory,
                               "--repeats", str(args.repeats), "--threads", str(threads)],
                              capture_output=True, text=True, env=env)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not lines:
          raise RuntimeError(f"{impl} run failed:\n{proc.stderr[-3000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        results.setdefault(impl, []).append(result)
        print(f"{size} {impl}: {result}", flush=True)
    ours = min(min(r["times"]) for r in results["ours"])
    theirs = min(min(r["times"]) for r in results["hf"])
    n = BATCH * NEW_TOKENS
    rows.append((size, num_params, n / ours, n / theirs, theirs / ours,
                 min(r["compile"] for r in results["ours"])))
  print(f"\nload average at the end: {os.getloadavg()}")
  print("\n| model | params | jaxrl_llm tok/s | HF generate tok/s | speed-up | compile (s) |")
  print("|---|---|---|---|---|---|")
  for size, num_params, ours, theirs, ratio, compile_s in rows:
    print(f"| {size} | {num_params / 1e6:.1f}M | {ours:.0f} | {theirs:.0f} | {ratio:.2f}x | "
          f"{compile_s:.1f} |")


if __name__ == "__main__":
  main()

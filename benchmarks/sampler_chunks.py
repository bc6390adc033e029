"""Cost of chunked group sampling (BroRL-style large G) vs the one-shot sampler, on CPU.

`jaxrl_llm.sampling.generate` with ``num_samples=G`` three ways, same weights and
prompts (B prompts x 64 tokens, ``--new-tokens`` new tokens, top-p 0.95, no stop
token so every row runs the whole budget):

  one-shot   ``sample_chunk=None``: the default sampler (one decode loop of B·G rows,
             one key per step for all rows)
  per-row    ``sample_chunk=G``: one decode loop of B·G rows, one key per row and step
             (the stream that chunked sampling reproduces)
  chunked    ``sample_chunk=C``: prefill once, G / C decode loops of B·C rows

Reports decoded tokens per second (best of ``--repeats`` steady-state calls) and the
compile time of the first call. The model is a random Hugging Face Llama of
benchmarks/sampler_vs_hf.py's ``--size`` read with `models.load_hf`.

    .venv/bin/python benchmarks/sampler_chunks.py [--size 1m] [--prompts 4] [--group 32] \
        [--chunk 8] [--repeats 3]

Not a test: timings depend on the machine and on whatever else shares its cores.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _machine import cpu_model as _cpu_model  # noqa: E402
import sampler_vs_hf  # noqa: E402


def _seconds(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--size", default="1m", choices=sorted(sampler_vs_hf.SIZES))
  parser.add_argument("--prompts", type=int, default=4)
  parser.add_argument("--group", type=int, default=32)
  parser.add_argument("--chunk", type=int, default=8)
  parser.add_argument("--new-tokens", type=int, default=64)
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  import jax
  from jaxrl_llm import models, sampling
  print(f"machine: {_cpu_model()}, {os.cpu_count()} CPUs, load average {os.getloadavg()}, "
        f"jax {jax.__version__} ({jax.devices()[0].platform})")
  with tempfile.TemporaryDirectory() as directory:
    sampler_vs_hf._save_hf_model(args.size, directory)
    config, params = models.load_hf(directory)
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, config.vocab_size, (args.prompts, 64)).astype(np.int32)
  mask = np.ones_like(tokens)
  rows = args.prompts * args.group
  print(f"\n| size | B x G | mode | decode rows per loop | tok/s | compile (s) |")
  print("|---|---|---|---|---|---|")
  for name, chunk in (("one-shot", None), ("per-row", args.group), ("chunked", args.chunk)):
    seeds = iter(range(10**6))

    def run():
      out = sampling.generate(config, params, tokens, mask, jax.random.key(next(seeds)),
                              max_new_tokens=args.new_tokens, num_samples=args.group,
                              top_p=0.95, sample_chunk=chunk)
      jax.block_until_ready(out)
      assert int(out.lengths.min()) == args.new_tokens

    first = _seconds(run)
    times = [_seconds(run) for _ in range(args.repeats)]
    loop_rows = args.prompts * (chunk or args.group)
    print(f"| {args.size} | {args.prompts} x {args.group} | {name} | {loop_rows} | "
          f"{rows * args.new_tokens / min(times):.0f} | {first - min(times):.1f} |", flush=True)


if __name__ == "__main__":
  main()

"""Throughput of `jaxrl_llm.sampling.generate` vs `transformers` `generate` on CPU.

Same weights (a random Hugging Face Llama saved to disk and read with
`jaxrl_llm.models.load_hf`), same batch: 16 prompts x 64 tokens, 128 new
tokens, top-p 0.95 (no top-k), temperature 1, no stop token (every row runs the
full 128 steps). Reports decoded tokens per second (steady state, best of
``--repeats`` runs) for both, and this sampler's compile time separately
(first call minus a steady-state call).

    .venv/bin/python benchmarks/sampler_vs_hf.py [--sizes 1m,125m] [--repeats 2]

Not a test: timings depend on the machine and on whatever else shares its cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

import jax
import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from jaxrl_llm import models, sampling

BATCH, PROMPT_LEN, NEW_TOKENS, TOP_P = 16, 64, 128, 0.95

SIZES = {
    # ~0.9M parameters (tied embeddings).
    "1m": dict(vocab_size=2048, hidden_size=128, intermediate_size=256, num_hidden_layers=4,
               num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True),
    # ~127M parameters, Llama shape: 12 layers, 768 wide, 32k vocab.
    "125m": dict(vocab_size=32000, hidden_size=768, intermediate_size=1792, num_hidden_layers=12,
                 num_attention_heads=12, num_key_value_heads=12, tie_word_embeddings=False),
}


def _hf_model(size: str, directory: str):
  torch.manual_seed(0)
  cfg = LlamaConfig(max_position_embeddings=1024, bos_token_id=None, eos_token_id=None,
                    pad_token_id=0, **SIZES[size])
  model = AutoModelForCausalLM.from_config(cfg).eval()
  model.save_pretrained(directory)
  return model


def _time_hf(model, tokens, mask, repeats):
  ids, am = torch.tensor(tokens), torch.tensor(mask)
  kwargs = dict(do_sample=True, top_p=TOP_P, top_k=0, temperature=1.0, eos_token_id=None,
                pad_token_id=0)
  with torch.no_grad():
    model.generate(input_ids=ids, attention_mask=am, max_new_tokens=4, **kwargs)  # warm-up
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      out = model.generate(input_ids=ids, attention_mask=am, max_new_tokens=NEW_TOKENS,
                           min_new_tokens=NEW_TOKENS, **kwargs)
      times.append(time.perf_counter() - start)
  assert out.shape == (BATCH, PROMPT_LEN + NEW_TOKENS), out.shape
  return min(times)


def _time_ours(config, params, tokens, mask, repeats):
  def run(seed):
    out = sampling.generate(config, params, tokens, mask, jax.random.key(seed),
                            max_new_tokens=NEW_TOKENS, top_p=TOP_P)
    jax.block_until_ready(out)
    return out

  start = time.perf_counter()
  out = run(0)
  first = time.perf_counter() - start
  times = []
  for seed in range(1, repeats + 1):
    start = time.perf_counter()
    out = run(seed)
    times.append(time.perf_counter() - start)
  assert int(out.lengths.min()) == NEW_TOKENS
  steady = min(times)
  return steady, first - steady


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="1m,125m")
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch.get_num_threads()} threads)")
  rows = []
  for size in args.sizes.split(","):
    with tempfile.TemporaryDirectory() as directory:
      hf = _hf_model(size, directory)
      config, params = models.load_hf(directory)
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, config.vocab_size, (BATCH, PROMPT_LEN)).astype(np.int32)
    mask = np.ones_like(tokens)
    ours, compile_s = _time_ours(config, params, tokens, mask, args.repeats)
    theirs = _time_hf(hf, tokens, mask, args.repeats)
    n = BATCH * NEW_TOKENS
    rows.append((size, config.num_params(), n / ours, n / theirs, theirs / ours, compile_s))
    print(f"{size}: ours {ours:.2f}s  hf {theirs:.2f}s  compile {compile_s:.1f}s", flush=True)
  print("\n| model | params | jaxrl_llm tok/s | HF generate tok/s | speed-up | compile (s) |")
  print("|---|---|---|---|---|---|")
  for size, n_params, ours, theirs, ratio, compile_s in rows:
    print(f"| {size} | {n_params / 1e6:.1f}M | {ours:.0f} | {theirs:.0f} | {ratio:.2f}x | "
          f"{compile_s:.1f} |")


if __name__ == "__main__":
  main()

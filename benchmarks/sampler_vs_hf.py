"""Throughput of `jaxrl_llm.sampling.generate` vs `transformers` `generate` on CPU.

Same weights (a random Hugging Face Llama saved to disk, read by this sampler
with `jaxrl_llm.models.load_hf`), same batch: 16 prompts x 64 tokens, 128 new
tokens, top-p 0.95 (no top-k), temperature 1, no stop token (every row runs the
full 128 steps). Reports decoded tokens per second (steady state, best of
``--repeats`` runs) for both (for each, the better of its default thread count
and one thread: an oversubscribed shared CPU can make either's default thread
pool much slower), and this sampler's compile time separately
(first call minus the best steady-state call). Beside them, the matmul floor: the
same prefill and decode with only their weight matmuls, in XLA; HF's time over it is
the ceiling no XLA:CPU sampler can pass on this machine (see `_time_matmul_floor`).

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


def _pin_to_one_cpu():
  """Limit this process to one CPU before jax starts: XLA:CPU sizes its thread pool from
  the CPU affinity mask (its flags have no per-process thread-count knob), so this is
  XLA's counterpart of ``torch.set_num_threads(1)``."""
  os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def _time_ours(directory, repeats, threads=None):
  if threads == 1:
    _pin_to_one_cpu()
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
  return dict(times=times, compile=first - min(times), cpus=len(os.sched_getaffinity(0)),
              version=jax.__version__,
              platform=jax.devices()[0].platform)


def _time_matmul_floor(directory, repeats, threads=None):
  """Seconds for only the weight matmuls of this benchmark's prefill and decode, in XLA.

  The same shapes as the model (per layer x·W_q, x·W_k, x·W_v, ·W_o, x·W_gate, x·W_up,
  ·W_down; then the vocabulary head): the prefill's on B·P rows (head on the B last
  ones), then NEW_TOKENS steps of a `lax.fori_loop` on B rows, each step's input the
  last one's output, so nothing is hoisted. No attention, norm, RoPE, cache or sampling:
  any sampler whose matmuls are XLA:CPU's dots takes at least this long, so
  HF's time / this is the highest speed-up such a sampler can show on this machine.
  """
  if threads == 1:
    _pin_to_one_cpu()
  import jax
  import jax.numpy as jnp
  from jaxrl_llm import models
  config, params = models.load_hf(directory)
  layers = models.split_layers(params["layers"])
  head = models.unembed_weight(config, params)
  d = config.hidden_size
  weights = [(p["attn"]["q_kernel"].reshape(d, -1), p["attn"]["k_kernel"].reshape(d, -1),
              p["attn"]["v_kernel"].reshape(d, -1), p["attn"]["o_kernel"].reshape(-1, d),
              p["mlp"]["gate_kernel"], p["mlp"]["up_kernel"], p["mlp"]["down_kernel"])
             for p in layers]

  def matmuls(x):
    for wq, wk, wv, wo, wg, wu, wd in weights:
      q = x @ wq
      kv = (x @ wk).sum(-1, keepdims=True) + (x @ wv).sum(-1, keepdims=True)
      x = x + (q + 1e-3 * kv) @ wo
      x = x + ((x @ wg) * (x @ wu)) @ wd
    return x

  @jax.jit
  def run(x):
    h = matmuls(x.reshape(-1, d)).reshape(x.shape)[:, -1]
    h = h + 1e-3 * (h @ head)[:, :d]

    def step(_, h):
      h = matmuls(h)
      return h + 1e-3 * (h @ head)[:, :d]

    return jax.lax.fori_loop(0, NEW_TOKENS, step, h)

  x = jnp.asarray(np.random.default_rng(0).normal(size=(BATCH, PROMPT_LEN, d)), jnp.float32)
  jax.block_until_ready(run(x))
  return dict(times=[_seconds(lambda: jax.block_until_ready(run(x))) for _ in range(repeats)])


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--sizes", default="1m,rl-1m,125m")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--impl", choices=("ours", "hf", "floor"),
                      help="(internal) time one sampler, or the matmul floor")
  parser.add_argument("--model-dir", help="(internal) saved HF model")
  parser.add_argument("--threads", type=int, default=0, help="(internal) 1 = one thread")
  args = parser.parse_args()
  if args.impl:
    timer = {"ours": _time_ours, "hf": _time_hf, "floor": _time_matmul_floor}[args.impl]
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
      # The same two settings for XLA (one CPU: `_pin_to_one_cpu`), and for the floor.
      for impl, threads in (("ours", 0), ("ours", 1), ("hf", 0), ("hf", 1), ("floor", 0),
                            ("floor", 1)):
        proc = subprocess.run([sys.executable, __file__, "--impl", impl, "--model-dir", directory,
                               "--repeats", str(args.repeats), "--threads", str(threads)],
                              capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not lines:
          raise RuntimeError(f"{impl} run failed:\n{proc.stderr[-3000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        results.setdefault(impl, []).append(result)
        print(f"{size} {impl}: {result}", flush=True)
    ours = min(min(r["times"]) for r in results["ours"])
    theirs = min(min(r["times"]) for r in results["hf"])
    floor = min(min(r["times"]) for r in results["floor"])
    n = BATCH * NEW_TOKENS
    rows.append((size, num_params, n / ours, n / theirs, theirs / ours,
                 min(r["compile"] for r in results["ours"]), ours, floor, theirs / floor))
  print(f"\nload average at the end: {os.getloadavg()}")
  print("\nmatmul floor: the prefill's and decode's weight matmuls alone, in XLA (no attention,"
        "\nnorm, cache or sampling); ceiling = HF time / floor, the most any XLA sampler can show.")
  print("\n| model | params | jaxrl_llm tok/s | HF generate tok/s | speed-up | compile (s) | "
        "ours (s) | matmul floor (s) | ceiling |")
  print("|---|---|---|---|---|---|---|---|---|")
  for size, num_params, ours, theirs, ratio, compile_s, seconds, floor, ceiling in rows:
    print(f"| {size} | {num_params / 1e6:.1f}M | {ours:.0f} | {theirs:.0f} | {ratio:.2f}x | "
          f"{compile_s:.1f} | {seconds:.3f} | {floor:.3f} | {ceiling:.2f}x |")


if __name__ == "__main__":
  main()

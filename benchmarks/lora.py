"""LoRA vs full fine-tuning on a 125M-parameter model: trainable parameters, optimiser
memory and SFT step time (CPU by default).

Model: a random Llama with hidden 768, 12 layers, 12 heads (12 KV heads, head_dim 64),
SwiGLU MLP 2560, vocab 32000 with tied embeddings (123.7M parameters), fp32. One SFT
step (``training.make_sft_step``: masked next-token NLL, clip-by-global-norm + AdamW,
jitted with the state donated, as experiments/sft.py runs it) on ``--batch`` x ``--seq``
random tokens, for

  * full: every parameter trained, AdamW state for all of them;
  * LoRA (``models.lora``, rank ``--rank``) on q,k,v,o,gate,up,down, and on q,v only:
    the base frozen, AdamW state for the adapters only.

and, for the LoRA-on-all-projections variant, the adapters' loss + gradient alone with the
loss run unmerged (``x·W + (x·A)·(s·B)``, the path the steps use) vs merged
(``W + s·A·B`` formed inside the loss, whose backward forms a full-size ``dL/dW'``).

Optimiser memory is the bytes of the optax state arrays (AdamW: mu and nu). Step time:
best of ``--repeats`` after a compile/warm-up call, the variants timed interleaved so
machine load hits all alike. Writes a Markdown table to stdout (and ``--out``).

    .venv/bin/python benchmarks/lora.py [--batch 2 --seq 64 --rank 8 --repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxrl_llm import models, training  # noqa: E402
from jaxrl_llm.models import lora  # noqa: E402
from _machine import cpu_model  # noqa: E402  (benchmarks/ is on sys.path: run as a script)

MODEL_125M = dict(family="llama", vocab_size=32000, hidden_size=768, intermediate_size=2560,
                  num_layers=12, num_heads=12, num_kv_heads=12, head_dim=64,
                  max_position_embeddings=2048, tie_word_embeddings=True)


def _nbytes(tree) -> int:
  return int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree)))


def _batch(batch, seq, vocab, seed=0):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, vocab, (batch, seq)).astype(np.int32)
  mask = np.ones((batch, seq), np.int32)
  loss_mask = np.zeros((batch, seq), np.int32)
  loss_mask[:, seq // 2:] = 1
  return {"tokens": tokens, "attention_mask": mask, "loss_mask": loss_mask}


def main(argv=None):
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--batch", type=int, default=2)
  ap.add_argument("--seq", type=int, default=64)
  ap.add_argument("--rank", type=int, default=8)
  ap.add_argument("--repeats", type=int, default=3)
  ap.add_argument("--out", default="")
  args = ap.parse_args(argv)

  config = models.ModelConfig(**MODEL_125M)
  params = models.init_params(config, jax.random.key(0))
  n_total = lora.count_params(params)
  optimizer = training.make_optimizer(1e-4)
  variants = {
      "full": None,
      f"LoRA r={args.rank} (q,k,v,o,gate,up,down)": lora.LoraConfig(args.rank, 2.0 * args.rank),
      f"LoRA r={args.rank} (q,v)": lora.LoraConfig(args.rank, 2.0 * args.rank, ("q", "v")),
  }
  batch = _batch(args.batch, args.seq, config.vocab_size)
  step = jax.jit(training.make_sft_step(config, optimizer), donate_argnums=0)
  rows, states, compile_s = {}, {}, {}
  for name, cfg in variants.items():
    p = jax.tree.map(lambda x: x.copy(), params)
    p = p if cfg is None else lora.wrap(cfg, p, jax.random.key(1))
    state = training.init_train_state(p, optimizer)
    rows[name] = {"trainable": lora.count_params(lora.trainable(state.params)),
                  "opt_bytes": _nbytes(state.opt_state)}
    t0 = time.perf_counter()
    state, m = step(state, batch)
    jax.block_until_ready(m["loss"])
    compile_s[name] = time.perf_counter() - t0
    states[name] = state
    print(f"{name}: compiled + first step {compile_s[name]:.1f} s", flush=True)
  times = {name: [] for name in variants}
  for _ in range(args.repeats):
    for name in variants:
      t0 = time.perf_counter()
      states[name], m = step(states[name], batch)
      jax.block_until_ready(m["loss"])
      times[name].append(time.perf_counter() - t0)
  full_t = min(times["full"])
  lines = [
      f"LoRA vs full fine-tuning, 125M model ({n_total / 1e6:.1f}M parameters, fp32), one SFT "
      f"step on {args.batch} x {args.seq} tokens, AdamW; {jax.devices()[0].platform} "
      f"({cpu_model()}, {os.cpu_count()} cores), "
      f"jax {jax.__version__}, best of {args.repeats}.",
      "",
      "| variant | trainable parameters | optimiser state | step time | vs full |",
      "|---|---:|---:|---:|---:|",
  ]
  for name in variants:
    r, t = rows[name], min(times[name])
    lines.append(f"| {name} | {r['trainable']:,} ({100 * r['trainable'] / n_total:.2f} %) | "
                 f"{r['opt_bytes'] / 2**20:.1f} MiB | {t * 1e3:.0f} ms | {full_t / t:.2f}x |")
  # The design choice of models.lora: unmerged vs merged adapters inside the loss.
  all_name = list(variants)[1]
  lp = lora.wrap(variants[all_name], params, jax.random.key(1))

  def nll(adapters, merged):
    out = training.sequence_logprobs(config, lora.model_params(lp, adapters, merged=merged),
                                     batch["tokens"], batch["attention_mask"])
    m = batch["loss_mask"][:, 1:]
    return -(out.logprobs * m).sum() / m.sum()
  grads = {merged: jax.jit(jax.value_and_grad(lambda a, merged=merged: nll(a, merged)))
           for merged in (False, True)}
  for g in grads.values():
    jax.block_until_ready(g(lp.adapters))
  gtimes = {False: [], True: []}
  for _ in range(args.repeats):
    for merged, g in grads.items():
      t0 = time.perf_counter()
      jax.block_until_ready(g(lp.adapters))
      gtimes[merged].append(time.perf_counter() - t0)
  lines += ["", f"Loss + adapter gradient only, {all_name}:", "",
            "| adapters in the loss | time |", "|---|---:|",
            f"| unmerged (x·W + (x·A)·(s·B), the steps' path) | {min(gtimes[False]) * 1e3:.0f} ms |",
            f"| merged (W + s·A·B formed in the loss) | {min(gtimes[True]) * 1e3:.0f} ms |"]
  text = "\n".join(lines)
  print(text)
  if args.out:
    with open(args.out, "w") as f:
      f.write(text + "\n")
  return rows, times


if __name__ == "__main__":
  main()

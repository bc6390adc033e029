"""Matmul floor of the `benchmarks/rl_step_vs_trl.py` update, in XLA on this machine.

The update's weight matmuls only (per weight W: the forward x·W, the input gradient
dy·Wᵀ and the weight gradient xᵀ·dy) on the benchmark's 16 x 8 rows x (16 + 64) tokens
of its Llama (4 layers, hidden 128, MLP 512, vocab 512, 4 / 2 heads); no attention, norm,
loss or optimiser. Any XLA:CPU fp32 update takes at least this long.

    .venv/bin/python benchmarks/rl_update_matmul_floor.py
"""
import time

import jax
import jax.numpy as jnp
import numpy as np

N = 16 * 8 * (16 + 64)  # tokens in one update
D, F, V, L = 128, 512, 512, 4
shapes = [(D, D), (D, 64), (D, 64), (D, D), (D, F), (D, F), (F, D)] * L + [(D, V)]
rng = np.random.default_rng(0)
ws = [jnp.asarray(rng.normal(size=s) * 0.02, jnp.float32) for s in shapes]
xs = {s: jnp.asarray(rng.normal(size=(N, s[0])), jnp.float32) for s in set(shapes)}
gs = {s: jnp.asarray(rng.normal(size=(N, s[1])), jnp.float32) for s in set(shapes)}
@jax.jit
def step(ws, xs, gs):
  out = 0.0
  for w, s in zip(ws, shapes):
    y = xs[s] @ w                 # forward
    dx = gs[s] @ w.T              # input gradient
    dw = xs[s].T @ gs[s]          # weight gradient
    out = out + y[0, 0] + dx[0, 0] + dw[0, 0]
  return out
flops = sum(3 * 2 * N * a * b for a, b in shapes)
jax.block_until_ready(step(ws, xs, gs))
ts = []
for _ in range(7):
  t = time.perf_counter(); jax.block_until_ready(step(ws, xs, gs)); ts.append(time.perf_counter() - t)
print("update matmul floor: %.3f s (best of 7), %.1f GFLOP, %.0f GFLOP/s" % (min(ts), flops / 1e9, flops / min(ts) / 1e9))

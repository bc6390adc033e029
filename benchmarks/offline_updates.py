"""IQL update throughput on this machine: `update_n` (lax.scan) vs one jitted
call per step, and achieved GFLOP/s against a measured dense-matmul peak.

  .venv/bin/python benchmarks/offline_updates.py [--steps 1000] [--repeats 3]

Batch 256, (256, 256) MLPs, Hopper-sized observations/actions (11, 3) by
default. Per-step baselines: (a) the same pre-sampled device batches as
`update_n` (isolates per-call dispatch), (b) one jitted sampling call per step,
(c) host NumPy sampling per step (the naive loop); each is compared with
`update_n` fed the same way (pre-sampled; one stacked device sampling call;
one stacked host sampling), the sampling inside the timed region. FLOPs per
update come from
XLA's cost analysis of the compiled step (an analytic count of the dense layers
is printed beside it as a cross-check). All variants and the matmul peak are
timed in interleaved rounds, best of each kept, both in wall-clock time and in
this process's CPU time (`time.process_time`, all threads): on a machine shared
with other jobs the CPU-time rates are the stabler comparison.

Both paths run the same compiled update, so update_n / per-step = (C + D) / C
with D the per-call overhead that the scan removes and C the update's compute,
and C >= FLOPs / matmul peak. The last line prints that bound, 1 + D / C_floor:
where it is below the 1.3x target, no implementation of the update can reach
the target on the machine at hand. Not a test.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.offline import agents
from jaxrl_llm.offline.types import Transitions


def synthetic_dataset(n: int, obs_dim: int, act_dim: int, seed: int = 0) -> Transitions:
  rng = np.random.default_rng(seed)
  f32 = lambda x: jnp.asarray(x, jnp.float32)
  return Transitions(
      observations=f32(rng.normal(size=(n, obs_dim))),
      actions=f32(rng.uniform(-1, 1, (n, act_dim))),
      rewards=f32(rng.normal(size=n)),
      next_observations=f32(rng.normal(size=(n, obs_dim))),
      terminals=f32(rng.random(n) < 0.01), timeouts=f32(np.zeros(n)))


def stacked_batches(data: Transitions, steps: int, batch: int, seed: int) -> Transitions:
  idx = jax.random.randint(jax.random.key(seed), (steps, batch), 0, data.observations.shape[0])
  return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)


def matmul_peak_gflops(sizes=(256, 512, 1024, 2048), repeats: int = 5) -> dict:
  """Best-of-`repeats` float32 n×n @ n×n rates for each n.

  Returns {n: (GFLOP per wall second, GFLOP per CPU second of this process)}.
  """
  out = {}
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    f = jax.jit(jnp.dot)
    f(a, b).block_until_ready()
    inner = max(1, int(2e9 // (2 * n**3)))  # ~2 GFLOP per timing sample
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
      t0, c0 = time.perf_counter(), time.process_time()
      for _ in range(inner):
        c = f(a, b)
      c.block_until_ready()
      best = min(best, (time.perf_counter() - t0) / inner)
      best_cpu = min(best_cpu, (time.process_time() - c0) / inner)
    out[n] = (2 * n**3 / best / 1e9, 2 * n**3 / best_cpu / 1e9)
  return out


def analytic_iql_flops(batch: int, obs_dim: int, act_dim: int, hidden) -> float:
  """Dense-layer FLOPs of one IQL step: forward 2·B·in·out, backward ≈ 2× forward.

  Per step: target twin-Q forward (1×), V forward+backward (3×), V forward on
  s and s' with the new V (2×), actor forward+backward (3×), twin-Q
  forward+backward (3×).
  """
  def mlp(inp, out):
    dims = (inp, *hidden, out)
    return sum(2 * batch * a * b for a, b in zip(dims[:-1], dims[1:]))

  critic = 2 * mlp(obs_dim + act_dim, 1)
  value = mlp(obs_dim, 1)
  actor = mlp(obs_dim, act_dim)
  return critic * (1 + 3) + value * (3 + 2) + actor * 3


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--steps", type=int, default=1000)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--batch", type=int, default=256)
  parser.add_argument("--obs-dim", type=int, default=11)
  parser.add_argument("--act-dim", type=int, default=3)
  parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256],
                      help="MLP widths (the issue's setting is 256 256)")
  args = parser.parse_args()

  agent = agents.get("iql")
  config = agent.get_config()
  config.hidden_dims = tuple(args.hidden)
  hidden = tuple(config.hidden_dims)
  data = synthetic_dataset(100_000, args.obs_dim, args.act_dim)
  state = agent.init(jax.random.key(0), data, config)
  batches = stacked_batches(data, args.steps, args.batch, seed=1)
  per_step = [jax.tree.map(lambda x, i=i: x[i], batches) for i in range(args.steps)]
  jax.block_until_ready(per_step)

  # Compile both paths outside the timed region.
  s, _ = agent.update(state, per_step[0])
  jax.block_until_ready(s)
  s, _ = agent.update_n(state, batches)
  jax.block_until_ready(s)

  def time_per_step():
    s = state
    t0, c0 = time.perf_counter(), time.process_time()
    for b in per_step:
      s, m = agent.update(s, b)
    jax.block_until_ready((s, m))
    return time.perf_counter() - t0, time.process_time() - c0

  host_data = jax.tree.map(np.asarray, data)
  host_rng = np.random.default_rng(2)
  sample = jax.jit(lambda key: jax.tree.map(
      lambda x: x[jax.random.randint(key, (args.batch,), 0, x.shape[0])], data))
  jax.block_until_ready(sample(jax.random.key(0)))

  def time_per_step_host_sampling():
    """The naive loop: index a host (NumPy) dataset, ship the batch, update."""
    s = state
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
      idx = host_rng.integers(0, host_data.observations.shape[0], args.batch)
      s, m = agent.update(s, jax.tree.map(lambda x: x[idx], host_data))
    jax.block_until_ready((s, m))
    return time.perf_counter() - t0, time.process_time() - c0

  def time_per_step_device_sampling():
    """One jitted sampling call and one jitted update call per step."""
    s = state
    keys = jax.random.split(jax.random.key(3), args.steps)
    t0, c0 = time.perf_counter(), time.process_time()
    for k in keys:
      s, m = agent.update(s, sample(k))
    jax.block_until_ready((s, m))
    return time.perf_counter() - t0, time.process_time() - c0

  @jax.jit
  def null_update(s, b):
    """Same (state, batch) -> (state, metrics) signature, (almost) no compute:
    each floating state leaf gets `+ 0` so that, like the real update, every
    leaf is a fresh output buffer. Its per-call time is the overhead that
    `update_n` can remove (an upper estimate: it includes writing the leaves)."""
    zero = b.rewards[0] * 0.0
    new = jax.tree.map(
        lambda x: x + zero.astype(x.dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, s)
    return new, {"zero": zero}

  jax.block_until_ready(null_update(state, per_step[0]))

  def time_null_calls():
    s = state
    t0, c0 = time.perf_counter(), time.process_time()
    for b in per_step:
      s, m = null_update(s, b)
    jax.block_until_ready((s, m))
    return time.perf_counter() - t0, time.process_time() - c0

  def time_update_n():
    t0, c0 = time.perf_counter(), time.process_time()
    s, m = agent.update_n(state, batches)
    jax.block_until_ready((s, m))
    return time.perf_counter() - t0, time.process_time() - c0

  sample_stacked = jax.jit(lambda key: jax.tree.map(
      lambda x: x[jax.random.randint(key, (args.steps, args.batch), 0, x.shape[0])], data))
  jax.block_until_ready(sample_stacked(jax.random.key(0)))

  def time_update_n_device_sampling():
    """One jitted call samples all `steps` batches, then one update_n call."""
    t0, c0 = time.perf_counter(), time.process_time()
    s, m = agent.update_n(state, sample_stacked(jax.random.key(4)))
    jax.block_until_ready((s, m))
    return time.perf_counter() - t0, time.process_time() - c0

  def time_update_n_host_sampling():
    """Index the host dataset once for all `steps` batches, ship, update_n."""
    t0, c0 = time.perf_counter(), time.process_time()
    idx = host_rng.integers(0, host_data.observations.shape[0], (args.steps, args.batch))
    s, m = agent.update_n(state, jax.tree.map(lambda x: x[idx], host_data))
    jax.block_until_ready((s, m))
    return time.perf_counter() - t0, time.process_time() - c0

  # Round-robin over the variants so that load from other processes on a
  # shared machine hits all of them alike; keep the best time of each.
  variants = {"step": time_per_step, "host": time_per_step_host_sampling,
              "dev": time_per_step_device_sampling, "scan": time_update_n,
              "scan_dev": time_update_n_device_sampling, "scan_host": time_update_n_host_sampling,
              "null": time_null_calls}
  walls = {k: [] for k in variants}
  best = {k: float("inf") for k in variants}
  best_cpu = {k: float("inf") for k in variants}
  peaks, peaks_cpu = {}, {}
  for _ in range(args.repeats):
    for k, fn in variants.items():
      wall, cpu = fn()
      walls[k].append(wall)
      best[k], best_cpu[k] = min(best[k], wall), min(best_cpu[k], cpu)
    # The matmul peak is measured in the same rounds, so it sees the same load.
    for n, (g, g_cpu) in matmul_peak_gflops(repeats=3).items():
      peaks[n] = max(peaks.get(n, 0.0), g)
      peaks_cpu[n] = max(peaks_cpu.get(n, 0.0), g_cpu)
  ups = {k: args.steps / v for k, v in best.items()}
  ups_cpu = {k: args.steps / v for k, v in best_cpu.items()}

  from jaxrl_llm.offline.agents import iql
  compiled = jax.jit(iql._update).lower(state, per_step[0]).compile()
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0]
  xla_flops = float(cost.get("flops", float("nan"))) if cost else float("nan")
  analytic = analytic_iql_flops(args.batch, args.obs_dim, args.act_dim, hidden)
  flops = xla_flops if np.isfinite(xla_flops) and xla_flops > 0 else analytic

  peak, peak_cpu = max(peaks.values()), max(peaks_cpu.values())
  ncpu = os.cpu_count()

  print(f"machine: {platform.processor() or platform.machine()}, "
        f"{ncpu} CPUs visible, jax {jax.__version__} on {jax.devices()[0].platform}, "
        f"load average at end {os.getloadavg()[0]:.1f} (other processes share the cores)")
  print(f"IQL, batch {args.batch}, hidden {hidden}, obs {args.obs_dim}, act {args.act_dim}, "
        f"{args.steps} steps, best of {args.repeats} interleaved rounds")
  print(f"  FLOPs per update: XLA cost analysis {xla_flops / 1e6:.1f} M, "
        f"analytic dense layers {analytic / 1e6:.1f} M")
  names = {"step": "per step, pre-sampled device batches", "dev": "per step, jitted device sampling",
           "host": "per step, host NumPy sampling", "scan": f"update_n (lax.scan over {args.steps}), pre-sampled",
           "scan_dev": "update_n + one stacked device sampling call",
           "scan_host": "update_n + one stacked host NumPy sampling"}
  print(f"  {'':46s} {'updates/s':>10s} {'updates/CPU-s':>14s}")
  for k, label in names.items():
    print(f"  {label:46s} {ups[k]:10.1f} {ups_cpu[k]:14.1f}")
  spread = {k: np.percentile(np.asarray(v) / args.steps * 1e3, [0, 50, 100]) for k, v in walls.items()}
  print("  ms per update over the rounds (min / median / max): " + ", ".join(
      f"{k} {lo:.2f}/{med:.2f}/{hi:.2f}" for k, (lo, med, hi) in spread.items() if k != "null"))
  for label, u in (("wall clock", ups), ("CPU time", ups_cpu)):
    print(f"  ratio update_n / per-step ({label}; target >= 1.3x): "
          f"pre-sampled {u['scan'] / u['step']:.2f}x, device sampling {u['scan_dev'] / u['dev']:.2f}x, "
          f"host sampling {u['scan_host'] / u['host']:.2f}x")
  print("  dense matmul float32 GFLOP/s (wall | per CPU-s): " +
        ", ".join(f"{n}^3: {peaks[n]:.1f} | {peaks_cpu[n]:.1f}" for n in peaks))
  for label, u, pk in (("wall clock", ups, peak), ("CPU time", ups_cpu, peak_cpu)):
    scan_g, step_g = u["scan"] * flops / 1e9, u["step"] * flops / 1e9
    print(f"  {label}: achieved GFLOP/s update_n {scan_g:.1f}, per-step {step_g:.1f}; "
          f"fraction of matmul peak {pk:.1f}: update_n {scan_g / pk:.2f}, "
          f"per-step {step_g / pk:.2f} (target >= 0.50)")
  # Why the ratio is what it is: both paths run the same compiled update, so
  # update_n / per-step = (C + D) / C, where D is the per-call overhead that the
  # scan removes and C the update's compute. C cannot drop below FLOPs / peak.
  # D: the larger of the no-op call's time and the measured gap (the real
  # update's per-call cost also includes e.g. its temporary buffers).
  measured = best["step"] / args.steps - best["scan"] / args.steps
  overhead = max(best["null"] / args.steps, measured)
  floor = flops / (peak * 1e9)
  print(f"  per-call overhead: jitted no-op with the same state/batch arguments "
        f"{best['null'] / args.steps * 1e3:.3f} ms, per-step minus update_n (pre-sampled) "
        f"{measured * 1e3:.3f} ms; D = the larger, {overhead * 1e3:.3f} ms")
  print(f"  compute floor C = FLOPs / matmul peak: {floor * 1e3:.3f} ms; measured update_n: "
        f"{best['scan'] / args.steps * 1e3:.3f} ms")
  print(f"  => on this machine update_n / per-step <= 1 + D / C_floor = {1 + overhead / floor:.2f}x "
        f"for this model, even at 100% of the matmul peak")

if __name__ == "__main__":
  main()

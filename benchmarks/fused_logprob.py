"""Memory and fwd+bwd time of the fused log-prob op vs the naive materialised-logits path.

    python benchmarks/fused_logprob.py                      # CPU: T=4096 D=1024 V=65536 f32, xla vs naive
    python benchmarks/fused_logprob.py --impls=gpu,xla --dtype=bfloat16 \\
        --t=16384 --d=2048 --v=151936                       # on a GPU

"naive" is ``impl="reference"``: dense ``[T, V]`` logits, ``log_softmax`` and plain
autodiff. Temporary memory is XLA's ``compile().memory_analysis().temp_size_in_bytes``
of the jitted value-and-grad (inputs and outputs, e.g. ``dW``, are not temporaries).
Time is the median wall time of ``--repeats`` calls after one warm-up call; the
implementations are timed interleaved so background load affects them alike.
"""

import argparse
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import kernels_pallas


def build_step(impl, args, block_v):
  """jit(value_and_grad) of a per-token-weighted log-prob (+ optional entropy/KL) objective."""

  def loss(h, w, y, coef, wr):
    kwargs = {} if impl == "reference" or block_v is None else dict(block_v=block_v)
    o = kernels_pallas.fused_logprobs(h, w, y, want_entropy=args.entropy,
                                      ref_weight=wr if args.kl else None, want_kl=args.kl,
                                      impl=impl, **kwargs)
    total = jnp.sum(coef * o.logprobs)
    if o.entropy is not None:
      total += 0.01 * jnp.sum(o.entropy)
    if o.kl is not None:
      total += 0.01 * jnp.sum(o.kl)
    return total

  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--t", type=int, default=4096)
  parser.add_argument("--d", type=int, default=1024)
  parser.add_argument("--v", type=int, default=65536)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--impls", default="xla", help="comma list, compared with 'naive'")
  parser.add_argument("--block-v", type=int, default=None, help="vocab block (default per impl)")
  parser.add_argument("--entropy", action="store_true")
  parser.add_argument("--kl", default=None, choices=[None, "k3", "full"])
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--skip-naive-time", action="store_true",
                      help="report the naive path's memory only (when it would not fit)")
  args = parser.parse_args()

  dtype = jnp.dtype(args.dtype)
  rng = np.random.default_rng(0)
  h = jnp.asarray(rng.normal(size=(args.t, args.d)), dtype)
  w = jnp.asarray(rng.normal(size=(args.d, args.v)) / np.sqrt(args.d), dtype)
  wr = (w * 0.9).astype(dtype) if args.kl else None
  y = jnp.asarray(rng.integers(0, args.v, size=args.t), jnp.int32)
  coef = jnp.asarray(rng.normal(size=args.t), jnp.float32)
  inputs = (h, w, y, coef, wr)

  impls = ["reference"] + [i for i in args.impls.split(",") if i]
  steps, temp, times = {}, {}, {}
  for impl in impls:
    steps[impl] = build_step(impl, args, args.block_v)
    compiled = steps[impl].lower(*inputs).compile()
    temp[impl] = compiled.memory_analysis().temp_size_in_bytes
    times[impl] = []
  timed = [i for i in impls if not (i == "reference" and args.skip_naive_time)]
  for impl in timed:  # warm-up (compile + first run)
    jax.block_until_ready(steps[impl](*inputs))
  for _ in range(args.repeats):
    for impl in timed:
      start = time.perf_counter()
      jax.block_until_ready(steps[impl](*inputs))
      times[impl].append(time.perf_counter() - start)

  device = jax.devices()[0]
  print(f"device: {device.platform} {device.device_kind} ({platform.processor() or platform.machine()},"
        f" {jax.local_device_count()} local devices), jax {jax.__version__}")
  print(f"T={args.t} D={args.d} V={args.v} dtype={args.dtype} entropy={args.entropy} "
        f"kl={args.kl} block_v={args.block_v or 'default'} repeats={args.repeats}")
  naive_t = statistics.median(times["reference"]) if times["reference"] else float("nan")
  print(f"{'impl':<10} {'temp GiB':>9} {'temp / naive':>13} {'fwd+bwd s':>10} {'time / naive':>13}")
  for impl in impls:
    t = statistics.median(times[impl]) if times[impl] else float("nan")
    name = "naive" if impl == "reference" else impl
    print(f"{name:<10} {temp[impl] / 2**30:>9.3f} {temp[impl] / temp['reference']:>13.4f} "
          f"{t:>10.4f} {t / naive_t:>13.3f}")


if __name__ == "__main__":
  main()

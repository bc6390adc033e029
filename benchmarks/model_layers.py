"""Scanned vs unrolled decoder layers: training forward+backward and KV-cache decode.

Model (the issue-12 RL workload): a random Llama, 4 layers, hidden 128, MLP 512,
vocab 512, 4 heads / 2 KV heads, fp32.

(a) train: ``jax.value_and_grad`` of the summed token log-prob
    ``Σ_{b,t} mask · log softmax(forward)[tokens_{t+1}]`` over 128 sequences x 80
    tokens, with ``ModelConfig.scan_layers`` True (``lax.scan`` over the stacked
    layers) vs False (unrolled layer loop).
(b) decode: greedy decode of ``--decode-rows`` rows x ``--new`` tokens after a
    16-token prompt, ``lax.fori_loop`` over steps, both variants calling the one
    `models.block_apply`: "unrolled" carries the model's `KVCache` (per-layer
    ``[B, KV, S, Dh]`` buffers, what `sampling.generate` uses); "scanned" carries a
    stacked ``[L, B, KV, S, Dh]`` cache through a ``lax.scan`` over layers that
    reads layer l's slice and writes it back each step.

Variants are timed interleaved (best of ``--repeats``), so machine load hits both alike.

    .venv/bin/python benchmarks/model_layers.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm import models

MODEL = dict(family="llama", vocab_size=512, hidden_size=128, intermediate_size=512, num_layers=4,
             num_heads=4, num_kv_heads=2, head_dim=32, max_position_embeddings=1024)


def _best(fn, repeats):
  fn()  # compile / warm-up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return min(times)


def train_step_fn(config):
  def loss(params, tokens, mask):
    logp = jax.nn.log_softmax(models.forward(config, params, tokens, mask))
    picked = jnp.take_along_axis(logp[:, :-1], tokens[:, 1:, None], -1)[..., 0]
    return jnp.sum(picked * mask[:, 1:])
  return jax.jit(jax.value_and_grad(loss))


@functools.partial(jax.jit, static_argnames=("config", "new", "scanned"))
def greedy_decode(params, prompt, *, config, new, scanned):
  c = config
  b, p = prompt.shape
  slots = p + new
  kv_mask = jnp.ones((b, slots), bool)
  cache = models.init_cache(c, b, slots)
  hidden, cache = models.forward_with_cache(c, params, prompt, jnp.broadcast_to(jnp.arange(p), (b, p)),
                                            kv_mask, cache, 0)
  w = models.unembed_weight(c, params)
  if scanned:
    cache = (jnp.stack(cache.k), jnp.stack(cache.v))
  else:
    params = {**params, "layers": models.split_layers(params["layers"])}

  def step(t, carry):
    h, cache, out = carry
    token = jnp.argmax(h @ w, axis=-1).astype(jnp.int32)  # [B]
    pos = jnp.full((b, 1), p + t, jnp.int32)
    if not scanned:
      h, cache = models.forward_with_cache(c, params, token[:, None], pos, kv_mask, cache, p + t)
      h = h[:, 0]
    else:
      x = jnp.take(params["embedding"], token[:, None], axis=0)
      cos, sin = models.transformer.rope_cos_sin(c, pos)
      mask = (jnp.arange(slots) <= p + t)[None, None, :] & kv_mask[:, None, :]

      def layer(carry, xs):
        x, k_all, v_all = carry
        lp, l = xs
        kv = (jax.lax.dynamic_index_in_dim(k_all, l, 0, keepdims=False),
              jax.lax.dynamic_index_in_dim(v_all, l, 0, keepdims=False))
        x, (k, v) = models.block_apply(c, lp, x, cos, sin, mask, kv, p + t)
        k_all = jax.lax.dynamic_update_index_in_dim(k_all, k, l, 0)
        v_all = jax.lax.dynamic_update_index_in_dim(v_all, v, l, 0)
        return (x, k_all, v_all), None

      (x, k_all, v_all), _ = jax.lax.scan(layer, (x, *cache),
                                          (params["layers"], jnp.arange(c.num_layers)))
      cache = (k_all, v_all)
      h = models.transformer.rms_norm(x, params["final_norm"]["scale"], c.rms_norm_eps)[:, 0]
    return h, cache, out.at[:, t].set(token)

  _, _, out = jax.lax.fori_loop(0, new, step, (hidden[:, -1], cache, jnp.zeros((b, new), jnp.int32)))
  return out


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--rows", type=int, default=128)
  parser.add_argument("--length", type=int, default=80)
  parser.add_argument("--decode-rows", type=int, default=128)
  parser.add_argument("--new", type=int, default=64)
  args = parser.parse_args()
  print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"jax {jax.__version__}, load {os.getloadavg()}")
  base = models.ModelConfig(**MODEL)
  params = models.init_params(base, jax.random.key(0))
  rng = np.random.default_rng(0)
  tokens = jnp.asarray(rng.integers(1, MODEL["vocab_size"], (args.rows, args.length)), jnp.int32)
  lengths = rng.integers(args.length // 2, args.length + 1, args.rows)
  mask = jnp.asarray(np.arange(args.length)[None] < lengths[:, None], jnp.int32)

  fns = {scan: train_step_fn(models.ModelConfig(**MODEL, scan_layers=scan)) for scan in (True, False)}
  for scan, fn in fns.items():
    start = time.perf_counter()
    jax.block_until_ready(fn(params, tokens, mask))
    print(f"train scan_layers={scan}: compile+first {time.perf_counter() - start:.2f} s")
  best = {scan: float("inf") for scan in fns}
  for _ in range(args.repeats):
    for scan, fn in fns.items():
      best[scan] = min(best[scan], _best(lambda: fn(params, tokens, mask), 1))
  for scan in fns:
    print(f"train fwd+bwd scan_layers={scan}: {best[scan] * 1e3:.1f} ms "
          f"({args.rows}x{args.length} tokens)")
  print(f"train unrolled/scan time ratio: {best[False] / best[True]:.2f}")

  prompt = jnp.asarray(rng.integers(1, MODEL["vocab_size"], (args.decode_rows, 16)), jnp.int32)
  outs, best = {}, {True: float("inf"), False: float("inf")}
  for scanned in (True, False):
    start = time.perf_counter()
    outs[scanned] = np.asarray(greedy_decode(params, prompt, config=base, new=args.new,
                                             scanned=scanned))
    print(f"decode scanned={scanned}: compile+first {time.perf_counter() - start:.2f} s")
  np.testing.assert_array_equal(outs[True], outs[False])
  for _ in range(args.repeats):
    for scanned in (True, False):
      best[scanned] = min(best[scanned], _best(
          lambda: greedy_decode(params, prompt, config=base, new=args.new, scanned=scanned), 1))
  n = args.decode_rows * args.new
  for scanned in (True, False):
    print(f"decode scanned-cache={scanned}: {best[scanned] * 1e3:.1f} ms, "
          f"{n / best[scanned]:.0f} tok/s ({args.decode_rows} rows x {args.new} new)")
  print(f"decode scanned/unrolled time ratio: {best[True] / best[False]:.2f}")


if __name__ == "__main__":
  main()

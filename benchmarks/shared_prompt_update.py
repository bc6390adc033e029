"""GRPO update time with and without ``make_rl_step(share_prompt_forward=True)``.

The `benchmarks/rl_step_vs_trl.py` model (Llama, 4 layers, hidden 128, MLP 512, vocab 512,
4 / 2 heads, fp32), 16 prompts x G = 8 completions, one jitted update (single_update,
PPO clip loss, token-mean) on a random batch whose groups share their prompt, at several
(prompt, completion) lengths. Prints the median of ``--steps`` timed updates after 2
warm-ups for the ordinary forward (every row runs its prompt) and the shared one (each
prompt's layers once per group), and their ratio. The update's token count goes from
``B·(P + N)`` to ``B/G·P + B·N``.

    .venv/bin/python benchmarks/shared_prompt_update.py [--steps 10] [--shapes 16x64,128x128]

Not a test: timings depend on the machine (its CPU model is printed).
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from jaxrl_llm.runs import host_memory  # noqa: E402

host_memory.keep_freed_host_memory()  # as experiments/rl.py does, before JAX starts

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from _machine import cpu_model  # noqa: E402  (benchmarks/ is on sys.path: run as a script)
from jaxrl_llm import models, training  # noqa: E402

MODEL = dict(family="llama", vocab_size=512, hidden_size=128, intermediate_size=512,
             num_layers=4, num_heads=4, num_kv_heads=2, head_dim=32, tie_word_embeddings=False)
PROMPTS, GROUP = 16, 8


def time_update(config, params, batch, share: bool, steps: int) -> float:
  opt = training.make_optimizer(1e-5, max_grad_norm=1.0)
  fns = training.make_rl_step(config, opt, group_size=GROUP, loss="ppo",
                              loss_kwargs={"clip_low": 0.2, "agg_mode": "token-mean"},
                              single_update=True, share_prompt_forward=share)
  state = training.init_train_state(jax.tree.map(jnp.copy, params), opt)
  prepared, _ = jax.jit(fns.prepare)(state, batch, None)
  update = jax.jit(fns.update, donate_argnums=0)
  times = []
  for i in range(steps + 2):
    t = time.perf_counter()
    state, m = update(state, prepared)
    jax.block_until_ready(m)
    if i >= 2:
      times.append(time.perf_counter() - t)
  training.raise_if_prompts_unshared({k: float(v) for k, v in m.items()})
  return float(np.median(times))


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--steps", type=int, default=10)
  ap.add_argument("--shapes", default="16x64,128x64,128x128",
                  help="comma-separated PROMPTxCOMPLETION lengths")
  args = ap.parse_args()
  config = models.ModelConfig(**MODEL)
  params = models.init_params(config, jax.random.key(0))
  print(f"shared_prompt_update  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
  print(f"CPU: {cpu_model()}; jax {jax.__version__}")
  print(f"{PROMPTS} prompts x G={GROUP}; update median of {args.steps} (s)")
  print(f"{'P x N':>10} {'tokens':>15} {'ordinary':>9} {'shared':>8} {'ratio':>6}")
  rng = np.random.default_rng(0)
  b = PROMPTS * GROUP
  for shape in args.shapes.split(","):
    p, n = (int(x) for x in shape.split("x"))
    batch = training.make_rollout_batch(
        np.repeat(rng.integers(2, 512, (PROMPTS, p)), GROUP, 0).astype(np.int32),
        np.ones((b, p), bool), rng.integers(2, 512, (b, n)).astype(np.int32),
        np.ones((b, n), bool), (-6 * rng.random((b, n))).astype(np.float32),
        rng.random(b).astype(np.float32), group_size=GROUP)
    ordinary = time_update(config, params, batch, False, args.steps)
    shared = time_update(config, params, batch, True, args.steps)
    tokens = f"{b * (p + n)}->{PROMPTS * p + b * n}"
    print(f"{shape:>10} {tokens:>15} {ordinary:9.3f} {shared:8.3f} {ordinary / shared:5.2f}x")


if __name__ == "__main__":
  main()

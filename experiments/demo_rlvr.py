"""The main job on a laptop CPU: SFT a tiny character-level Llama on 2-digit addition,
then GRPO from that checkpoint; prints held-out (greedy) accuracy before and after RL.

The SFT demonstrations are deliberately imperfect: by default half of them are
written ``"46=46"`` instead of ``"46"`` (right answer, wrong format), so the SFT
policy often echoes the equation and the strict exact-answer verifier rejects
it. GRPO with that verifier as the reward removes the habit, which is the kind
of gain RLVR gives quickly; learning new arithmetic from a 1-bit reward is far
slower on this budget (see the report / README numbers).

    python experiments/demo_rlvr.py --workdir=/tmp/jaxrl_llm/demo [--sft_steps=N --rl_steps=M]

Writes workdir/sft and workdir/grpo (metrics.jsonl, checkpoints, hf/, curves.png).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from configs import grpo_arithmetic, sft_arithmetic  # noqa: E402
from experiments import rl, sft  # noqa: E402


def demo_configs(workdir: str, sft_steps: int, rl_steps: int, eval_size: int, seed: int = 0,
                 echo_fraction: float = 0.5):
  s = sft_arithmetic.get_config()
  s.workdir = os.path.join(workdir, "sft")
  s.seed = seed
  s.steps = sft_steps
  s.eval_every = sft_steps
  s.eval_size = eval_size
  s.checkpoint_every = sft_steps
  s.echo_fraction = echo_fraction
  r = grpo_arithmetic.get_config()
  r.workdir = os.path.join(workdir, "grpo")
  r.seed = seed
  r.init_from = s.workdir
  r.steps = rl_steps
  r.eval_every = max(rl_steps // 3, 1)
  r.eval_size = eval_size
  r.checkpoint_every = rl_steps
  return s, r


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="/tmp/jaxrl_llm/demo")
  parser.add_argument("--sft_steps", type=int, default=sft_arithmetic.get_config().steps)
  parser.add_argument("--rl_steps", type=int, default=grpo_arithmetic.get_config().steps)
  parser.add_argument("--eval_size", type=int, default=200)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--echo_fraction", type=float, default=0.5,
                      help="share of SFT demonstrations written '46=46' instead of '46'")
  parser.add_argument("--progress_bar", type=int, default=1)
  args = parser.parse_args(argv)
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  s, r = demo_configs(args.workdir, args.sft_steps, args.rl_steps, args.eval_size, args.seed,
                      args.echo_fraction)
  s.progress_bar = r.progress_bar = bool(args.progress_bar)
  t0 = time.time()
  sft_summary = sft.run(s)
  t_sft = time.time() - t0
  rl_summary = rl.run(r)
  total = time.time() - t0
  before, after = rl_summary["initial_accuracy"], rl_summary["eval/accuracy"]
  print(f"held-out accuracy after SFT ({args.sft_steps} steps, {t_sft:.0f}s): {before:.3f}")
  print(f"held-out accuracy after GRPO ({args.rl_steps} steps): {after:.3f}  "
        f"(+{100 * (after - before):.1f} points; total wall time {total:.0f}s)")
  print(f"curves: {os.path.join(r.workdir, 'curves.png')}")
  return {"sft_accuracy": before, "rl_accuracy": after, "wall_s": total,
          "sft": sft_summary, "rl": rl_summary}


if __name__ == "__main__":
  main()

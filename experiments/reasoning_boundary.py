"""Reasoning boundary: pass@k for k = 1, 2, 4, ..., n of several checkpoints, with
bootstrap bands over problems (Yue et al. 2025, "Does Reinforcement Learning Really
Incentivize Reasoning Capacity in LLMs Beyond the Base Model?", arXiv 2504.13837).

For every checkpoint of ``c.checkpoints`` (``name=path,...``: HF directories or
experiment workdirs) the same ``c.num_problems`` held-out problems are sampled
``c.n`` times each at the configured temperature (``c.sample_chunk`` samples per
prompt per decode call, one prefill per prompt batch; the same key ``key(c.seed)``
for every checkpoint), scored by the task's verifier, and summarised as the unbiased
pass@k = mean_x [1 - C(n - c_x, k) / C(n, k)] with a percentile-bootstrap band over
problems (jaxrl_llm/evaluation/boundary.py). Writes ``output_dir/pass_at_k.json``
(per checkpoint: ks, pass_at_k, low, high, correct_counts, optional maj@k),
``output_dir/pass_at_k.png`` (pass@k vs k, log-x, bands shaded) and, with
``c.save_correct``, ``output_dir/correct.npz`` (the [P, n] correctness matrices).

    python experiments/reasoning_boundary.py --config=configs/reasoning_boundary.py \
        --config.checkpoints=sft=/tmp/sft,grpo=/tmp/grpo --config.n=256
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxrl_llm.evaluation import boundary  # noqa: E402
from jaxrl_llm.training import passk_eval, setup  # noqa: E402


def parse_checkpoints(spec: str) -> dict:
  """``"a=/p,b=/q"`` -> ``{"a": "/p", "b": "/q"}`` (names unique, paths non-empty)."""
  out = {}
  for item in [s.strip() for s in (spec or "").split(",") if s.strip()]:
    name, sep, path = item.partition("=")
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
      raise ValueError(f"checkpoints: {item!r} is not name=path")
    if name in out:
      raise ValueError(f"checkpoints: the name {name!r} appears twice")
    out[name] = path
  if not out:
    raise ValueError("checkpoints is empty: give name=path,name=path")
  return out


def validate(c):
  ckpts = parse_checkpoints(c.checkpoints)
  for name, path in ckpts.items():
    try:
      setup.resolve_hf_dir(path)
    except ValueError as e:
      raise ValueError(f"checkpoints[{name}]: {e}") from None
  if c.n < 1 or c.num_problems < 1 or c.prompts_per_batch < 1:
    raise ValueError(f"n, num_problems and prompts_per_batch must be >= 1, got {c.n}, "
                     f"{c.num_problems}, {c.prompts_per_batch}")
  if c.sample_chunk < 0 or (c.sample_chunk and c.n % c.sample_chunk):
    raise ValueError(f"sample_chunk={c.sample_chunk} must divide n={c.n} (0: all at once)")
  bad = [k for k in tuple(c.maj_ks or ()) if not 1 <= k <= c.n]
  if bad:
    raise ValueError(f"maj_ks {bad} must lie in [1, n={c.n}]")
  if tuple(c.maj_ks or ()):
    passk_eval.get_answer_extractor(c.task.reward)
  return ckpts


def evaluate_checkpoint(c, path: str, examples, *, desc: str = "sampling") -> dict:
  """The boundary curve (and maj@k) of one checkpoint, plus its ``[P, n]`` correctness."""
  config, params, tokenizer, _ = setup.build_model(c.model, path, 0)
  s = c.sampling
  maj_ks = tuple(c.maj_ks or ())
  t0 = time.time()
  sampled = passk_eval.sample_correctness(
      config, params, tokenizer, examples, setup.build_reward_fn(c.task), jax.random.key(c.seed),
      n=c.n, max_new_tokens=c.max_new_tokens, prompts_per_batch=c.prompts_per_batch,
      sample_chunk=c.sample_chunk or None, temperature=s.temperature,
      top_p=s.get("top_p", 0.0) or None, top_k=s.get("top_k", 0) or None,
      min_p=s.get("min_p", 0.0) or None, stop_strings=tuple(s.get("stop_strings", ()) or ()),
      stop_tokens=setup.stop_tokens(config, tokenizer), add_bos=c.task.add_bos,
      answer_fn=passk_eval.get_answer_extractor(c.task.reward) if maj_ks else None,
      progress=c.progress_bar, desc=desc)
  curve = boundary.pass_at_k_curve(sampled.correct, reps=c.bootstrap_reps,
                                   confidence=c.confidence, seed=c.bootstrap_seed)
  curve["path"] = path
  curve["sample_wall_s"] = time.time() - t0
  curve["mean_length"] = float(sampled.lengths.mean())
  if maj_ks:
    curve["maj_at_k"] = {str(k): float(np.mean(boundary.maj_at_k_per_problem(
        sampled.answers, sampled.correct, k, num_subsets=c.maj_subsets, seed=c.seed)))
        for k in maj_ks}
  return curve, sampled.correct


def run(c) -> dict:
  ckpts = validate(c)
  os.makedirs(c.output_dir, exist_ok=True)
  examples = setup.eval_examples(c.task, c.num_problems)
  if len(examples) < c.num_problems:
    raise ValueError(f"num_problems={c.num_problems} but the held-out split has "
                     f"{len(examples)} examples")
  curves, matrices = {}, {}
  for name, path in ckpts.items():
    curves[name], matrices[name] = evaluate_checkpoint(c, path, examples, desc=name)
    cv = curves[name]
    print(f"{name}: pass@1 {cv['pass_at_k'][0]:.3f} [{cv['low'][0]:.3f}, {cv['high'][0]:.3f}]"
          f"  pass@{c.n} {cv['pass_at_k'][-1]:.3f} [{cv['low'][-1]:.3f}, {cv['high'][-1]:.3f}]"
          f"  ({cv['sample_wall_s']:.0f} s)", flush=True)
  out = {"config": json.loads(c.to_json()), "num_problems": len(examples), "n": c.n,
         "checkpoints": curves}
  paths = {"json": os.path.join(c.output_dir, "pass_at_k.json"),
           "png": os.path.join(c.output_dir, "pass_at_k.png")}
  with open(paths["json"], "w") as f:
    json.dump(out, f, indent=1)
  if c.save_correct:
    paths["correct"] = os.path.join(c.output_dir, "correct.npz")
    np.savez_compressed(paths["correct"], **matrices)
  boundary.plot_pass_at_k(curves, paths["png"], title=c.title or
                          f"pass@k, n={c.n}, {len(examples)} problems "
                          f"({100 * c.confidence:.0f}% bootstrap bands)")
  out["paths"] = paths
  return out


def main(argv):
  del argv
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  out = run(_CONFIG.value)
  print(f"wrote {out['paths']}")


if __name__ == "__main__":
  from absl import app
  from ml_collections import config_flags
  _CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file")
  app.run(main)

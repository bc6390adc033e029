"""Quickstart demo: load (or build) a decoder LM and sample from it with the KV-cache sampler.

    python experiments/demo.py                      # tiny random Llama over a character vocabulary
    python experiments/demo.py --hf_dir=/path/to/Qwen2.5-0.5B --prompt="2+2="

Without --hf_dir the demo builds a tiny Llama, exports it as a Hugging Face
checkpoint (save_hf), reloads it (load_hf), and samples G completions per
prompt, printing text, per-token log-probs and throughput.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import jax
import numpy as np

from jaxrl_llm import models, sampling


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--hf_dir", default=None, help="local Hugging Face checkpoint directory")
  parser.add_argument("--prompt", action="append", default=None, help="prompt text (repeatable)")
  parser.add_argument("--num_samples", type=int, default=4)
  parser.add_argument("--max_new_tokens", type=int, default=24)
  parser.add_argument("--temperature", type=float, default=1.0)
  parser.add_argument("--top_p", type=float, default=0.95)
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  prompts = args.prompt or ["12+34=", "7*8=", "(1+2)*3="]

  if args.hf_dir:
    config, params = models.load_hf(args.hf_dir)
    tokenizer = models.HFTokenizer(args.hf_dir)
    stop = config.eos_token_ids
  else:
    tokenizer = models.CharTokenizer()
    config = models.get_preset("tiny-llama", vocab_size=tokenizer.vocab_size,
                               bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id,
                               pad_token_id=tokenizer.pad_id)
    params = models.init_params(config, jax.random.key(args.seed))
    export = os.path.join(tempfile.mkdtemp(prefix="jaxrl_llm_demo_"), "tiny-llama")
    models.save_hf(export, config, params)
    config, params = models.load_hf(export)
    print(f"built a random {config.family} with {config.num_params():,} parameters, "
          f"exported to and reloaded from {export}")
    stop = (tokenizer.eos_id,)

  tokens, mask = tokenizer.batch_encode(prompts, add_bos=tokenizer.bos_id is not None)
  kwargs = dict(max_new_tokens=args.max_new_tokens, num_samples=args.num_samples,
                temperature=args.temperature, top_p=args.top_p, stop_tokens=stop,
                pad_token_id=tokenizer.pad_id)
  start = time.perf_counter()
  out = sampling.generate(config, params, tokens, mask, jax.random.key(args.seed), **kwargs)
  jax.block_until_ready(out.tokens)
  first = time.perf_counter() - start
  start = time.perf_counter()
  out = sampling.generate(config, params, tokens, mask, jax.random.key(args.seed + 1), **kwargs)
  jax.block_until_ready(out.tokens)
  second = time.perf_counter() - start

  texts = tokenizer.batch_decode(np.asarray(out.tokens))
  logprobs = np.asarray(out.logprobs)
  lengths = np.asarray(out.lengths)
  for r, text in enumerate(texts):
    p = int(out.prompt_index[r])
    mean_lp = logprobs[r, :lengths[r]].mean() if lengths[r] else float("nan")
    print(f"[{p}] {prompts[p]!r} -> {text!r}  (tokens={lengths[r]}, mean log p={mean_lp:.3f})")
  n_tokens = int(lengths.sum())
  print(f"first call (with compilation) {first:.2f}s; second call {second:.3f}s = "
        f"{n_tokens / second:,.0f} tokens/s on {jax.devices()[0].platform}")


if __name__ == "__main__":
  main()

"""TRL side of ``benchmarks/rl_step_vs_trl.py`` (runs inside ``benchmarks/.venv-trl``).

Trains TRL's ``GRPOTrainer`` on the checkpoint, tokenizer and prompts that the
driver wrote, one optimiser step per generation batch (``num_iterations=1``,
``beta=0``, ``generation_batch_size`` = the train batch), and times each step
with public hooks only:

  * a ``TrainerCallback``: ``on_step_begin`` -> ``on_pre_optimizer_step`` ->
    ``on_optimizer_step`` -> ``on_step_end``;
  * the reward function, which TRL calls right after generating the batch's
    completions.

So ``generate`` = step begin -> reward call (tokenising + ``generate``),
``fwd+bwd`` = reward call -> pre-optimizer (advantages, any log-prob forward,
the loss forward and backward, gradient clipping), ``optimizer`` = the AdamW step.
Writes one JSON line per step to ``--out``.

    benchmarks/.venv-trl/bin/python benchmarks/_trl_grpo_side.py --workdir DIR --steps N --out F
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--workdir", required=True, help="holds hf/ (model + tokenizer) and prompts.json")
  ap.add_argument("--steps", type=int, required=True, help="optimiser steps, warm-up included")
  ap.add_argument("--out", required=True)
  ap.add_argument("--threads", type=int, default=0)
  a = ap.parse_args()

  import torch
  from datasets import Dataset
  from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast, TrainerCallback
  from trl import GRPOConfig, GRPOTrainer

  if a.threads:
    torch.set_num_threads(a.threads)
  with open(os.path.join(a.workdir, "prompts.json")) as f:
    spec = json.load(f)
  hf_dir = os.path.join(a.workdir, "hf")
  tokenizer = PreTrainedTokenizerFast(
      tokenizer_file=os.path.join(hf_dir, "tokenizer.json"), pad_token=spec["pad_token"],
      eos_token=spec["eos_token"], padding_side="left")
  model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
  rows = spec["num_prompts"] * spec["group_size"]
  marks = {}

  def reward(completions, **kwargs):
    marks["reward"] = time.perf_counter()
    return [c.count(spec["reward_word"]) / spec["new_tokens"] for c in completions]

  class Timer(TrainerCallback):
    def __init__(self):
      self.records = []

    def on_step_begin(self, args, state, control, **kwargs):
      marks.clear()
      marks["begin"] = time.perf_counter()

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
      marks["pre_opt"] = time.perf_counter()

    def on_optimizer_step(self, args, state, control, **kwargs):
      marks["opt"] = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
      end = time.perf_counter()
      rec = {"step": state.global_step, "total": end - marks["begin"]}
      if "reward" in marks:
        rec["generate"] = marks["reward"] - marks["begin"]
        if "pre_opt" in marks:
          rec["fwd_bwd"] = marks["pre_opt"] - marks["reward"]
      if "pre_opt" in marks and "opt" in marks:
        rec["optimizer"] = marks["opt"] - marks["pre_opt"]
      self.records.append(rec)
      with open(a.out, "a") as f:
        f.write(json.dumps(rec) + "\n")

  cfg = GRPOConfig(
      output_dir=os.path.join(a.workdir, "trl_out"), use_cpu=True, bf16=False, fp16=False,
      per_device_train_batch_size=rows, gradient_accumulation_steps=1,
      num_generations=spec["group_size"], generation_batch_size=rows, num_iterations=1,
      beta=0.0, learning_rate=spec["learning_rate"], lr_scheduler_type="constant",
      weight_decay=0.0, max_grad_norm=1.0, optim="adamw_torch",
      max_completion_length=spec["new_tokens"], temperature=1.0, top_p=1.0, top_k=0,
      generation_kwargs={"min_new_tokens": spec["new_tokens"]},
      gradient_checkpointing=False, loss_type="dapo", max_steps=a.steps, logging_steps=1,
      report_to="none", save_strategy="no", shuffle_dataset=False, disable_dropout=True,
      dataloader_num_workers=0, seed=0)
  dataset = Dataset.from_dict({"prompt": spec["prompts"]})
  trainer = GRPOTrainer(model=model, reward_funcs=reward, args=cfg, train_dataset=dataset,
                        processing_class=tokenizer, callbacks=[Timer()])
  trainer.train()


if __name__ == "__main__":
  main()

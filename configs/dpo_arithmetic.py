"""DPO (Rafailov et al. 2023, arXiv 2305.18290) on 2-digit addition preference pairs
(chosen: the correct answer, rejected: a near miss, generated locally), from the SFT
checkpoint of configs/sft_arithmetic.py. ``preference_config`` is shared by the other
preference recipes (simpo/orpo/kto_arithmetic.py) and experiments/inpo.py's config."""

from ml_collections import ConfigDict

from configs import sft_arithmetic


def preference_config(loss: str, loss_kwargs: dict, workdir: str) -> ConfigDict:
  base = sft_arithmetic.get_config()
  c = ConfigDict()
  c.workdir = workdir
  c.seed = 0
  c.init_from = "/tmp/jaxrl_llm/sft_arithmetic"  # SFT workdir (its hf/) or an HF directory
  c.model = base.model
  # The task gives the held-out prompts and verifier of the evaluation (and the problems
  # of the generated pairs).
  c.task = base.task
  # data.path: a local JSONL of {"prompt", "chosen", "rejected"} (or, for KTO,
  # {"prompt", "completion", "label"}); empty: num_pairs wrong-answer pairs of the
  # task's train split are written to workdir/preference_pairs_*.jsonl and read from there.
  c.data = ConfigDict({"path": "", "format": "auto", "num_pairs": 4096, "max_offset": 10})
  # preference.loss: a losses.PREFERENCE_LOSSES name (dpo, ipo, robust, hinge, simpo,
  # orpo, kto, inpo); loss_kwargs: its keyword options.
  c.preference = ConfigDict({"loss": loss, "loss_kwargs": ConfigDict(loss_kwargs)})
  c.steps = 200
  c.batch_size = 32  # pairs (KTO: labelled responses)
  c.num_micro_batches = 1
  c.mesh = ()  # e.g. (data, fsdp, tensor) = (1, -1, 1); empty: one device
  c.max_length = 16  # BOS + prompt + response + EOS
  c.max_new_tokens = 8  # evaluation
  c.lora = sft_arithmetic.lora_block()
  c.optim = ConfigDict({"learning_rate": 1e-4, "warmup_steps": 10, "end_factor": 0.1,
                        "weight_decay": 0.0, "max_grad_norm": 1.0})
  c.eval_every = 50
  c.eval_at_start = True
  c.eval_size = 200
  c.checkpoint_every = 50
  c.keep_checkpoints = 2
  c.resume = False
  c.overwrite = False  # a used workdir (not resumed): True deletes its run, False refuses
  c.async_checkpointing = True
  c.export_hf = True
  c.tensorboard = True
  c.wandb = False
  c.wandb_project = "jaxrl_llm"
  c.wandb_mode = ""
  c.progress_bar = True
  c.distributed = False
  # glibc keeps XLA:CPU's freed per-call buffers (jaxrl_llm.runs.host_memory).
  c.keep_freed_host_memory = True
  # > 1: the CPU as that many JAX devices (jaxrl_llm.runs.cpu_devices), for a mesh of
  # that many data shards, e.g. --config.cpu_devices=2 --config.mesh='(2, 1, 1)'; 0 = one.
  c.cpu_devices = 0
  return c


def get_config():
  return preference_config("dpo", {"beta": 0.1}, "/tmp/jaxrl_llm/dpo_arithmetic")

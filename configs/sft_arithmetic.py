"""SFT of a tiny character-level Llama on 2-digit addition (reference answers)."""

from ml_collections import ConfigDict


def lora_block() -> ConfigDict:
  """LoRA (jaxrl_llm.models.lora): rank 0 = off (full fine-tuning); alpha/rank scales
  the update; targets from q, k, v, o, gate, up, down; rollouts sample from merged
  weights unless merged_sampling=False."""
  return ConfigDict({"rank": 0, "alpha": 16.0, "targets": "q,k,v,o,gate,up,down",
                     "merged_sampling": True})


def get_config():
  c = ConfigDict()
  c.workdir = "/tmp/jaxrl_llm/sft_arithmetic"
  c.seed = 0
  c.init_from = ""  # HF dir or workdir with hf/; empty: random init from model.preset
  c.model = ConfigDict({"preset": "tiny-llama", "hf_dir": "", "overrides": ConfigDict({
      "hidden_size": 64, "intermediate_size": 128, "num_layers": 2, "num_heads": 4,
      "num_kv_heads": 2, "head_dim": 16})})
  c.task = ConfigDict({"name": "arithmetic", "digits": 2, "min_digits": 1, "operators": "+",
                       "test_fraction": 0.1, "reward": "arithmetic", "add_bos": True,
                       "num_numbers": 3, "max_number": 10, "max_target": 100, "path": "",
                       "test_path": "", "prompt_template": "{question}"})
  c.steps = 1200
  c.batch_size = 64
  c.num_micro_batches = 1
  c.mesh = ()  # e.g. (data, fsdp, tensor) = (1, -1, 1); empty: one device
  c.max_length = 16
  c.max_new_tokens = 8
  # Fraction of demonstrations written as "46=46" instead of "46" (imperfect
  # demonstrations whose format the strict verifier rejects; 0 = clean SFT data).
  c.echo_fraction = 0.0
  c.lora = lora_block()
  c.optim = ConfigDict({"learning_rate": 5e-3, "warmup_steps": 20, "end_factor": 0.1,
                        "weight_decay": 0.0, "max_grad_norm": 1.0})
  c.eval_every = 200
  c.eval_size = 200
  c.checkpoint_every = 200
  c.keep_checkpoints = 2
  c.resume = False
  c.overwrite = False  # a used workdir (not resumed): True deletes its run, False refuses
  c.async_checkpointing = True  # saves overlap training (from a copy of the state)
  c.export_hf = True
  c.tensorboard = True
  c.wandb = False  # also log to a Weights & Biases run (needs `pip install wandb`)
  c.wandb_project = "jaxrl_llm"
  c.wandb_mode = ""  # "": W&B's default (WANDB_MODE); online | offline | disabled
  c.progress_bar = True
  # Multi-process run (TPU pod / several GPU hosts; docs/launch.md): jax.distributed
  # is initialised before any device use (also when JAX_COORDINATOR_ADDRESS is set).
  c.distributed = False
  # glibc keeps XLA:CPU's freed per-call buffers (jaxrl_llm.runs.host_memory).
  c.keep_freed_host_memory = True
  # > 1: the CPU as that many JAX devices (jaxrl_llm.runs.cpu_devices), for a mesh of
  # that many data shards, e.g. --config.cpu_devices=2 --config.mesh='(2, 1, 1)'; 0 = one.
  c.cpu_devices = 0
  return c

"""GRPO (Shao et al. 2024) on 2-digit addition, from the SFT checkpoint of configs/sft_arithmetic.py."""

from ml_collections import ConfigDict

from configs import sft_arithmetic


def get_config():
  base = sft_arithmetic.get_config()
  c = ConfigDict()
  c.workdir = "/tmp/jaxrl_llm/grpo_arithmetic"
  c.seed = 0
  c.init_from = "/tmp/jaxrl_llm/sft_arithmetic"  # SFT workdir (its hf/) or an HF directory
  c.model = base.model
  c.task = base.task
  c.mesh = ()  # e.g. (data, fsdp, tensor) = (1, -1, 1); empty: one device
  # Where sampling runs, when not on c.mesh (empty: on c.mesh). On a CPU split in 2
  # devices, --config.cpu_devices=2 --config.rollout_mesh='(2, 1, 1)' decodes on both and
  # trains on one (training.setup.rollout_placement).
  c.rollout_mesh = ()
  # top_k / top_p / min_p: 0 = off; stop_strings end a completion at the token completing one.
  c.sampling = ConfigDict({"max_new_tokens": 8, "temperature": 1.0, "top_p": 0.0, "top_k": 0,
                           "min_p": 0.0, "stop_strings": ()})
  c.rl = ConfigDict({
      "loss": "ppo", "loss_kwargs": ConfigDict({"clip_low": 0.2, "agg_mode": "token-mean"}),
      "advantage": "grpo", "advantage_kwargs": ConfigDict(),
      "kl": "k3", "kl_coef": 0.0, "entropy_coef": 0.0,
      "group_size": 16, "batch_size": 512, "ppo_epochs": 1, "num_minibatches": 1,
      "num_micro_batches": 1, "dynamic_sampling": False, "max_sampling_rounds": 3,
      "tis_cap": 0.0, "tis_level": "token", "tis_mode": "truncate",
      "value_coef": 0.5, "value_clip": 0.2, "value_trunk_grad": True, "gamma": 1.0,
      "lam": 1.0,
      # Registered hooks (losses.get_reward_shaping, training.rollout.PROMPT_TRANSFORMS).
      "reward_shaping": "none", "reward_shaping_kwargs": ConfigDict(),
      "prompt_transform": "identity", "prompt_transform_kwargs": ConfigDict(),
      # training.rollout.ROLLOUT_METHODS: what is sampled (hinted rerolls, prefixes, prompt
      # filters, curricula); 'standard' = collect_rollouts.
      "rollout_method": "standard", "rollout_method_kwargs": ConfigDict(),
      # Weight of the policy loss (0: entropy / KL terms only, 1-shot RLVR's ablation).
      "pg_coef": 1.0,
      # training.rollout.BATCH_AUGMENTERS: rows or extras added between rollout and prepare.
      "batch_augment": "none", "batch_augment_kwargs": ConfigDict(),
      # Run each prompt's layers once for its G rows in the trainer's forwards ('auto': where
      # the groups stay whole: standard rollouts, no augmenter, one update or whole-group
      # minibatches; 'true' / 'false' force it; experiments/rl.share_prompt_forward).
      "share_prompt_forward": "auto",
      # > 0: sample each group C completions per prompt at a time (BroRL; same samples
      # for every C dividing group_size); 0: one call.
      "sample_chunk": 0})
  c.lora = sft_arithmetic.lora_block()
  c.optim = ConfigDict({"learning_rate": 5e-4, "warmup_steps": 10, "end_factor": 1.0,
                        "weight_decay": 0.0, "max_grad_norm": 1.0})
  c.steps = 100
  c.eval_every = 25
  c.eval_at_start = True
  c.eval_size = 200
  # Sampled evaluation at every eval: eval/pass@k (unbiased), eval/maj@k from n samples
  # per held-out problem (first num_problems of the eval set; 0 = all); n = 0: off.
  c.eval = ConfigDict({"n": 0, "pass_ks": (1, 4, 16), "maj_ks": (), "num_problems": 0,
                       "sample_chunk": 0, "prompts_per_batch": 16, "maj_subsets": 16,
                       "seed": 0})
  c.checkpoint_every = 25
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
  # > 1: the CPU as that many JAX devices (jaxrl_llm.runs.cpu_devices), for a mesh or
  # rollout mesh of that many data shards (see c.rollout_mesh); 0 = one.
  c.cpu_devices = 0
  return c

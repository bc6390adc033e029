"""Shared defaults of the offline-RL experiment configs (experiments/offline.py).

Loaded by file path from the per-recipe files (iql_hopper.py, ...);
on its own, `--config=configs/offline/base.py` is a synthetic-data smoke run.
"""


import ml_collections

# D4RL reference returns (hopper, from D4RL's infos.py) for normalised scores
# 100·(R − R_min)/(R_max − R_min). Gymnasium v5 physics differ from D4RL's v2,
# so locally generated datasets should also report their own reference returns.
D4RL_REF = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
}


def get_config():
  config = ml_collections.ConfigDict()
  config.agent_name = "iql"
  config.agent = ml_collections.ConfigDict()  # filled by the recipe
  config.env_name = ""  # gymnasium id for evaluation, e.g. "Hopper-v5"
  # Dataset: a local Minari id, a D4RL-format .hdf5 or an OGBench .npz path.
  config.dataset_path = ""
  config.dataset_format = "synthetic"  # auto | minari | d4rl_hdf5 | ogbench_npz | synthetic
  config.minari_datasets_path = ""  # default: $MINARI_DATASETS_PATH
  config.synthetic = ml_collections.ConfigDict(dict(
      num_transitions=2000, obs_dim=5, act_dim=2, episode_length=50))
  config.reward_scaling = "none"  # locomotion | antmaze | none
  config.clip_actions = True
  # RIQL's corruption. Adversarial observation/action/dynamics corruption attacks a
  # critic (`attack_agent`, trained here on the clean data for `attack_steps`) with
  # `attack_grad_steps` projected steps of size `attack_step_size`·scale.
  config.corruption = ml_collections.ConfigDict(dict(
      mode="random", fields=(), rate=0.3, scale=1.0, seed=0,
      attack_agent="iql", attack_steps=50_000, attack_hidden_dims=(256, 256),
      attack_grad_steps=100, attack_step_size=0.01))
  config.ref_min_score, config.ref_max_score = D4RL_REF["hopper"]
  config.seed = 42
  config.batch_size = 256
  config.max_steps = 1_000_000
  config.steps_per_call = 1000  # gradient steps per update_n call
  config.log_interval = 1000
  config.eval_interval = 100_000
  config.eval_episodes = 10
  config.eval_seed = 42  # episode i resets with eval_seed + i (same episodes at every eval)
  config.checkpoint_interval = 100_000
  config.checkpoints_to_keep = 2
  # A used workdir (checkpoints or metric lines) is refused unless resumed or overwritten,
  # as in the SFT/RL loops (jaxrl_llm.runs.workdir).
  config.resume = False  # True: continue from the latest checkpoint in <workdir>/checkpoints
  config.overwrite = False  # True (not resuming): delete the previous run and start fresh
  config.progress_bar = True
  config.tensorboard = True  # also TensorBoard events in <workdir>/tb (tensorboardX)
  config.wandb = False  # also log to a Weights & Biases run (needs `pip install wandb`)
  config.wandb_project = "jaxrl_llm"
  config.wandb_mode = ""  # "": W&B's default (WANDB_MODE); online | offline | disabled
  config.workdir = "/tmp/jaxrl_llm_offline"
  return config



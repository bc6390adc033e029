"""Local generation of offline datasets: a JAX SAC trainer and D4RL-style dataset builders."""

# `make_datasets` (the CLI module: collect_episodes, buffer_to_episodes, select_checkpoints,
# make_datasets) is not imported here, so `python -m` runs it without a double import.
from jaxrl_llm.offline.generation.sac import (ReplayBuffer, SACConfig, SACState, sac_act, sac_init,
                                              sac_update, sac_update_n, sample_tanh_gaussian,
                                              train_sac)

"""Local generation of offline datasets: a JAX SAC trainer and D4RL-style dataset builders."""

# `make_datasets` stays a module (the CLI); import its function as
# `from jaxrl_llm.offline.generation.make_datasets import make_datasets`.
from jaxrl_llm.offline.generation.make_datasets import (DATASET_KINDS, buffer_to_episodes,
                                                        collect_episodes, select_checkpoints)
from jaxrl_llm.offline.generation.sac import (ReplayBuffer, SACConfig, SACState, sac_act, sac_init,
                                              sac_update, sac_update_n, sample_tanh_gaussian,
                                              train_sac)

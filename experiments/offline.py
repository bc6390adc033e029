"""Offline RL training entry point (BC / IQL / RIQL / f-DVL / ReCOIL on one dataset).

  python experiments/offline.py --config=configs/offline/iql_hopper.py \
      --config.workdir=/tmp/iql_hopper --config.max_steps=100000

The recipes are configs/offline/*.py (`agent_name` picks the agent; the
`agent` block overrides its `get_config()`). The loop itself is library code,
`jaxrl_llm.offline.train.train(config)`:

1. load the dataset (`dataset_format`: a local Minari id, a D4RL-format HDF5,
   an OGBench npz or a synthetic smoke-test set; `jaxrl_llm.offline.datasets`);
2. optionally corrupt it (RIQL's random or adversarial corruption; adversarial
   observation/action/dynamics corruption first trains the critic it attacks),
   clip actions and scale rewards (`jaxrl_llm.offline.prepare`);
3. train with `update_n` chunks of `steps_per_call` updates on device-sampled
   batches, evaluating in `env_name` every `eval_interval` steps.

Writes to `--config.workdir`: `metrics.jsonl` (training and evaluation lines;
TensorBoard events under `tb/` with config.tensorboard, a W&B run with
config.wandb), Orbax checkpoints under `checkpoints/`, `config.json`,
`scores.json`, `curves.png`, and a final score table on stdout.

A workdir that already holds a run is refused, like the SFT/RL loops'
(`jaxrl_llm.runs.workdir`): `--config.resume=True` continues it from the latest
checkpoint (same parameters, optimiser state and batch stream as an
uninterrupted run; a saved config that differs in what is trained is refused),
`--config.overwrite=True` deletes it and starts fresh.
"""

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=False)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # Orbax logs every save at INFO
  from jaxrl_llm.offline import train

  train.train(_CONFIG.value)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)

"""How much random vs adversarial corruption moves the attacked critic (docs/offline.md).

  MINARI_DATASETS_PATH=/tmp/jaxrl_datasets \
    python experiments/offline_attack_check.py --config=configs/offline/iql_hopper.py \
      --config.corruption.attack_steps=20000

Trains the attack critic on the clean data (as `jaxrl_llm.offline.prepare` does for
adversarial corruption), corrupts each of observations, actions and dynamics at
`corruption.rate`/`corruption.scale` in both modes with the same rows, and prints
the critic's mean Q on those rows: Q(s, a) for observations/actions, Q(s', pi(s'))
for dynamics. Writes `<workdir>/attack_check.json`.
"""

from __future__ import annotations

import json
import os
import time

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.",
                                          lock_config=False)


def main(argv):
  del argv
  import jax
  import numpy as np

  from jaxrl_llm.offline import corruption
  from jaxrl_llm.offline import prepare

  config = _CONFIG.value
  clean = prepare.load_dataset(config)
  q_fn, policy_fn, info = prepare.train_attack_critic(config, clean, config.progress_bar)
  print(f"attack critic: {info}")
  key = jax.random.key(config.corruption.seed)
  result = {"attack": info}
  for field in ("observations", "actions", "dynamics"):
    row = {}
    for mode in ("random", "adversarial"):
      start = time.perf_counter()
      attack = dict(q_fn=q_fn, policy_fn=policy_fn) if mode == "adversarial" else {}
      data, mask = corruption.corrupt(key, clean, field, mode, config.corruption.rate,
                                      config.corruption.scale,
                                      steps=config.corruption.attack_grad_steps,
                                      step_size=config.corruption.attack_step_size, **attack)
      rows = np.asarray(mask)

      def mean_q(d):
        if field == "dynamics":
          s = d.next_observations[rows]
          return float(np.mean(q_fn(s, policy_fn(s))))
        return float(np.mean(q_fn(d.observations[rows], d.actions[rows])))

      row["clean"], row[mode] = mean_q(clean), mean_q(data)
      row[f"{mode}_seconds"] = time.perf_counter() - start
    result[field] = row
    print(f"{field:>13}: clean {row['clean']:.1f}  random {row['random']:.1f}  "
          f"adversarial {row['adversarial']:.1f}")
  os.makedirs(config.workdir, exist_ok=True)
  with open(os.path.join(config.workdir, "attack_check.json"), "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)


if __name__ == "__main__":
  flags.mark_flags_as_required(["config"])
  app.run(main)

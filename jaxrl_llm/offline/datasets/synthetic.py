"""A synthetic smoke-test dataset: episodes of a random linear system.

Only for smoke tests of training loops: no environment matches it, so it has no
evaluation and no reference scores.
"""

from __future__ import annotations

import numpy as np

from jaxrl_llm.offline.datasets.minari import transitions_from_episodes
from jaxrl_llm.offline.types import Transitions


def synthetic_dataset(spec, seed: int) -> Transitions:
  """Episodes of `s' = s A + a B + 0.01 ε` under the behaviour policy `a = clip(tanh(s P) + 0.3 ε)`.

  `spec` has `num_transitions`, `obs_dim`, `act_dim` and `episode_length`
  (e.g. `config.synthetic` of configs/offline/base.py); the data hold
  `max(1, num_transitions // episode_length)` episodes, each truncated after
  `episode_length` steps, with reward `-‖s'‖²`. A (`0.9 I` plus N(0, 0.05²)
  noise), B, P (N(0, 0.3²)) and the start states (N(0, I)) are drawn from
  `numpy.random.default_rng(seed)`.
  """
  rng = np.random.default_rng(seed)
  obs_dim, act_dim, length = spec.obs_dim, spec.act_dim, spec.episode_length
  for field in ("num_transitions", "obs_dim", "act_dim", "episode_length"):
    if int(getattr(spec, field)) < 1:
      raise ValueError(f"synthetic dataset: `{field}` must be >= 1, got {getattr(spec, field)}")
  a_mat = np.eye(obs_dim) * 0.9 + rng.normal(size=(obs_dim, obs_dim)) * 0.05
  b_mat = rng.normal(size=(act_dim, obs_dim)) * 0.3
  policy = rng.normal(size=(obs_dim, act_dim)) * 0.3
  episodes = []
  for _ in range(max(1, spec.num_transitions // length)):
    s = rng.normal(size=obs_dim)
    obs, acts, rews = [s], [], []
    for _ in range(length):
      a = np.clip(np.tanh(s @ policy) + rng.normal(size=act_dim) * 0.3, -1, 1)
      s = s @ a_mat + a @ b_mat + rng.normal(size=obs_dim) * 0.01
      acts.append(a)
      rews.append(-float(np.sum(s**2)))
      obs.append(s)
    terminations = np.zeros(length, bool)
    truncations = np.zeros(length, bool)
    truncations[-1] = True
    episodes.append(dict(observations=np.asarray(obs, np.float32),
                         actions=np.asarray(acts, np.float32),
                         rewards=np.asarray(rews, np.float32),
                         terminations=terminations, truncations=truncations))
  return transitions_from_episodes(episodes, source="synthetic dataset")

"""The small random `Transitions` batch that the offline-agent tests share."""

import jax.numpy as jnp
import numpy as np

from jaxrl_llm.offline.types import Transitions

OBS_DIM, ACT_DIM, BATCH = 4, 2, 16
HIDDEN = (8, 8)


def make_batch(seed, n=BATCH):
  """Random observations/actions/rewards with terminals every 5th row, timeouts every 7th."""
  rng = np.random.default_rng(seed)
  terminals = np.zeros(n, np.float32)
  terminals[::5] = 1.0
  timeouts = np.zeros(n, np.float32)
  timeouts[3::7] = 1.0
  return Transitions(
      observations=jnp.asarray(rng.normal(size=(n, OBS_DIM)) * 2 + 1, jnp.float32),
      actions=jnp.asarray(rng.uniform(-0.9, 0.9, (n, ACT_DIM)), jnp.float32),
      rewards=jnp.asarray(rng.normal(size=n) * 3, jnp.float32),
      next_observations=jnp.asarray(rng.normal(size=(n, OBS_DIM)), jnp.float32),
      terminals=jnp.asarray(terminals), timeouts=jnp.asarray(timeouts))

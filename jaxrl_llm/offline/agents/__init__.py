"""Offline RL agents behind one functional API (DESIGN.md "Offline agents").

  state = agent.init(key, example_batch, config)
  state, metrics = agent.update(state, batch)
  state, metrics = agent.update_n(state, batches)   # lax.scan over axis 0
  actions = agent.act(state, observations, key, deterministic=True)

`get(name)` returns the agent module; each module also has `get_config()`.
"""

from __future__ import annotations

import types

from jaxrl_llm.offline.agents import bc
from jaxrl_llm.offline.agents import iql
from jaxrl_llm.offline.agents import losses
from jaxrl_llm.offline.agents import riql
from jaxrl_llm.offline.agents.losses import (awr_weights, ensemble_quantile,
                                             expectile_loss, expectile_weight,
                                             gaussian_log_prob, huber_delta_from_sigma,
                                             huber_loss, polyak_update, td_target)

_REGISTRY = {"bc": bc, "iql": iql, "riql": riql}


def names() -> tuple[str, ...]:
  """Names accepted by `get`."""
  return tuple(sorted(_REGISTRY))


def get(name: str) -> types.ModuleType:
  """The agent module registered under `name` (case-insensitive)."""
  key = str(name).lower()
  if key not in _REGISTRY:
    raise ValueError(f"unknown agent {name!r}; known agents: {', '.join(names())}")
  return _REGISTRY[key]


__all__ = [
    "awr_weights", "bc", "ensemble_quantile", "expectile_loss", "expectile_weight",
    "gaussian_log_prob", "get", "huber_delta_from_sigma", "huber_loss", "iql",
    "losses", "names", "polyak_update", "riql", "td_target",
]

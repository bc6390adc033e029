"""Offline RL agents behind one functional API (DESIGN.md "Offline agents").

  state = agent.init(key, example_batch, config)
  state, metrics = agent.update(state, batch)
  state, metrics = agent.update_n(state, batches)   # lax.scan over axis 0
  actions = agent.act(state, observations, key, deterministic=True)

`get(name)` returns the agent module; each module also has `get_config()`.
Every agent is built by `api.make_agent` (agents/api.py). To add one, write
its module and add one line to `_REGISTRY`.
"""

from __future__ import annotations

import types

from jaxrl_llm.offline.agents import api
from jaxrl_llm.offline.agents import bc
from jaxrl_llm.offline.agents import fdvl
from jaxrl_llm.offline.agents import iql
from jaxrl_llm.offline.agents import losses
from jaxrl_llm.offline.agents import recoil
from jaxrl_llm.offline.agents import riql
from jaxrl_llm.offline.agents import td_jepa
from jaxrl_llm.offline.agents.losses import (awr_weights, chi_square_conjugate,
                                             dual_value_loss, ensemble_quantile,
                                             expectile_loss, expectile_weight,
                                             gaussian_log_prob, gumbel_loss,
                                             huber_delta_from_sigma, huber_loss,
                                             huber_loss_standard, polyak_update,
                                             td_target, total_variation_conjugate)

# name -> agent module (lower case). One line per agent.
_REGISTRY = {
    "bc": bc,
    "iql": iql,
    "riql": riql,
    "fdvl": fdvl,
    "recoil": recoil,
    "td_jepa": td_jepa,
}


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
    "api", "awr_weights", "bc", "chi_square_conjugate", "dual_value_loss",
    "ensemble_quantile", "expectile_loss", "expectile_weight", "fdvl",
    "gaussian_log_prob", "get", "gumbel_loss", "huber_delta_from_sigma",
    "huber_loss", "huber_loss_standard", "iql", "losses", "names",
    "polyak_update", "recoil", "riql", "td_jepa", "td_target",
    "total_variation_conjugate",
]

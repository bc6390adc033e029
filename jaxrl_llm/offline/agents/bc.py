"""Behaviour cloning (Gaussian or deterministic actor).

Gaussian:      max_θ E_{(s,a)~D}[log π_θ(a|s)]
Deterministic: min_θ E_{(s,a)~D}[||π_θ(s) − a||²]

The baseline of the IQL (Kostrikov et al., ICLR 2022) and RIQL (Yang et al.,
ICLR 2024) papers; the Gaussian head is IQL's actor, so BC here is IQL's
policy-extraction step with all weights equal to 1.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from jaxrl_llm.offline.agents import api
from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.types import Transitions


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.actor_type = "gaussian"  # or "deterministic"
  config.hidden_dims = (256, 256)
  config.actor_lr = 3e-4
  config.cosine_decay = False
  config.max_steps = 1_000_000  # cosine-decay horizon when cosine_decay is set
  config.actor_dropout_rate = 0.0
  config.log_std_min = -5.0
  config.log_std_max = 2.0
  config.act_noise_std = 0.1  # exploration noise of the deterministic actor
  return config


def _networks(cfg):
  actor_tx = common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None)
  return {"actor": api.Network(common.make_actor(cfg), actor_tx)}


def _update_step(state: api.AgentState, batch: Transitions, nets, key):
  cfg = state.config
  weights = jnp.ones(batch.rewards.shape, batch.rewards.dtype)

  def loss_fn(params):
    return common.weighted_actor_loss(nets["actor"].module, cfg.actor_type, params,
                                      batch.observations, batch.actions,
                                      weights, key)

  state, loss, metrics = api.gradient_step(state, nets, "actor", loss_fn)
  return state, {"actor_loss": loss, **metrics}


_AGENT = api.make_agent(name="BC", get_config=get_config, networks=_networks,
                        update_step=_update_step)
init, update, update_n, act = _AGENT.init, _AGENT.update, _AGENT.update_n, _AGENT.act

"""Behaviour cloning (Gaussian or deterministic actor).

Gaussian:      max_θ E_{(s,a)~D}[log π_θ(a|s)]
Deterministic: min_θ E_{(s,a)~D}[||π_θ(s) − a||²]

The baseline of the IQL (Kostrikov et al., ICLR 2022) and RIQL (Yang et al.,
ICLR 2024) papers; the Gaussian head is IQL's actor, so BC here is IQL's
policy-extraction step with all weights equal to 1.

Goal-conditioned BC (GCBC; Ghosh et al., "Learning to Reach Goals via Iterated
Supervised Learning", ICLR 2021; OGBench's GCBC baseline), `goal_conditioned=True`:

  max_θ E_{(s,a,g)~D}[log π_θ(a|s, g)],   g = a future state of the same trajectory

(hindsight relabelling; batches from `offline.future_goals`). The actor reads
`goal_observations(s, g)` = [s, g] concatenated, in training and in `act`.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from jaxrl_llm.offline.agents import api
from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.types import Transitions, goal_observations


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
  # GCBC: π(a | s, g) with g = batch.goals (future states); `act` then takes
  # goal_observations(observations, goals).
  config.goal_conditioned = False
  return config


def _goal_inputs(batch: Transitions):
  goals = batch.goals
  if goals is None:
    raise ValueError("batch.goals is missing: goal-conditioned BC (goal_conditioned=True) "
                     "clones a(s, g) with g a future state; sample batches with "
                     "jaxrl_llm.offline.future_goals (config.future_goals)")
  if jnp.ndim(goals) != 2 or jnp.shape(goals)[0] != jnp.shape(batch.observations)[0]:
    raise ValueError(f"batch.goals must have shape [batch, goal_dim] with "
                     f"{jnp.shape(batch.observations)[0]} rows, got {jnp.shape(goals)}")
  return goal_observations(batch.observations, goals)


def _networks(cfg):
  actor_tx = common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None)
  inputs = (_goal_inputs,) if cfg.goal_conditioned else ("observations",)
  return {"actor": api.Network(common.make_actor(cfg), actor_tx, init_inputs=inputs)}


def _update_step(state: api.AgentState, batch: Transitions, nets, key):
  cfg = state.config
  weights = jnp.ones(batch.actions.shape[:1], batch.actions.dtype)
  inputs = _goal_inputs(batch) if cfg.goal_conditioned else batch.observations

  def loss_fn(params):
    return common.weighted_actor_loss(nets["actor"].module, cfg.actor_type, params,
                                      inputs, batch.actions, weights, key)

  state, loss, metrics = api.gradient_step(state, nets, "actor", loss_fn)
  return state, {"actor_loss": loss, **metrics}


_AGENT = api.make_agent(name="BC", get_config=get_config, networks=_networks,
                        update_step=_update_step)
init, update, update_n, act = _AGENT.init, _AGENT.update, _AGENT.update_n, _AGENT.act

"""The shared agent API: one state type and one builder for every offline agent.

DESIGN.md "Offline agents: one API for all":

  state = agent.init(key, example_batch, config)
  state, metrics = agent.update(state, batch)       # one gradient step, jit-able
  state, metrics = agent.update_n(state, batches)   # lax.scan over a leading axis
  actions = agent.act(state, observations, key, deterministic=True)

An agent file declares only what is its own and lets `make_agent` build the
four functions:

  networks(cfg) -> {name: Network(module, optimizer, init_inputs, target)}
  update_step(state, batch, nets, key) -> (state, metrics)   # its losses, in its order
  get_config() -> ml_collections.ConfigDict                   # its hyperparameters

Inside `update_step`, `gradient_step(state, nets, name, loss_fn)` takes one
optimiser step on one network, `apply_network(state, nets, name, ...)` runs a
network (or its Polyak target), and `update_targets(state, rate)` moves every
target. `make_agent` supplies the batch check, the jit, the scan, the PRNG
split and the step counter, so an agent cannot get those subtly different.

`AgentState` keeps one params / optimiser-state pair per network name, the
Polyak targets, agent-specific arrays (`extras`), the step, the PRNG key and
the frozen config (static, so `update(state, batch)` jits without another
argument). Its fields also read by the per-network names the agents used
before this module existed: `state.actor_params`, `state.critic_opt_state`,
`state.target_critic_params`, and `state.obs_mean` for an entry of `extras`.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Sequence

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.agents import losses
from jaxrl_llm.offline.types import Transitions


class Network(NamedTuple):
  """One trained network of an agent.

  module:      the flax module (built from the static config).
  optimizer:   its optax transformation.
  init_inputs: what `module.init` is called with, in order: batch field
               names (e.g. ("observations", "actions") for a critic) or
               callables `row -> array` for inputs that are not batch fields
               (e.g. a latent of a size fixed by the config).
  target:      keep a Polyak-averaged target copy of its params.
  """

  module: nn.Module
  optimizer: optax.GradientTransformation
  init_inputs: Sequence[Any] = ("observations",)
  target: bool = False


@flax.struct.dataclass
class AgentState:
  """Everything an agent carries between updates, as one pytree."""

  params: Dict[str, Any]  # network name -> params
  opt_states: Dict[str, Any]  # network name -> optimiser state
  target_params: Dict[str, Any]  # name -> Polyak target (networks with target=True)
  extras: Dict[str, jax.Array]  # agent-specific arrays, e.g. observation statistics
  step: jax.Array
  rng: jax.Array
  config: ml_collections.FrozenConfigDict = flax.struct.field(pytree_node=False)

  def __getattr__(self, name: str):
    # Only reached when ordinary lookup fails: the per-network names.
    fields = self.__dict__
    if "params" not in fields:  # not yet initialised (copy / unpickling)
      raise AttributeError(name)
    if name.startswith("target_") and name.endswith("_params"):
      table, key = fields["target_params"], name[len("target_"):-len("_params")]
    elif name.endswith("_opt_state"):
      table, key = fields["opt_states"], name[:-len("_opt_state")]
    elif name.endswith("_params"):
      table, key = fields["params"], name[:-len("_params")]
    else:
      table, key = fields["extras"], name
    if key in table:
      return table[key]
    raise AttributeError(
        f"AgentState has no attribute {name!r}; networks: {sorted(fields['params'])}, "
        f"targets: {sorted(fields['target_params'])}, extras: {sorted(fields['extras'])}")

  def with_network(self, name: str, params, opt_state) -> "AgentState":
    """A copy with network `name`'s params and optimiser state replaced."""
    return self.replace(params={**self.params, name: params},
                        opt_states={**self.opt_states, name: opt_state})


def gradient_step(state: AgentState, nets: Mapping[str, Network], name: str,
                  loss_fn: Callable):
  """One optimiser step on network `name`: `loss_fn(params) -> (loss, aux)`.

  Returns (new state, loss, aux); the other networks are untouched.
  """
  (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params[name])
  params, opt_state = common.apply_gradients(
      nets[name].optimizer, state.params[name], state.opt_states[name], grads)
  return state.with_network(name, params, opt_state), loss, aux


def apply_network(state: AgentState, nets: Mapping[str, Network], name: str,
                  *args, target: bool = False, **kwargs):
  """`nets[name].module.apply` with the online (or, `target=True`, target) params."""
  params = state.target_params[name] if target else state.params[name]
  return nets[name].module.apply(params, *args, **kwargs)


def update_targets(state: AgentState, rate: float) -> AgentState:
  """Polyak step `θ̄ ← (1 − ρ) θ̄ + ρ θ` for every network that has a target."""
  return state.replace(target_params={
      name: losses.polyak_update(target, state.params[name], rate)
      for name, target in state.target_params.items()})


class Agent(NamedTuple):
  """The functions of the shared API, as built by `make_agent`."""

  init: Callable
  update: Callable
  update_n: Callable
  act: Callable


def _identity_batch(batch):
  return batch


def make_agent(
    *,
    name: str,
    get_config: Callable[[], ml_collections.ConfigDict],
    networks: Callable[[Any], Dict[str, Network]],
    update_step: Callable,
    check_batch: Callable[[Any], None] = common.check_batch,
    init_transitions: Callable[[Any], Transitions] = _identity_batch,
    prepare: Optional[Callable[[Any, Any], Dict[str, jax.Array]]] = None,
    observation_transform: Optional[Callable[[AgentState, jax.Array], jax.Array]] = None,
) -> Agent:
  """Builds `init`, `update`, `update_n` and `act` for one agent.

  Args:
    name: the agent's name (for docstrings).
    get_config: the agent's defaults; they also fix the accepted config keys.
    networks: `cfg -> {name: Network}`; rebuilt from the static config inside
      every traced function (pure Python, free at run time). The dict's order
      fixes the order of the init keys.
    update_step: `(state, batch, nets, key) -> (state, metrics)`, the agent's
      losses in its order. `key` is this step's fresh PRNG key; `make_agent`
      advances `state.rng` and `state.step` afterwards.
    check_batch: raises ValueError naming the bad field (runs once per trace).
    init_transitions: the Transitions inside an example batch whose first row
      initialises the networks (and fixes obs_dim / action_dim).
    prepare: `(cfg, example_batch) -> extras`, agent-specific arrays computed
      once at init (and the place to validate the config).
    observation_transform: `(state, obs) -> obs` applied before the actor in
      `act` (e.g. RIQL's observation normalisation).
  """

  def init(key: jax.Array, example_batch, config: ml_collections.ConfigDict) -> AgentState:
    check_batch(example_batch)
    transitions = init_transitions(example_batch)
    cfg = common.freeze_config(
        config, get_config(),
        obs_dim=int(transitions.observations.shape[-1]),
        action_dim=int(transitions.actions.shape[-1]))
    extras = dict(prepare(cfg, example_batch)) if prepare is not None else {}
    row = common.first_row(transitions)
    params, opt_states, target_params, rng = _init_networks(cfg, key, row)
    return AgentState(params=params, opt_states=opt_states, target_params=target_params,
                      extras=extras, step=jnp.zeros((), jnp.int32), rng=rng, config=cfg)

  # One compiled program for all initialisers (eager flax init compiles every op).
  @functools.partial(jax.jit, static_argnums=0)
  def _init_networks(cfg, key, row):
    nets = networks(cfg)
    rng, *keys = jax.random.split(key, 1 + len(nets))
    params, opt_states, target_params = {}, {}, {}
    for net_key, (net_name, net) in zip(keys, nets.items()):
      inputs = [field(row) if callable(field) else getattr(row, field)
                for field in net.init_inputs]
      params[net_name] = net.module.init(net_key, *inputs)
      opt_states[net_name] = net.optimizer.init(params[net_name])
      if net.target:
        target_params[net_name] = params[net_name]
    return params, opt_states, target_params, rng

  def _update(state: AgentState, batch):
    check_batch(batch)
    rng, key = jax.random.split(state.rng)
    new_state, metrics = update_step(state, batch, networks(state.config), key)
    return new_state.replace(step=state.step + 1, rng=rng), metrics

  update_jit = jax.jit(_update)
  update_n_jit = jax.jit(common.make_update_n(_update))

  def update(state: AgentState, batch):
    return update_jit(state, batch)

  def update_n(state: AgentState, batches):
    return update_n_jit(state, batches)

  @functools.partial(jax.jit, static_argnames=("deterministic",))
  def _act(state, observations, key, deterministic):
    cfg = state.config
    if observation_transform is not None:
      observations = observation_transform(state, observations)
    return common.select_action(networks(cfg)["actor"].module, cfg.actor_type,
                                state.params["actor"], observations, key,
                                deterministic, cfg.act_noise_std)

  def act(state: AgentState, observations: jax.Array, key: jax.Array,
          deterministic: bool = True) -> jax.Array:
    return _act(state, observations, key, bool(deterministic))

  init.__doc__ = f"Initialises the {name} networks, optimisers and targets on `example_batch`."
  update.__doc__ = f"One jitted {name} step: (state, batch) -> (state, metrics)."
  update_n.__doc__ = (f"len(batches) {name} steps in one lax.scan over axis 0; "
                      "metrics stacked on axis 0.")
  act.__doc__ = (f"{name} actions in [−1, 1] for observations [obs_dim] or [B, obs_dim]; "
                 "deterministic = the actor's mean.")
  for fn, fn_name in ((init, "init"), (update, "update"), (update_n, "update_n"), (act, "act")):
    fn.__name__ = fn.__qualname__ = fn_name
  return Agent(init=init, update=update, update_n=update_n, act=act)

"""Networks of the offline agents (flax.linen): MLPs, actors, critics, value.

Defaults follow IQL's reference networks (Kostrikov et al., ICLR 2022): ReLU
MLPs with orthogonal(√2) kernels, a state-independent log-std Gaussian actor
whose mean is `tanh(Dense(h))`, and critics on concat(s, a). The critic
ensemble is one module vmapped over a leading ensemble axis, so K critics are
batched matmuls rather than K separate networks.
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def default_init(scale: float = jnp.sqrt(2.0)) -> Initializer:
  return nn.initializers.orthogonal(scale)


def uniform_init(limit: float) -> Initializer:
  """U(−limit, limit), EDAC's output-layer init used by RIQL's critics."""

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -limit, limit)

  return init


class MLP(nn.Module):
  """Dense → activation stack; optional LayerNorm and dropout after each hidden.

  `output_init`/`output_bias_init` apply to the last layer only, so an MLP
  can end in a differently-initialised head (EDAC-style critics).
  """

  hidden_dims: Sequence[int]
  activate_final: bool = False
  dropout_rate: float = 0.0
  layer_norm: bool = False
  kernel_init: Initializer = default_init()
  bias_init: Initializer = nn.initializers.zeros
  output_init: Initializer | None = None
  output_bias_init: Initializer | None = None

  @nn.compact
  def __call__(self, x: jax.Array, training: bool = False) -> jax.Array:
    num_layers = len(self.hidden_dims)
    for i, size in enumerate(self.hidden_dims):
      last = i + 1 == num_layers
      kernel_init = (self.output_init if last and self.output_init is not None
                     else self.kernel_init)
      bias_init = (self.output_bias_init
                   if last and self.output_bias_init is not None
                   else self.bias_init)
      x = nn.Dense(size, kernel_init=kernel_init, bias_init=bias_init)(x)
      if not last or self.activate_final:
        if self.layer_norm:
          x = nn.LayerNorm()(x)
        x = nn.relu(x)
        if self.dropout_rate > 0.0:
          x = nn.Dropout(self.dropout_rate)(x, deterministic=not training)
    return x


class GaussianActor(nn.Module):
  """π(a|s) = N(tanh(Dense(h(s))), diag(exp(2·log_std))).

  As in IQL's `NormalTanhPolicy(state_dependent_std=False,
  tanh_squash_distribution=False)`: the log-std is a free parameter
  initialised to 0 and clipped to [log_std_min, log_std_max]; the distribution
  is not squashed, so log π is evaluated on the raw dataset action.
  Returns (mean, log_std), both [..., action_dim].
  """

  hidden_dims: Sequence[int]
  action_dim: int
  log_std_min: float = -5.0
  log_std_max: float = 2.0
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, observations: jax.Array, training: bool = False):
    h = MLP(self.hidden_dims, activate_final=True,
            dropout_rate=self.dropout_rate)(observations, training)
    mean = jnp.tanh(nn.Dense(self.action_dim, kernel_init=default_init())(h))
    log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
    log_std = jnp.clip(log_std, self.log_std_min, self.log_std_max)
    return mean, jnp.broadcast_to(log_std, mean.shape)


class DeterministicActor(nn.Module):
  """a = tanh(Dense(h(s))), [..., action_dim]."""

  hidden_dims: Sequence[int]
  action_dim: int
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, observations: jax.Array, training: bool = False):
    h = MLP(self.hidden_dims, activate_final=True,
            dropout_rate=self.dropout_rate)(observations, training)
    return jnp.tanh(nn.Dense(self.action_dim, kernel_init=default_init())(h))


class Critic(nn.Module):
  """Q(s, a) = MLP(concat(s, a)) → scalar, returned as [...]."""

  hidden_dims: Sequence[int]
  init_style: str = "iql"  # "iql": orthogonal(√2) everywhere; "edac": see below.

  @nn.compact
  def __call__(self, observations: jax.Array, actions: jax.Array):
    x = jnp.concatenate([observations, actions], axis=-1)
    dims = (*self.hidden_dims, 1)
    if self.init_style == "iql":
      mlp = MLP(dims)
    elif self.init_style == "edac":
      # EDAC / RIQL: hidden biases 0.1, output layer weights and bias U(±3e-3).
      mlp = MLP(dims, bias_init=nn.initializers.constant(0.1),
                output_init=uniform_init(3e-3),
                output_bias_init=uniform_init(3e-3))
    else:
      raise ValueError(
          f"critic init_style must be 'iql' or 'edac', got {self.init_style!r}")
    return jnp.squeeze(mlp(x), -1)


class EnsembleCritic(nn.Module):
  """K independent critics with stacked params; returns [K, ...].

  K = 2 is IQL's twin critic, K = 3 or 5 RIQL's ensemble.
  """

  hidden_dims: Sequence[int]
  num_critics: int = 2
  init_style: str = "iql"

  @nn.compact
  def __call__(self, observations: jax.Array, actions: jax.Array):
    vmapped = nn.vmap(Critic, variable_axes={"params": 0},
                      split_rngs={"params": True}, in_axes=None, out_axes=0,
                      axis_size=self.num_critics)
    return vmapped(self.hidden_dims, self.init_style)(observations, actions)


class ValueNet(nn.Module):
  """V(s) = MLP(s) → scalar, returned as [...]."""

  hidden_dims: Sequence[int]
  layer_norm: bool = False

  @nn.compact
  def __call__(self, observations: jax.Array):
    return jnp.squeeze(
        MLP((*self.hidden_dims, 1), layer_norm=self.layer_norm)(observations),
        -1)

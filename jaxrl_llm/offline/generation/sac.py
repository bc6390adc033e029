"""Soft Actor-Critic in JAX, used only to make behaviour policies for offline datasets.

Haarnoja, Zhou, Hartikainen, Tucker, Ha, Tan, Kumar, Zhu, Gupta, Abbeel, Levine,
"Soft Actor-Critic Algorithms and Applications", arXiv:1812.05905 (2018).

With twin critics Q1, Q2, Polyak targets Q̄, a tanh-Gaussian actor π and temperature α:

* critic: `y = r + γ m (min_k Q̄_k(s', a') − α log π(a'|s'))`, `a' ~ π(·|s')`,
  `L_Q = Σ_k E[(Q_k(s, a) − y)²]`;
* actor: `L_π = E[α log π(ã|s) − min_k Q_k(s, ã)]`, `ã ~ π(·|s)` (reparameterised);
* temperature: `L_α = E[−log α · (log π(ã|s) + H̄)]`, target entropy `H̄ = −dim(A)`;
* targets: `Q̄ ← (1 − τ) Q̄ + τ Q`.

`m = 1 − terminated`: time-limit truncations are bootstrapped.

Pure functions over an explicit `SACState`; `train_sac` is the host-side loop that steps a
gymnasium env, stores every transition (the replay buffer becomes the `medium-replay`
dataset) and snapshots the actor at each evaluation.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

__all__ = [
    "SACConfig",
    "SACState",
    "TanhGaussianActor",
    "TwinCritic",
    "sac_init",
    "sac_update",
    "sac_update_n",
    "sample_tanh_gaussian",
    "sac_act",
    "ReplayBuffer",
    "train_sac",
]

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0


class SACConfig(NamedTuple):
  hidden_dims: Tuple[int, ...] = (256, 256)
  actor_lr: float = 3e-4
  critic_lr: float = 3e-4
  alpha_lr: float = 3e-4
  discount: float = 0.99
  tau: float = 0.005
  batch_size: int = 256
  init_alpha: float = 1.0
  target_entropy: Optional[float] = None  # None -> -act_dim


class _MLP(nn.Module):
  hidden_dims: Sequence[int]
  out_dim: int

  @nn.compact
  def __call__(self, x):
    for h in self.hidden_dims:
      x = nn.relu(nn.Dense(h)(x))
    return nn.Dense(self.out_dim)(x)


class TanhGaussianActor(nn.Module):
  """`(mean, log_std)` of a Gaussian whose samples are squashed by tanh."""

  hidden_dims: Sequence[int]
  act_dim: int

  @nn.compact
  def __call__(self, obs):
    out = _MLP(self.hidden_dims, 2 * self.act_dim)(obs)
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class TwinCritic(nn.Module):
  """Two independent Q MLPs on concat(s, a), batched with `nn.vmap` -> `[2, B]`."""

  hidden_dims: Sequence[int]

  @nn.compact
  def __call__(self, obs, act):
    ensemble = nn.vmap(_MLP, variable_axes={"params": 0}, split_rngs={"params": True},
                       in_axes=None, out_axes=0, axis_size=2)
    return ensemble(self.hidden_dims, 1)(jnp.concatenate([obs, act], -1))[..., 0]


class SACState(struct.PyTreeNode):
  actor_params: Any
  critic_params: Any
  target_critic_params: Any
  log_alpha: jax.Array
  actor_opt: Any
  critic_opt: Any
  alpha_opt: Any
  step: jax.Array
  config: SACConfig = struct.field(pytree_node=False)
  act_dim: int = struct.field(pytree_node=False)


def _nets(cfg: SACConfig, act_dim: int):
  return TanhGaussianActor(cfg.hidden_dims, act_dim), TwinCritic(cfg.hidden_dims)


def _optimizers(cfg: SACConfig):
  return optax.adam(cfg.actor_lr), optax.adam(cfg.critic_lr), optax.adam(cfg.alpha_lr)


def sac_init(key: chex.PRNGKey, obs_dim: int, act_dim: int, config: SACConfig = SACConfig()
             ) -> SACState:
  """Initial `SACState` for observations of size `obs_dim` and actions in `[-1, 1]^act_dim`."""
  actor, critic = _nets(config, act_dim)
  k_a, k_c = jax.random.split(key)
  obs = jnp.zeros((1, obs_dim), jnp.float32)
  act = jnp.zeros((1, act_dim), jnp.float32)
  actor_params = actor.init(k_a, obs)
  critic_params = critic.init(k_c, obs, act)
  log_alpha = jnp.log(jnp.asarray(config.init_alpha, jnp.float32))
  opt_a, opt_c, opt_t = _optimizers(config)
  return SACState(actor_params=actor_params, critic_params=critic_params,
                  target_critic_params=critic_params, log_alpha=log_alpha,
                  actor_opt=opt_a.init(actor_params), critic_opt=opt_c.init(critic_params),
                  alpha_opt=opt_t.init(log_alpha), step=jnp.zeros((), jnp.int32), config=config,
                  act_dim=act_dim)


def sample_tanh_gaussian(key: chex.PRNGKey, mean: jax.Array, log_std: jax.Array
                         ) -> Tuple[jax.Array, jax.Array]:
  """`a = tanh(u)`, `u ~ N(mean, exp(log_std)²)`; returns `(a, log π(a))`.

  `log π(a) = log N(u) − Σ log(1 − tanh(u)²)`, with the stable identity
  `log(1 − tanh(u)²) = 2 (log 2 − u − softplus(−2u))`.
  """
  std = jnp.exp(log_std)
  noise = jax.random.normal(key, mean.shape)
  u = mean + std * noise
  log_normal = jnp.sum(-0.5 * noise ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)
  log_det = jnp.sum(2.0 * (jnp.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
  return jnp.tanh(u), log_normal - log_det


def sac_update(state: SACState, batch: Dict[str, jax.Array], key: chex.PRNGKey
               ) -> Tuple[SACState, Dict[str, jax.Array]]:
  """One SAC step (critic, then actor and temperature, then Polyak). Jit-able.

  `batch`: observations, actions, rewards, next_observations, masks (= 1 − terminated).
  """
  cfg = state.config
  actor, critic = _nets(cfg, state.act_dim)
  opt_a, opt_c, opt_t = _optimizers(cfg)
  target_entropy = -state.act_dim if cfg.target_entropy is None else cfg.target_entropy
  k_next, k_pi = jax.random.split(key)
  alpha = jnp.exp(state.log_alpha)

  next_mean, next_log_std = actor.apply(state.actor_params, batch["next_observations"])
  next_act, next_logp = sample_tanh_gaussian(k_next, next_mean, next_log_std)
  next_q = critic.apply(state.target_critic_params, batch["next_observations"], next_act).min(0)
  target = batch["rewards"] + cfg.discount * batch["masks"] * (next_q - alpha * next_logp)
  target = jax.lax.stop_gradient(target)

  def critic_loss(params):
    q = critic.apply(params, batch["observations"], batch["actions"])  # [2, B]
    return jnp.sum(jnp.mean((q - target[None]) ** 2, axis=1)), q.mean()

  (c_loss, q_mean), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(state.critic_params)
  c_updates, critic_opt = opt_c.update(c_grads, state.critic_opt, state.critic_params)
  critic_params = optax.apply_updates(state.critic_params, c_updates)

  def actor_loss(params):
    mean, log_std = actor.apply(params, batch["observations"])
    act, logp = sample_tanh_gaussian(k_pi, mean, log_std)
    q = critic.apply(critic_params, batch["observations"], act).min(0)
    return jnp.mean(alpha * logp - q), logp

  (a_loss, logp), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(state.actor_params)
  a_updates, actor_opt = opt_a.update(a_grads, state.actor_opt, state.actor_params)
  actor_params = optax.apply_updates(state.actor_params, a_updates)

  entropy = -jnp.mean(logp)
  alpha_loss_fn = lambda la: -la * jax.lax.stop_gradient(-entropy + target_entropy)
  t_loss, t_grad = jax.value_and_grad(alpha_loss_fn)(state.log_alpha)
  t_updates, alpha_opt = opt_t.update(t_grad, state.alpha_opt, state.log_alpha)
  log_alpha = optax.apply_updates(state.log_alpha, t_updates)

  target_critic_params = optax.incremental_update(critic_params, state.target_critic_params, cfg.tau)
  new_state = state.replace(actor_params=actor_params, critic_params=critic_params,
                            target_critic_params=target_critic_params, log_alpha=log_alpha,
                            actor_opt=actor_opt, critic_opt=critic_opt, alpha_opt=alpha_opt,
                            step=state.step + 1)
  metrics = dict(critic_loss=c_loss, actor_loss=a_loss, alpha_loss=t_loss, alpha=alpha,
                 entropy=entropy, q_mean=q_mean)
  return new_state, metrics


def sac_update_n(state: SACState, batches: Dict[str, jax.Array], key: chex.PRNGKey
                 ) -> Tuple[SACState, Dict[str, jax.Array]]:
  """`sac_update` over a leading axis of stacked batches (`lax.scan`); metrics are averaged."""
  n = batches["rewards"].shape[0]

  def body(s, xs):
    b, k = xs
    return sac_update(s, b, k)

  state, metrics = jax.lax.scan(body, state, (batches, jax.random.split(key, n)))
  return state, jax.tree_util.tree_map(jnp.mean, metrics)


def sac_act(actor_params: Any, obs: jax.Array, key: chex.PRNGKey, *, hidden_dims: Sequence[int],
            act_dim: int, deterministic: bool = False) -> jax.Array:
  """Actions in `[-1, 1]`: `tanh(mean)` if deterministic, else a tanh-Gaussian sample."""
  mean, log_std = TanhGaussianActor(tuple(hidden_dims), act_dim).apply(actor_params, obs)
  if deterministic:
    return jnp.tanh(mean)
  return sample_tanh_gaussian(key, mean, log_std)[0]


class ReplayBuffer:
  """Host-side transition store, in insertion order (it doubles as the replay dataset).

  Fields: observations, actions (env units), rewards, next_observations, terminals (env
  `terminated`), timeouts (env `truncated`).
  """

  def __init__(self, obs_dim: int, act_dim: int, capacity: int):
    self.capacity = capacity
    self.size = 0
    self.data = dict(observations=np.zeros((capacity, obs_dim), np.float32),
                     actions=np.zeros((capacity, act_dim), np.float32),
                     rewards=np.zeros((capacity,), np.float32),
                     next_observations=np.zeros((capacity, obs_dim), np.float32),
                     terminals=np.zeros((capacity,), np.float32),
                     timeouts=np.zeros((capacity,), np.float32))

  def add(self, obs, act, rew, next_obs, terminated, truncated):
    if self.size >= self.capacity:
      raise ValueError(f"ReplayBuffer is full (capacity {self.capacity}).")
    i = self.size
    d = self.data
    d["observations"][i] = obs
    d["actions"][i] = act
    d["rewards"][i] = rew
    d["next_observations"][i] = next_obs
    d["terminals"][i] = float(terminated)
    d["timeouts"][i] = float(truncated)
    self.size += 1

  def sample(self, rng: np.random.Generator, batch_size: int, num_batches: int,
             action_to_unit: Callable[[np.ndarray], np.ndarray]) -> Dict[str, np.ndarray]:
    idx = rng.integers(0, self.size, size=(num_batches, batch_size))
    d = self.data
    return dict(observations=d["observations"][idx], actions=action_to_unit(d["actions"][idx]),
                rewards=d["rewards"][idx], next_observations=d["next_observations"][idx],
                masks=1.0 - d["terminals"][idx])

  def prefix(self, n: Optional[int] = None) -> Dict[str, np.ndarray]:
    n = self.size if n is None else min(n, self.size)
    return {k: v[:n].copy() for k, v in self.data.items()}


def _action_scalers(action_space):
  low = np.asarray(action_space.low, np.float32)
  high = np.asarray(action_space.high, np.float32)
  to_env = lambda a: low + (np.asarray(a) + 1.0) * 0.5 * (high - low)
  to_unit = lambda a: 2.0 * (np.asarray(a) - low) / (high - low) - 1.0
  return to_env, to_unit


def train_sac(env_id: str, total_steps: int, *, seed: int = 0, config: SACConfig = SACConfig(),
              warmup_steps: int = 5000, update_every: int = 50, eval_every: int = 10000,
              eval_episodes: int = 5, env_kwargs: Optional[dict] = None,
              log_fn: Optional[Callable[[Dict[str, Any]], None]] = None) -> Dict[str, Any]:
  """Trains SAC on a gymnasium env; one gradient update per env step (UTD 1).

  Updates are applied in groups of `update_every` (one jitted `lax.scan`), after every
  `update_every` env steps. Every `eval_every` steps (and at the end) the actor is evaluated
  deterministically for `eval_episodes` episodes and snapshotted.

  Returns `dict(state, buffer, checkpoints, episode_returns, action_to_env, config)`, where
  `checkpoints` is a list of `dict(step, buffer_size, actor_params, eval_return, eval_std)`.
  """
  import gymnasium as gym

  from jaxrl_llm.offline.evaluation import evaluate_policy

  env = gym.make(env_id, **(env_kwargs or {}))
  obs_dim = int(np.prod(env.observation_space.shape))
  act_dim = int(np.prod(env.action_space.shape))
  to_env, to_unit = _action_scalers(env.action_space)
  key = jax.random.PRNGKey(seed)
  key, init_key = jax.random.split(key)
  state = sac_init(init_key, obs_dim, act_dim, config)
  buffer = ReplayBuffer(obs_dim, act_dim, total_steps)
  np_rng = np.random.default_rng(seed)

  act_fn = jax.jit(lambda p, o, k, det: sac_act(p, o, k, hidden_dims=config.hidden_dims,
                                                  act_dim=act_dim, deterministic=det),
                   static_argnums=3)
  update_n = jax.jit(sac_update_n)

  def policy_for_eval(params):
    return lambda o, k: to_env(np.asarray(act_fn(params, jnp.asarray(o, jnp.float32), k, True)))

  checkpoints: List[Dict[str, Any]] = []
  episode_returns: List[float] = []
  obs, _ = env.reset(seed=seed)
  env.action_space.seed(seed)
  ep_ret = 0.0
  metrics: Dict[str, Any] = {}
  t0 = time.time()
  for step in range(1, total_steps + 1):
    if step <= warmup_steps:
      action = env.action_space.sample()
    else:
      key, k = jax.random.split(key)
      action = to_env(np.asarray(act_fn(state.actor_params, jnp.asarray(obs[None], jnp.float32), k, False))[0])
    next_obs, rew, terminated, truncated, _ = env.step(action)
    buffer.add(obs, action, rew, next_obs, terminated, truncated)
    ep_ret += float(rew)
    obs = next_obs
    if terminated or truncated:
      episode_returns.append(ep_ret)
      ep_ret = 0.0
      obs, _ = env.reset()
    if step >= warmup_steps and step % update_every == 0 and buffer.size >= config.batch_size:
      batches = buffer.sample(np_rng, config.batch_size, update_every, to_unit)
      key, k = jax.random.split(key)
      state, metrics = update_n(state, jax.tree_util.tree_map(jnp.asarray, batches), k)
    if step % eval_every == 0 or step == total_steps:
      key, k = jax.random.split(key)
      ev = evaluate_policy(policy_for_eval(state.actor_params), env_id, eval_episodes, seed=seed + 10_000 + step,
                           key=k, env_kwargs=env_kwargs)
      checkpoints.append(dict(step=step, buffer_size=buffer.size,
                              actor_params=jax.device_get(state.actor_params),
                              eval_return=float(np.mean(ev["returns"])),
                              eval_std=float(np.std(ev["returns"]))))
      if log_fn is not None:
        log_fn(dict(step=step, eval_return=checkpoints[-1]["eval_return"],
                    train_return=float(np.mean(episode_returns[-10:])) if episode_returns else float("nan"),
                    elapsed_s=time.time() - t0, steps_per_s=step / (time.time() - t0),
                    **{k: float(v) for k, v in metrics.items()}))
  env.close()
  return dict(state=state, buffer=buffer, checkpoints=checkpoints, episode_returns=episode_returns,
              action_to_env=to_env, config=config, act_dim=act_dim, obs_dim=obs_dim)

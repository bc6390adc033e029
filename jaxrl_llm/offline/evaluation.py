"""Policy evaluation by environment rollouts (gymnasium), with D4RL-normalised scores.

A batched loop over `num_envs` independent environments: each wave resets every env with
its own seed, calls the policy once per step on the whole `[num_envs, obs_dim]` batch (a
fixed shape, so a jitted policy compiles once) and stops stepping an env when its episode
ends (terminated or truncated). Episodes are seeded `seed, seed + 1, ...`, so a result is
reproducible and independent of `num_envs`.

Normalised score (D4RL, Fu et al. 2020): `100 * (R - R_random) / (R_expert - R_random)`.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import jax
import numpy as np

from jaxrl_llm.offline.datasets import normalized_score

__all__ = ["evaluate_policy"]

ActFn = Callable[[np.ndarray, jax.Array], Any]  # (obs [B, obs_dim], key) -> actions [B, act_dim]


def evaluate_policy(act: ActFn, env_id: str, num_episodes: int = 10, *, seed: int = 0,
                    key: Optional[jax.Array] = None, num_envs: Optional[int] = None,
                    ref_min: Optional[float] = None, ref_max: Optional[float] = None,
                    max_episode_steps: Optional[int] = None, env_kwargs: Optional[dict] = None,
                    clip_actions: bool = True) -> Dict[str, np.ndarray]:
  """Runs `num_episodes` episodes of `act` and returns raw (and normalised) returns.

  Args:
    act: `act(observations [B, obs_dim], key) -> actions [B, act_dim]`, in env units.
    env_id: a gymnasium id (e.g. 'Hopper-v5').
    num_episodes: episodes in total.
    seed: episode i is reset with seed `seed + i`.
    key: JAX key for stochastic policies; split once per policy call.
    num_envs: envs stepped together (default `min(num_episodes, 10)`).
    ref_min, ref_max: reference returns for the normalised score (both or neither).
    clip_actions: clip actions to the action space bounds before stepping.

  Returns:
    dict with `returns` [num_episodes], `lengths` [num_episodes] and, when references are
    given, `normalized` [num_episodes], plus the scalar means `return_mean`, `normalized_mean`.
  """
  import gymnasium as gym

  if num_episodes < 1:
    raise ValueError(f"`num_episodes` must be >= 1; got {num_episodes}.")
  if (ref_min is None) != (ref_max is None):
    raise ValueError("Pass both `ref_min` and `ref_max` (or neither).")
  num_envs = min(num_episodes, num_envs or 10)
  kwargs = dict(env_kwargs or {})
  if max_episode_steps is not None:
    kwargs["max_episode_steps"] = max_episode_steps
  envs = [gym.make(env_id, **kwargs) for _ in range(num_envs)]
  low, high = envs[0].action_space.low, envs[0].action_space.high
  key = jax.random.PRNGKey(seed) if key is None else key
  returns = np.zeros(num_episodes)
  lengths = np.zeros(num_episodes, np.int64)
  try:
    for wave_start in range(0, num_episodes, num_envs):
      ids = list(range(wave_start, min(num_episodes, wave_start + num_envs)))
      obs = np.stack([envs[j].reset(seed=seed + i)[0] for j, i in enumerate(ids)] +
                     [np.zeros(envs[0].observation_space.shape)] * (num_envs - len(ids)))
      alive = np.zeros(num_envs, bool)
      alive[:len(ids)] = True
      while alive.any():
        key, k = jax.random.split(key)
        actions = np.asarray(act(obs.astype(np.float32), k))
        if actions.shape[0] != num_envs:
          raise ValueError(f"`act` returned {actions.shape[0]} actions for a batch of {num_envs} observations.")
        if clip_actions:
          actions = np.clip(actions, low, high)
        for j in np.flatnonzero(alive):
          o, r, terminated, truncated, _ = envs[j].step(actions[j])
          returns[ids[j]] += r
          lengths[ids[j]] += 1
          obs[j] = o
          if terminated or truncated:
            alive[j] = False
  finally:
    for e in envs:
      e.close()
  out: Dict[str, Any] = dict(returns=returns, lengths=lengths, return_mean=float(returns.mean()))
  if ref_min is not None:
    out["normalized"] = normalized_score(returns, ref_min, ref_max)
    out["normalized_mean"] = float(out["normalized"].mean())
  return out

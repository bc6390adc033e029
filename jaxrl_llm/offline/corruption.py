"""Data corruption of offline datasets, as in RIQL.

Yang, Zhong, Xu, Hu, Zhang, Xu, Sun, Zhao, "Towards Robust Offline Reinforcement Learning
under Diverse Data Corruption", ICLR 2024 (RIQL), Sec. 5 / App. (corruption model).

For each corrupted field an independent set of transitions is selected, each transition with
probability `rate` (a fresh set per field). With `scale = eps` and `std` the per-dimension
standard deviation of the *whole* field before corruption:

| field | random | adversarial |
|---|---|---|
| observations | `s + U(-eps, eps) * std(s)` | `s + delta * std(s)`, delta minimising `mean Q(s + delta std, a)` |
| actions | `a + U(-eps, eps) * std(a)` | `a + delta * std(a)`, delta minimising `mean Q(s, a + delta std)` |
| rewards | `U(-eps, eps) * 30` (original discarded) | `-eps * r` |
| dynamics (next obs) | `s' + U(-eps, eps) * std(s')` | `s' + delta * std(s')`, delta minimising `mean Q(s'+d, pi(s'+d))` |

The adversarial `delta` starts from `U(-eps, eps)` and takes `steps` projected steps: each is
one step of a freshly initialised Adam with learning rate `step_size * eps`, i.e.
`delta <- clip(delta - lr * g / (|g| + 1e-8), -eps, eps)` with `g = d loss / d delta` (Adam's
first step from zero moments is `lr * g / (|g| + eps_adam)`), using a given critic (RIQL
attacks a pretrained EDAC ensemble; any `q_fn` works here).

Everything is a pure function of a JAX key, so a corrupted dataset is reproducible.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence, Tuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.offline.types import Transitions

__all__ = [
    "CORRUPTION_FIELDS",
    "sample_corruption_mask",
    "random_additive_corruption",
    "random_reward_corruption",
    "adversarial_reward_corruption",
    "field_std",
    "gradient_attack",
    "corrupt",
    "corrupt_dataset",
]

CORRUPTION_FIELDS = ("observations", "actions", "rewards", "dynamics")
_FIELD_TO_ATTR = {"observations": "observations", "actions": "actions", "rewards": "rewards",
                  "dynamics": "next_observations"}
RANDOM_REWARD_RANGE = 30.0  # RIQL: random reward corruption draws U(-30 eps, 30 eps)

QFn = Callable[[jax.Array, jax.Array], jax.Array]  # (obs [N,d], act [N,a]) -> Q [N] or [K, N]
PolicyFn = Callable[[jax.Array], jax.Array]  # obs [N,d] -> actions [N,a]


def _check_rate_scale(rate: float, scale: float) -> None:
  if not 0.0 <= rate <= 1.0:
    raise ValueError(f"corruption `rate` must be in [0, 1]; got {rate}.")
  if scale < 0.0:
    raise ValueError(f"corruption `scale` must be >= 0; got {scale}.")


def sample_corruption_mask(key: chex.PRNGKey, num_transitions: int, rate: float) -> jax.Array:
  """Boolean `[N]` mask: each transition is corrupted independently with probability `rate`."""
  _check_rate_scale(rate, 0.0)
  return jax.random.uniform(key, (num_transitions,)) < rate


def field_std(x: jax.Array) -> jax.Array:
  """Per-dimension (population) standard deviation over the transition axis, `[1, ...]`."""
  return jnp.std(jnp.asarray(x, jnp.float32), axis=0, keepdims=True)


def random_additive_corruption(key: chex.PRNGKey, x: jax.Array, mask: jax.Array, scale: float
                               ) -> jax.Array:
  """`x_i <- x_i + U(-scale, scale) * std(x)` on rows with `mask_i`; other rows unchanged.

  Used for observations, actions and next observations (RIQL random corruption).
  """
  x = jnp.asarray(x, jnp.float32)
  chex.assert_rank(mask, 1)
  chex.assert_equal_shape_prefix([x, mask], 1)
  noise = jax.random.uniform(key, x.shape, minval=-scale, maxval=scale) * field_std(x)
  return jnp.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x + noise, x)


def random_reward_corruption(key: chex.PRNGKey, rewards: jax.Array, mask: jax.Array, scale: float
                             ) -> jax.Array:
  """`r_i <- U(-scale, scale) * 30` on masked rows: the original reward is discarded (RIQL)."""
  rewards = jnp.asarray(rewards, jnp.float32)
  chex.assert_rank([rewards, mask], 1)
  chex.assert_equal_shape([rewards, mask])
  fake = jax.random.uniform(key, rewards.shape, minval=-scale, maxval=scale) * RANDOM_REWARD_RANGE
  return jnp.where(mask, fake, rewards)


def adversarial_reward_corruption(rewards: jax.Array, mask: jax.Array, scale: float) -> jax.Array:
  """`r_i <- -scale * r_i` on masked rows (RIQL adversarial reward corruption)."""
  rewards = jnp.asarray(rewards, jnp.float32)
  chex.assert_rank([rewards, mask], 1)
  chex.assert_equal_shape([rewards, mask])
  return jnp.where(mask, -scale * rewards, rewards)


def gradient_attack(key: chex.PRNGKey, loss_fn: Callable[[jax.Array], jax.Array], x: jax.Array,
                    std: jax.Array, scale: float, steps: int = 100, step_size: float = 0.01
                    ) -> jax.Array:
  """Projected signed-gradient attack: returns `x + delta * std` with `delta` in `[-scale, scale]`.

  `loss_fn(x_perturbed) -> scalar` is minimised (e.g. the mean Q value). `delta_0 ~
  U(-scale, scale)`; each step `delta <- clip(delta - lr g/(|g| + 1e-8), -scale, scale)` with
  `lr = step_size * scale` (one freshly initialised Adam step, as RIQL re-creates its Adam
  optimiser every iteration).
  """
  x = jnp.asarray(x, jnp.float32)
  std = jnp.broadcast_to(jnp.asarray(std, jnp.float32), (1,) + x.shape[1:])
  lr = step_size * scale
  delta0 = jax.random.uniform(key, x.shape, minval=-scale, maxval=scale)

  def objective(delta):
    return loss_fn(x + delta * std)

  def body(_, delta):
    g = jax.grad(objective)(delta)
    return jnp.clip(delta - lr * g / (jnp.abs(g) + 1e-8), -scale, scale)

  delta = jax.lax.fori_loop(0, steps, body, delta0)
  return x + delta * std


def _attack_rows(key, loss_fn, target, others, std, scale, steps, step_size, chunk_size):
  """`gradient_attack` over row chunks of `target` (bounded memory), one compiled function.

  `loss_fn(perturbed_chunk, others_chunk) -> scalar`.
  """
  attack = jax.jit(lambda k, xs, os_: gradient_attack(
      k, lambda z: loss_fn(z, os_), xs, std, scale, steps, step_size))
  n = target.shape[0]
  keys = jax.random.split(key, max(1, -(-n // chunk_size)))
  chunks = [attack(keys[c], target[s:s + chunk_size], others[s:s + chunk_size])
            for c, s in enumerate(range(0, n, chunk_size))]
  return jnp.concatenate(chunks, axis=0)


def corrupt(key: chex.PRNGKey, data: Transitions, field: str, mode: str, rate: float, scale: float, *,
            q_fn: Optional[QFn] = None, policy_fn: Optional[PolicyFn] = None, steps: int = 100,
            step_size: float = 0.01, chunk_size: int = 65536) -> Tuple[Transitions, np.ndarray]:
  """Corrupts one field of `data` (RIQL). Returns `(corrupted data, mask [N] bool)`.

  field: 'observations' | 'actions' | 'rewards' | 'dynamics' (= next_observations).
  mode: 'random' | 'adversarial'. Adversarial observations/actions need `q_fn(obs, act)`;
  adversarial dynamics need `q_fn` and `policy_fn(obs)`. Adversarial rewards need neither.
  The per-dimension std is taken over the whole field before corruption.
  """
  if field not in _FIELD_TO_ATTR:
    raise ValueError(f"Unknown corruption `field` {field!r}; known: {list(CORRUPTION_FIELDS)}.")
  if mode not in ("random", "adversarial"):
    raise ValueError(f"Unknown corruption `mode` {mode!r}; known: 'random', 'adversarial'.")
  _check_rate_scale(rate, scale)
  attr = _FIELD_TO_ATTR[field]
  n = data.observations.shape[0]
  mask_key, noise_key = jax.random.split(key)
  mask = sample_corruption_mask(mask_key, n, rate)
  original = jnp.asarray(getattr(data, attr), jnp.float32)

  if field == "rewards":
    if mode == "random":
      new = random_reward_corruption(noise_key, original, mask, scale)
    else:
      new = adversarial_reward_corruption(original, mask, scale)
  elif mode == "random":
    new = random_additive_corruption(noise_key, original, mask, scale)
  else:
    if q_fn is None:
      raise ValueError(f"adversarial corruption of `{field}` needs `q_fn` (a critic to attack).")
    if field == "dynamics" and policy_fn is None:
      raise ValueError("adversarial corruption of `dynamics` needs `policy_fn` (the critic's actor).")
    std = field_std(original)
    rows = np.flatnonzero(np.asarray(mask))
    obs = jnp.asarray(data.observations, jnp.float32)
    act = jnp.asarray(data.actions, jnp.float32)
    if field == "observations":
      loss = lambda z, other: jnp.mean(q_fn(z, other))
      other_all = act
    elif field == "actions":
      loss = lambda z, other: jnp.mean(q_fn(other, z))
      other_all = obs
    else:
      loss = lambda z, other: jnp.mean(q_fn(z, policy_fn(z)))
      other_all = act
    new = original
    if rows.size:
      attacked = _attack_rows(noise_key, loss, original[rows], other_all[rows], std, scale, steps,
                              step_size, chunk_size)
      new = original.at[rows].set(attacked)

  return data._replace(**{attr: np.asarray(new)}), np.asarray(mask)


def corrupt_dataset(key: chex.PRNGKey, data: Transitions, fields: Sequence[str], mode: str,
                    rate: float = 0.3, scale: float = 1.0, **kwargs
                    ) -> Tuple[Transitions, Dict[str, np.ndarray]]:
  """Applies `corrupt` to each field in turn, each with its own key and its own mask.

  RIQL's settings: `rate=0.3`, `scale=1.0`. Returns `(data, {field: mask})`; the masks are
  kept for diagnostics (e.g. Q uncertainty on corrupted vs clean transitions).
  """
  masks = {}
  for field, k in zip(fields, jax.random.split(key, max(1, len(fields)))):
    data, masks[field] = corrupt(k, data, field, mode, rate, scale, **kwargs)
  return data, masks

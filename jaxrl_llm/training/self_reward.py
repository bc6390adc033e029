"""LaSeR's last-token self-reward read in the training forward (no extra forward pass).

Yang et al. 2025, "LaSeR: Reinforcement Learning with Last-Token Self-Rewarding",
arXiv 2510.14943: the self-reward is the policy's log-prob of a fixed token
``z_c`` placed right after the response's last token (its EOS). The trainer
writes ``z_c`` into ``completion_tokens`` at column ``len_i`` (the first column
after row ``i``'s completion) and extends the attention mask by that one
position; the log-prob the forward computes at that column is
``log pi(z_c | x, y_i)``. Attention is causal, so every earlier column's log-prob
is unchanged, and the column is outside ``loss_mask``, so no other loss term
sees it. A row whose completion fills all ``N`` columns (truncated) has no room:
it gets ``valid = False`` and no self-reward.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class SelfRewardTokens(NamedTuple):
  """Completion arrays with ``z_c`` appended (``[B, N]``) and where it went (``[B]``).

  tokens, mask: ``completion_tokens`` / ``completion_mask`` with ``z_c`` at
    ``column`` in the valid rows (the others unchanged).
  column: ``[B]`` int, ``len_i`` = one past the last masked-in column (0 if none).
  valid: ``[B]`` bool, ``len_i < N`` (room for ``z_c``).
  """

  tokens: jax.Array
  mask: jax.Array
  column: jax.Array
  valid: jax.Array


def append_self_reward_token(completion_tokens: jax.Array, completion_mask: jax.Array,
                             token: int) -> SelfRewardTokens:
  """Writes ``token`` at column ``len_i`` of every row with room (see module docstring)."""
  if completion_tokens.ndim != 2 or completion_tokens.shape != completion_mask.shape:
    raise ValueError(f"completion_tokens and completion_mask must be the same [B, N], got "
                     f"{completion_tokens.shape} and {completion_mask.shape}")
  if not isinstance(token, int) or token < 0:
    raise ValueError(f"self_reward_token must be an int >= 0, got {token!r}")
  m = jnp.asarray(completion_mask).astype(bool)
  n = m.shape[1]
  any_token = jnp.any(m, axis=1)
  length = jnp.where(any_token, n - jnp.argmax(m[:, ::-1], axis=1), 0).astype(jnp.int32)
  valid = length < n
  here = (jnp.arange(n)[None, :] == length[:, None]) & valid[:, None]
  tokens = jnp.where(here, jnp.asarray(token, completion_tokens.dtype), completion_tokens)
  mask = (m | here).astype(jnp.asarray(completion_mask).dtype)
  return SelfRewardTokens(tokens, mask, length, valid)


def gather_self_reward_logprobs(logprobs: jax.Array, appended: SelfRewardTokens) -> jax.Array:
  """``[B]`` log-probs at the appended column (0 in rows without room)."""
  n = logprobs.shape[1]
  col = jnp.minimum(appended.column, n - 1)
  lp = jnp.take_along_axis(logprobs, col[:, None], axis=1)[:, 0]
  return jnp.where(appended.valid, lp, 0.0)

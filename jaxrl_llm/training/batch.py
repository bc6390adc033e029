"""``RolloutBatch``: the one typed pytree between rollout, ``prepare`` and ``update``.

Rows are completions; ``group_ids [B]`` says which prompt's group each row
belongs to (rollouts write ``row // G``, contiguous groups of G, but the
advantage estimators accept any integer ids). Shapes, ``B`` rows, ``P`` prompt
width, ``N`` completion width:

  prompt_tokens [B, P] int, prompt_mask [B, P]     left-padded prompts
  completion_tokens [B, N] int, completion_mask [B, N]
                                                   completions (mask: up to and
                                                   including the stop token)
  loss_mask [B, N]                                 completion tokens that get a loss:
                                                   completion_mask minus forced
                                                   prefix / hint tokens
  sampler_logprobs [B, N] float                    sampler's log-probs at the sampling
                                                   temperature (0 off the mask)
  rewards [B] float                                verifiable reward (+ shaping)
  group_ids [B] int                                prompt group of each row
  is_off_policy [B] bool                           rows not sampled from the current
                                                   policy (demonstrations, hinted rerolls)

Filled in by ``prepare`` (``None`` until then, never absent):

  old_logprobs [B, N]   trainer log-probs before the update (None when
                        ``make_rl_step(single_update=True)`` skips that forward)
  ref_logprobs [B, N]   frozen reference's log-probs (None without a KL term)
  advantages [B, N]     advantage per token (0 off ``loss_mask``)
  is_weights [B, N]     truncated importance weights (None without TIS)
  old_values, returns   [B, N] critic values and return targets (estimators with a critic)

``extras`` is the one slot for a method's own arrays: a mapping of name to an
array with ``B`` leading rows (so minibatch slicing and micro-batching carry it);
empty by default.
"""

from typing import Any, Mapping, Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

Array = Any  # jax.Array or np.ndarray

BASE_FIELDS = ("prompt_tokens", "prompt_mask", "completion_tokens", "completion_mask",
               "loss_mask", "sampler_logprobs", "rewards", "group_ids", "is_off_policy")
PREPARED_FIELDS = ("old_logprobs", "ref_logprobs", "advantages", "is_weights", "old_values",
                   "returns")


@flax.struct.dataclass
class RolloutBatch:
  """A rollout batch (see the module docstring for every field's shape and meaning)."""

  prompt_tokens: Array
  prompt_mask: Array
  completion_tokens: Array
  completion_mask: Array
  loss_mask: Array
  sampler_logprobs: Array
  rewards: Array
  group_ids: Array
  is_off_policy: Array
  old_logprobs: Optional[Array] = None
  ref_logprobs: Optional[Array] = None
  advantages: Optional[Array] = None
  is_weights: Optional[Array] = None
  old_values: Optional[Array] = None
  returns: Optional[Array] = None
  extras: Mapping[str, Array] = flax.struct.field(default_factory=dict)

  @property
  def num_rows(self) -> int:
    return self.completion_tokens.shape[0]


def make_rollout_batch(prompt_tokens, prompt_mask, completion_tokens, completion_mask,
                       sampler_logprobs, rewards, *, group_size: Optional[int] = None,
                       group_ids=None, loss_mask=None, is_off_policy=None,
                       extras: Optional[Mapping[str, Array]] = None) -> RolloutBatch:
  """Builds and validates a :class:`RolloutBatch` with the usual defaults.

  ``group_ids`` default to ``row // group_size`` (give one of the two);
  ``loss_mask`` defaults to ``completion_mask`` (nothing forced);
  ``is_off_policy`` to all False. Arrays keep their kind (NumPy stays NumPy).
  """
  b = np.shape(completion_tokens)[0]
  if group_ids is None:
    if group_size is None:
      raise ValueError("make_rollout_batch needs group_ids or group_size")
    if not isinstance(group_size, int) or group_size < 1:
      raise ValueError(f"group_size must be a positive int, got {group_size!r}")
    if b % group_size:
      raise ValueError(f"batch of {b} rows is not divisible by group_size={group_size}")
    group_ids = np.arange(b, dtype=np.int32) // group_size
  batch = RolloutBatch(
      prompt_tokens=prompt_tokens, prompt_mask=prompt_mask,
      completion_tokens=completion_tokens, completion_mask=completion_mask,
      loss_mask=completion_mask if loss_mask is None else loss_mask,
      sampler_logprobs=sampler_logprobs, rewards=rewards, group_ids=group_ids,
      is_off_policy=np.zeros((b,), bool) if is_off_policy is None else is_off_policy,
      extras=dict(extras or {}))
  check_rollout_batch(batch, group_size=group_size)
  return batch


def _dtype(x):
  return jnp.result_type(x) if not hasattr(x, "dtype") else x.dtype


def _check(name, x, shape, kind):
  if x is None:
    raise ValueError(f"RolloutBatch.{name} is None; it is a required field")
  if tuple(np.shape(x)) != tuple(shape):
    raise ValueError(f"RolloutBatch.{name} has shape {tuple(np.shape(x))}, expected {tuple(shape)}")
  dt = _dtype(x)
  ok = {"int": jnp.issubdtype(dt, jnp.integer),
        "float": jnp.issubdtype(dt, jnp.floating),
        "bool": dt == jnp.bool_,
        "mask": dt == jnp.bool_ or jnp.issubdtype(dt, jnp.integer)}[kind]
  if not ok:
    want = {"int": "an integer", "float": "a floating", "bool": "a bool",
            "mask": "a bool or integer"}[kind]
    raise ValueError(f"RolloutBatch.{name} must be {want} array, got dtype {dt}")


def check_rollout_batch(batch: RolloutBatch, *, group_size: Optional[int] = None,
                        require: tuple = ()) -> None:
  """Raises ``ValueError`` naming the field on a wrong shape, dtype or missing field.

  Checks static shapes only, so it costs nothing under ``jit``. ``require``
  names prepared fields that must not be None (e.g. ``("advantages",)``);
  ``group_size`` checks that the rows divide into groups of that size.
  """
  if not isinstance(batch, RolloutBatch):
    raise ValueError(f"expected a RolloutBatch, got {type(batch).__name__} (build one with "
                     "training.make_rollout_batch)")
  if np.ndim(batch.prompt_tokens) != 2:
    raise ValueError(f"RolloutBatch.prompt_tokens must be [B, P], got shape "
                     f"{np.shape(batch.prompt_tokens)}")
  if np.ndim(batch.completion_tokens) != 2:
    raise ValueError(f"RolloutBatch.completion_tokens must be [B, N], got shape "
                     f"{np.shape(batch.completion_tokens)}")
  b, p = np.shape(batch.prompt_tokens)
  n = np.shape(batch.completion_tokens)[1]
  _check("prompt_tokens", batch.prompt_tokens, (b, p), "int")
  _check("prompt_mask", batch.prompt_mask, (b, p), "mask")
  _check("completion_tokens", batch.completion_tokens, (b, n), "int")
  _check("completion_mask", batch.completion_mask, (b, n), "mask")
  _check("loss_mask", batch.loss_mask, (b, n), "mask")
  _check("sampler_logprobs", batch.sampler_logprobs, (b, n), "float")
  _check("rewards", batch.rewards, (b,), "float")
  _check("group_ids", batch.group_ids, (b,), "int")
  _check("is_off_policy", batch.is_off_policy, (b,), "bool")
  for name in PREPARED_FIELDS:
    x = getattr(batch, name)
    if x is None:
      if name in require:
        raise ValueError(f"RolloutBatch.{name} is None; run prepare first (needed: "
                         f"{', '.join(require)})")
      continue
    _check(name, x, (b, n), "float")
  for name, x in batch.extras.items():
    for leaf in jax.tree.leaves(x):
      if np.ndim(leaf) < 1 or np.shape(leaf)[0] != b:
        raise ValueError(f"RolloutBatch.extras[{name!r}] must have {b} leading rows, got shape "
                         f"{np.shape(leaf)}")
  if group_size is not None and b % group_size:
    raise ValueError(f"batch of {b} rows is not divisible by group_size={group_size}")


def take_rows(batch: RolloutBatch, rows) -> RolloutBatch:
  """The rows ``rows`` (an int index array) of every field, gathered on device."""
  rows = jnp.asarray(rows)
  return jax.tree.map(lambda x: jnp.take(jnp.asarray(x), rows, axis=0), batch)


def place_batch(batch: RolloutBatch, mesh, rules=None) -> RolloutBatch:
  """Every field laid out with its leading (row) axis over the mesh's batch axes.

  ``jax.device_put`` reshards arrays already on device (e.g. the sampler's
  layout) without a host round trip.
  """
  from jaxrl_llm import sharding
  rules = sharding.TRAIN_RULES if rules is None else rules
  return jax.tree.map(
      lambda x: jax.device_put(x, sharding.batch_sharding(mesh, rules, np.ndim(x), np.shape(x))),
      batch)

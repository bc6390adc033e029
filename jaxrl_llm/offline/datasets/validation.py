"""`Transitions` validation shared by every loader (the checks name the offending field)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from jaxrl_llm.offline.types import Transitions


def require_keys(data: Mapping[str, Any], keys: Sequence[str], source: str) -> None:
  """Raises a ValueError naming the `keys` missing from `data` (and the keys it has)."""
  missing = [k for k in keys if k not in data]
  if missing:
    raise ValueError(
        f"{source}: missing required key(s) {missing}; found keys {sorted(data.keys())}.")


def validate_transitions(data: Transitions, source: str = "dataset") -> Transitions:
  """Checks field shapes, lengths and finiteness; fills `masks = 1 - terminals` if absent.

  Raises a ValueError that names the offending field for: a field whose leading length
  differs from `observations`, observations/next_observations of different shapes, NaN or
  inf values, terminals/timeouts outside {0, 1}, or rewards that are not one value per
  transition.
  """
  if not isinstance(data, Transitions):
    raise ValueError(f"{source}: expected a Transitions, got {type(data).__name__}.")
  n = None
  for name, value in zip(Transitions._fields, data):
    if value is None:
      continue
    shape = np.shape(value)
    if len(shape) == 0:
      raise ValueError(f"{source}: field `{name}` is a scalar; expected a leading transition axis.")
    if n is None:
      n = shape[0]
    elif shape[0] != n:
      raise ValueError(
          f"{source}: field `{name}` has length {shape[0]} but `observations` has length {n}.")
    arr = np.asarray(value)
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
      bad = int(np.argmax(~np.isfinite(arr).reshape(shape[0], -1).all(axis=1)))
      raise ValueError(f"{source}: field `{name}` contains NaN/inf (first at transition {bad}).")
  for name in ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts"):
    if getattr(data, name) is None:
      raise ValueError(f"{source}: required field `{name}` is None.")
  if np.shape(data.observations) != np.shape(data.next_observations):
    raise ValueError(
        f"{source}: field `next_observations` has shape {np.shape(data.next_observations)} but "
        f"`observations` has shape {np.shape(data.observations)}.")
  for name in ("rewards", "terminals", "timeouts", "masks"):
    value = getattr(data, name)
    if value is not None and np.ndim(value) != 1:
      raise ValueError(f"{source}: field `{name}` must be 1-D [N]; got shape {np.shape(value)}.")
  for name in ("terminals", "timeouts", "masks"):
    value = getattr(data, name)
    if value is not None and not np.all(np.isin(np.asarray(value), (0, 1))):
      raise ValueError(f"{source}: field `{name}` must contain only 0/1 values.")
  if data.masks is None:
    data = data._replace(masks=(1.0 - np.asarray(data.terminals, np.float32)).astype(np.float32))
  return data


def f32(x) -> np.ndarray:
  """`x` as a float32 NumPy array (the dtype every loader returns)."""
  return np.asarray(x, dtype=np.float32)

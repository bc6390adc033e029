"""Device meshes and placement of parameters and batches by logical axis names."""

from __future__ import annotations

import math
import os
from typing import Any, Optional, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from jaxrl_llm.sharding.rules import TRAIN_RULES, logical_to_mesh_axes

MESH_AXES = ("data", "fsdp", "tensor")


def maybe_initialize_distributed() -> None:
  """Calls `jax.distributed.initialize()` on a multi-host launch (once, before any jax use).

  Detected by the usual cluster variables (``JAX_COORDINATOR_ADDRESS``, SLURM,
  TPU pod metadata is auto-detected by jax itself when ``JAX_MULTIHOST=1``).
  """
  if os.environ.get("JAX_COORDINATOR_ADDRESS") or os.environ.get("JAX_MULTIHOST") == "1":
    jax.distributed.initialize()


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1,
              devices: Optional[Sequence[jax.Device]] = None) -> Mesh:
  """A ``(data, fsdp, tensor)`` mesh over all (or the given) devices.

  One of the sizes may be -1: it takes whatever the others leave. Device order
  comes from `jax.make_mesh` (ICI-aware on TPU), so the innermost `tensor` axis
  maps to the fastest links.
  """
  devices = list(jax.devices() if devices is None else devices)
  sizes = [data, fsdp, tensor]
  if sum(s == -1 for s in sizes) > 1:
    raise ValueError(f"make_mesh: at most one of data/fsdp/tensor may be -1, got {sizes}")
  known = math.prod(s for s in sizes if s != -1)
  if any(s == 0 or s < -1 for s in sizes):
    raise ValueError(f"make_mesh: sizes must be positive or -1, got data={data}, fsdp={fsdp}, "
                     f"tensor={tensor}")
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(f"make_mesh: {len(devices)} devices are not divisible by {known}")
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(f"make_mesh: data*fsdp*tensor = {math.prod(sizes)} but there are "
                     f"{len(devices)} devices")
  # Auto axes: XLA's sharding propagation (GSPMD) lays out activations from the
  # parameter and batch shardings, so model code needs no per-op annotations.
  axis_types = (AxisType.Auto,) * len(MESH_AXES)
  if devices == list(jax.devices()):
    return jax.make_mesh(tuple(sizes), MESH_AXES, axis_types=axis_types)
  return Mesh(np.asarray(devices).reshape(sizes), MESH_AXES, axis_types=axis_types)


def logical_sharding(logical: Sequence[Optional[str]], mesh: Mesh, rules=TRAIN_RULES,
                     shape: Optional[Sequence[int]] = None) -> NamedSharding:
  """`NamedSharding` for one array from its logical axis names."""
  axes = logical_to_mesh_axes(logical, rules, shape, dict(mesh.shape))
  return NamedSharding(mesh, PartitionSpec(*axes))


def tree_shardings(logical_tree, shapes_tree, mesh: Mesh, rules=TRAIN_RULES):
  """Shardings for a pytree, given its logical `PartitionSpec`s and its shapes."""
  return jax.tree.map(
      lambda spec, x: logical_sharding(tuple(spec), mesh, rules, x.shape),
      logical_tree, shapes_tree, is_leaf=lambda x: isinstance(x, PartitionSpec))


def param_shardings(config, mesh: Mesh, rules=TRAIN_RULES):
  """Shardings of a decoder LM's parameters (`jaxrl_llm.models`) under ``rules``."""
  from jaxrl_llm.models import param_logical_axes, param_shapes  # models sit beside sharding
  return tree_shardings(param_logical_axes(config), param_shapes(config), mesh, rules)


def shard_params(params, config, mesh: Mesh, rules=TRAIN_RULES):
  """Places (or re-lays out) parameters on ``mesh``."""
  return jax.device_put(params, param_shardings(config, mesh, rules))


def batch_sharding(mesh: Mesh, rules=TRAIN_RULES, ndim: int = 2,
                   shape: Optional[Sequence[int]] = None) -> NamedSharding:
  """Sharding of a ``[batch, length, ...]`` array: leading axis over the batch axes."""
  logical = ("batch",) + ("length",) + (None,) * max(ndim - 2, 0)
  return logical_sharding(logical[:ndim], mesh, rules, shape)


def shard_batch(batch: Any, mesh: Mesh, rules=TRAIN_RULES):
  """Places every array of a batch pytree with its leading axis over the batch axes.

  On several hosts each process passes its local slice of the global batch.
  """
  def place(x):
    x = np.asarray(x)
    sharding = batch_sharding(mesh, rules, x.ndim, None if jax.process_count() > 1 else x.shape)
    if jax.process_count() > 1:
      return jax.make_array_from_process_local_data(sharding, x)
    return jax.device_put(x, sharding)
  return jax.tree.map(place, batch)

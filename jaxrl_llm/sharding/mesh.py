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


# Environment variables that ask for a multi-process launch (read before any jax use).
DISTRIBUTED_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def maybe_initialize_distributed(enabled: bool = False, *,
                                 coordinator_address: Optional[str] = None,
                                 num_processes: Optional[int] = None,
                                 process_id: Optional[int] = None,
                                 initialization_timeout: int = 300,
                                 heartbeat_timeout_seconds: Optional[int] = None) -> bool:
  """Calls `jax.distributed.initialize()` on a multi-process launch; returns whether it did.

  Must run once per process before anything touches a device (``jax.devices()``,
  an array, a mesh). A launch is multi-process when ``enabled`` (an entry point's
  ``--config.distributed=True``), when ``coordinator_address`` is given, or when
  the environment says so: ``JAX_COORDINATOR_ADDRESS`` (with ``JAX_NUM_PROCESSES``
  and ``JAX_PROCESS_ID``, read here when the arguments are None) or
  ``JAX_MULTIHOST=1``. Without explicit values jax detects the cluster itself
  (TPU-VM pod metadata, SLURM, Open MPI), so on a TPU pod
  ``enabled=True`` alone suffices. A second call, or one after a launcher
  already initialised, is a no-op that returns True. CPU processes exchange data
  over gloo (``jax_cpu_collectives_implementation``; jax's default since 0.5).
  ``heartbeat_timeout_seconds`` (None: jax's 100 s) is how long a silent process
  is tolerated before the job is torn down; raise it on an oversubscribed machine.
  """
  env = os.environ
  if coordinator_address is None:
    coordinator_address = env.get("JAX_COORDINATOR_ADDRESS") or None
  if num_processes is None and env.get("JAX_NUM_PROCESSES"):
    num_processes = int(env["JAX_NUM_PROCESSES"])
  if process_id is None and env.get("JAX_PROCESS_ID"):
    process_id = int(env["JAX_PROCESS_ID"])
  if not (enabled or coordinator_address or env.get("JAX_MULTIHOST") == "1"):
    return False
  if jax.distributed.is_initialized():
    return True
  if jax.config.jax_cpu_collectives_implementation in (None, "none"):
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  kwargs = {k: v for k, v in dict(coordinator_address=coordinator_address,
                                  num_processes=num_processes, process_id=process_id,
                                  heartbeat_timeout_seconds=heartbeat_timeout_seconds,
                                  ).items() if v is not None}
  jax.distributed.initialize(initialization_timeout=initialization_timeout, **kwargs)
  return True


def is_main_process() -> bool:
  """True on process 0, the one that logs, shows progress bars, exports and plots."""
  return jax.process_index() == 0


def to_host(tree):
  """NumPy copies of a pytree's arrays on this host (e.g. for a Hugging Face export).

  Arrays this process holds entirely are read with ``device_get``; a global array
  of a multi-process mesh is all-gathered first (a collective: every process
  must call this, even if only process 0 uses the result).
  """
  from jax.experimental import multihost_utils

  def read(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(jax.device_get(x))
  return jax.tree.map(read, tree)


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


def process_rows(mesh: Mesh, num_rows: int, rules=TRAIN_RULES) -> slice:
  """The rows of a global ``[num_rows, ...]`` batch that this process's devices hold.

  Under ``batch_sharding`` the leading axis is split over the mesh's batch axes;
  on one process that is every row, ``slice(0, num_rows)``. On several, each
  process loads only these rows and passes them to :func:`shard_batch` with
  ``global_rows=num_rows``. Raises ``ValueError`` if ``num_rows`` does not divide
  over the batch axes or the process's rows are not one contiguous block.
  """
  spec = batch_sharding(mesh, rules, 1, (num_rows,))
  starts = sorted({idx[0].indices(num_rows)[:2]
                   for idx in spec.addressable_devices_indices_map((num_rows,)).values()})
  lo, hi = starts[0][0], starts[-1][1]
  covered = sum(b - a for a, b in starts)
  if covered != hi - lo:
    raise ValueError(f"process_rows: process {jax.process_index()} holds rows {starts}, not one "
                     f"contiguous block; order the mesh so each process's devices are adjacent "
                     f"on the batch axes")
  return slice(lo, hi)


def shard_batch(batch: Any, mesh: Mesh, rules=TRAIN_RULES, *, global_rows: Optional[int] = None):
  """Places every array of a batch pytree with its leading axis over the batch axes.

  On several processes each one passes only its rows, ``batch[process_rows(mesh,
  B)]``, and the global arrays are assembled with
  ``jax.make_array_from_process_local_data`` (no process ever holds all B rows);
  ``global_rows=B`` states the global row count (checked), else it is inferred
  from the local rows. On one process ``global_rows`` must equal the rows given.
  """
  def place(x):
    x = np.asarray(x)
    if global_rows is not None and jax.process_count() == 1 and x.shape[0] != global_rows:
      raise ValueError(f"shard_batch: global_rows={global_rows} but the one process passed "
                       f"{x.shape[0]} rows")
    if jax.process_count() > 1:
      shape = None if global_rows is None else (int(global_rows),) + x.shape[1:]
      return jax.make_array_from_process_local_data(
          batch_sharding(mesh, rules, x.ndim, shape), x, shape)
    return jax.device_put(x, batch_sharding(mesh, rules, x.ndim, x.shape))
  return jax.tree.map(place, batch)

"""Manual-axis ("varying") types inside `shard_map`, for the fused op's loops and VJP.

Inside `shard_map` every value records the mesh axes it varies over. A loop carry
started from constants is invariant while its body output varies with the
per-device inputs, and a gradient computed from per-device data varies where its
primal input did not (e.g. ``d hidden`` from one vocabulary shard of ``W``). These
helpers make the types agree; outside `shard_map` they are the identity.
"""

from __future__ import annotations

import jax


def varying_axes(x) -> frozenset:
  """Manual mesh axes `x` varies over (empty outside `shard_map`)."""
  aval = jax.typeof(x)
  mat = getattr(aval, "mat", None)  # jax >= 0.10: the manual-axis type
  if mat is not None:
    return frozenset(getattr(mat, "varying", ()) or ())
  return frozenset(getattr(aval, "vma", ()) or ())  # older jax


def varying_like(tree, *arrays):
  """`tree` cast to vary over every axis that one of `arrays` varies over."""
  axes = frozenset()
  for x in arrays:
    if x is not None:
      axes |= varying_axes(x)
  if not axes:
    return tree

  def cast(x):
    missing = axes - varying_axes(x)
    return jax.lax.pcast(x, tuple(sorted(missing)), to="varying") if missing else x

  return jax.tree.map(cast, tree)


def sum_to_primal(grad, primal):
  """Sums `grad` over the axes it varies over but `primal` does not.

  A primal that is the same on every device of an axis received partial
  gradients from each of them: its cotangent is their sum.
  """
  if grad is None or primal is None:
    return grad
  extra = varying_axes(grad) - varying_axes(primal)
  return jax.lax.psum(grad, tuple(sorted(extra))) if extra else grad


def shape_dtype_struct(shape, dtype, *arrays) -> jax.ShapeDtypeStruct:
  """A `pallas_call` out_shape varying over every axis one of `arrays` varies over."""
  axes = frozenset()
  first = None
  for x in arrays:
    if x is not None:
      axes |= varying_axes(x)
      first = x if first is None else first
  if not axes:
    return jax.ShapeDtypeStruct(shape, dtype)
  mat = jax.typeof(first).mat.update(varying=axes)
  return jax.ShapeDtypeStruct(shape, dtype, manual_axis_type=mat)

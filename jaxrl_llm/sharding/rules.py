"""Logical-axis rule tables: logical array axis name -> mesh axis (or axes, or None).

Parameters and activations are named by what their axes mean (``embed``,
``vocab``, ``heads`` ...); a rules table decides how each meaning is laid out
on the (``data``, ``fsdp``, ``tensor``) mesh. Swapping the table switches
between FSDP+tensor parallel training and the FSDP-free sampling layout
without touching model code.
"""

from __future__ import annotations

from typing import Optional, Sequence, Union

MeshAxes = Union[None, str, tuple[str, ...]]
Rules = tuple[tuple[str, MeshAxes], ...]

# Training: parameters sharded over `fsdp` along the model dimension (ZeRO-3
# style, all-gathered per layer by XLA) and over `tensor` along heads / MLP /
# vocab (Megatron-style tensor parallelism); the batch over data x fsdp.
TRAIN_RULES: Rules = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("vocab", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("mlp", "tensor"),
    ("layers", None),
    ("norm", None),
    ("cache_length", None),
)

# Sampling: no FSDP (weights are read every decode step, so gathering them each
# step would dominate); tensor parallel only, the batch over data x fsdp.
SAMPLING_RULES: Rules = tuple(
    (name, None if name == "embed" else axes) for name, axes in TRAIN_RULES)


def rules_dict(rules: Sequence[tuple[str, MeshAxes]]) -> dict[str, MeshAxes]:
  out: dict[str, MeshAxes] = {}
  for name, axes in rules:
    if name in out:
      raise ValueError(f"logical axis {name!r} appears twice in the rules table")
    out[name] = axes
  return out


def logical_to_mesh_axes(
    logical: Sequence[Optional[str]],
    rules: Sequence[tuple[str, MeshAxes]],
    shape: Optional[Sequence[int]] = None,
    mesh_shape: Optional[dict[str, int]] = None,
) -> tuple[MeshAxes, ...]:
  """Maps a tuple of logical axis names to mesh axes.

  A mesh axis is used at most once per array. When ``shape`` and
  ``mesh_shape`` are given, a mesh axis whose size does not divide the array
  dimension is dropped for that dimension (the dimension stays replicated over
  it), e.g. 14 heads on a tensor axis of 4.
  """
  table = rules_dict(rules)
  used: set[str] = set()
  out = []
  for dim, name in enumerate(logical):
    if name is None:
      out.append(None)
      continue
    if name not in table:
      raise ValueError(f"logical axis {name!r} has no rule; known: {sorted(table)}")
    axes = table[name]
    axes = () if axes is None else ((axes,) if isinstance(axes, str) else tuple(axes))
    kept = []
    size = 1
    for ax in axes:
      if ax in used:
        continue
      ax_size = 1 if mesh_shape is None else mesh_shape.get(ax, 1)
      if shape is not None and mesh_shape is not None and shape[dim] % (size * ax_size):
        continue
      kept.append(ax)
      size *= ax_size
    used.update(kept)
    out.append(None if not kept else (kept[0] if len(kept) == 1 else tuple(kept)))
  return tuple(out)

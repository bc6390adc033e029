"""LoRA: low-rank adapters on the decoder's projections (Hu et al. 2021, arXiv:2106.09685).

A target projection ``W [*K, *F]`` (``K``: its input axes, ``F``: its output axes) gets

    W' = W + s · A·B,    A [*K, r],  B [r, *F],  s = alpha / r

with ``A ~ N(0, 1/d_in)`` (``d_in = prod K``) and ``B = 0``, so the adapted model
equals the base model at initialisation. The base weights are frozen: only
``A`` and ``B`` are trained and only they get optimiser state.

Two ways to run an adapted model, equal up to float rounding:

* **merged** (`merge`): ``W'`` is materialised once and the ordinary model runs
  on it. Used to sample (merge once per rollout: decoding then costs what the base
  model costs) and to export through ``save_hf``.
* **unmerged** (`unmerged`): the layer's parameters carry ``{name}_lora_a`` and
  ``{name}_lora_b`` (= s·B) next to ``{name}_kernel``, and the block computes
  ``x·W + (x·A)·(s·B)`` (``transformer._linear``). Used in the training loss: with
  the base under ``stop_gradient`` the backward pass never forms a full-size
  ``dL/dW``, only the rank-r products (a merged loss would compute ``dL/dW'`` for
  every target and then project it onto A and B).

The trainable pytree is the adapters: `LoraParams` holds the frozen ``base``,
the ``adapters`` and the static scale, and `trainable` / `replace_trainable` /
`model_params` let one step builder serve full fine-tuning and LoRA (without
LoRA they are the identity, so that path is unchanged).

Why not qwix (the JAX ecosystem's LoRA, used by Tunix; checked: qwix 0.1.8 installs
from the package index): qwix adds adapters by intercepting ``dot_general`` /
``einsum`` calls made inside a Flax (linen/nnx) module's ``__call__`` and finding
the weight among that module's own parameters (``flax_util.find_param``), then
creating the adapter as a parameter of that module. This model computes outside
Flax: pure functions over a params dict, where each kernel is reshaped before its
matmul (``transformer._dense``) and the layers are sliced out of a stacked
``[L, ...]`` array by ``lax.scan`` / `split_layers`; there is no module whose
parameter the matmul operand is, so qwix's interception finds nothing to adapt.
A functional adapter tree with the same leading ``layers`` axis as the
weights fits the model, the sharding rules and the optax/orbax state as is.

Adapter tree (leading ``layers`` axis like ``params["layers"]``)::

    {"attn": {"q": {"a": [L, D, r], "b": [L, r, H, Dh]}, ..., "o": {"a": [L, H, Dh, r], "b": [L, r, D]}},
     "mlp":  {"gate": {"a": [L, D, r], "b": [L, r, I]}, ..., "down": {"a": [L, I, r], "b": [L, r, D]}}}
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Optional, Sequence

import flax.struct
import jax
import jax.numpy as jnp

# target name -> (group in a layer's params, kernel key, number of input axes of the kernel)
TARGETS = {
    "q": ("attn", "q_kernel", 1),
    "k": ("attn", "k_kernel", 1),
    "v": ("attn", "v_kernel", 1),
    "o": ("attn", "o_kernel", 2),
    "gate": ("mlp", "gate_kernel", 1),
    "up": ("mlp", "up_kernel", 1),
    "down": ("mlp", "down_kernel", 1),
}
ALL_TARGETS = tuple(TARGETS)


@dataclasses.dataclass(frozen=True)
class LoraConfig:
  """``rank`` r >= 1, ``alpha`` (scale s = alpha / r), ``targets`` (names of `TARGETS`).

  ``merged_sampling``: rollouts sample from the merged weights (True) or run the
  unmerged adapters in every decode step (False).
  """

  rank: int
  alpha: float
  targets: tuple = ALL_TARGETS
  merged_sampling: bool = True

  def __post_init__(self):
    if not isinstance(self.rank, int) or isinstance(self.rank, bool) or self.rank < 1:
      raise ValueError(f"lora.rank must be an int >= 1, got {self.rank!r}")
    if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
      raise ValueError(f"lora.alpha must be a number > 0, got {self.alpha!r}")
    targets = tuple(self.targets)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets or len(set(targets)) != len(targets):
      raise ValueError(f"lora.targets must be distinct names from {', '.join(ALL_TARGETS)} "
                       f"(at least one), got {list(targets)}")
    object.__setattr__(self, "targets", targets)

  @property
  def scale(self) -> float:
    return float(self.alpha) / self.rank


@flax.struct.dataclass
class LoraParams:
  """A LoRA-adapted model: frozen ``base`` params, trainable ``adapters``, static ``scale``."""

  base: Any
  adapters: Any
  scale: float = flax.struct.field(pytree_node=False)


def is_lora(params) -> bool:
  return isinstance(params, LoraParams)


def init(lora_config: LoraConfig, params, key: jax.Array, dtype=None) -> dict:
  """Adapters for ``params`` (a model pytree): ``A ~ N(0, 1/d_in)``, ``B = 0`` for each target.

  ``dtype``: the adapters' dtype (default: each target kernel's dtype).
  """
  layers = params["layers"]
  if isinstance(layers, (tuple, list)):
    raise ValueError("lora.init needs the stacked params['layers'] (not split_layers of it)")
  adapters: dict = {}
  keys = jax.random.split(key, len(lora_config.targets))
  for k, name in zip(keys, lora_config.targets):
    group, kernel_key, in_dims = TARGETS[name]
    w = layers[group][kernel_key]
    n_layers, in_shape, out_shape = w.shape[0], w.shape[1:1 + in_dims], w.shape[1 + in_dims:]
    dt = dtype or w.dtype
    a = jax.random.normal(k, (n_layers, *in_shape, lora_config.rank), jnp.float32)
    a = (a / math.sqrt(math.prod(in_shape))).astype(dt)
    b = jnp.zeros((n_layers, lora_config.rank, *out_shape), dt)
    adapters.setdefault(group, {})[name] = {"a": a, "b": b}
  return adapters


def wrap(lora_config: LoraConfig, params, key: jax.Array, dtype=None) -> LoraParams:
  """``LoraParams(base=params, adapters=init(...), scale=alpha/r)``."""
  return LoraParams(params, init(lora_config, params, key, dtype), lora_config.scale)


def _check(params, adapters):
  for group, named in adapters.items():
    for name, ab in named.items():
      if name not in TARGETS or TARGETS[name][0] != group:
        raise ValueError(f"unknown LoRA adapter {group}/{name}; known: "
                         f"{', '.join(f'{g}/{n}' for n, (g, _, _) in TARGETS.items())}")
      w = params["layers"][group][TARGETS[name][1]]
      in_dims = TARGETS[name][2]
      want_a = w.shape[:1 + in_dims] + ab["a"].shape[-1:]
      want_b = w.shape[:1] + ab["a"].shape[-1:] + w.shape[1 + in_dims:]
      if ab["a"].shape != want_a or ab["b"].shape != want_b:
        raise ValueError(f"LoRA adapter {group}/{name}: a {ab['a'].shape}, b {ab['b'].shape} do "
                         f"not fit kernel {w.shape} (expected a {want_a}, b {want_b})")


def delta(a: jax.Array, b: jax.Array, in_dims: int) -> jax.Array:
  """``A·B`` contracted over the rank: ``[L, *K, r] x [L, r, *F] -> [L, *K, *F]`` (float32)."""
  n, r = a.shape[0], a.shape[-1]
  k_shape, f_shape = a.shape[1:1 + in_dims], b.shape[2:]
  prod = jnp.matmul(a.astype(jnp.float32).reshape(n, -1, r), b.astype(jnp.float32).reshape(n, r, -1))
  return prod.reshape((n, *k_shape, *f_shape))


def _with_layers(params, new_layers):
  return {**params, "layers": new_layers}


def merge(params, adapters, scale: float):
  """The merged model params: every adapted kernel ``W`` replaced by ``W + scale · A·B``."""
  _check(params, adapters)
  layers = dict(params["layers"])
  for group, named in adapters.items():
    layers[group] = dict(layers[group])
    for name, ab in named.items():
      _, kernel_key, in_dims = TARGETS[name]
      w = layers[group][kernel_key]
      layers[group][kernel_key] = (w.astype(jnp.float32)
                                   + scale * delta(ab["a"], ab["b"], in_dims)).astype(w.dtype)
  return _with_layers(params, layers)


def unmerged(params, adapters, scale: float):
  """The model params with the adapters beside the kernels: ``{name}_lora_a = A``,
  ``{name}_lora_b = scale · B``; the block then adds ``(x·A)·(s·B)`` to ``x·W``."""
  _check(params, adapters)
  layers = dict(params["layers"])
  for group, named in adapters.items():
    layers[group] = dict(layers[group])
    for name, ab in named.items():
      layers[group][f"{name}_lora_a"] = ab["a"]
      layers[group][f"{name}_lora_b"] = (scale * ab["b"].astype(jnp.float32)).astype(ab["b"].dtype)
  return _with_layers(params, layers)


# --------------------------------------------- one step builder for full FT and LoRA
def trainable(params):
  """The differentiated (and optimised) part: the adapters of `LoraParams`, else ``params``."""
  return params.adapters if is_lora(params) else params


def replace_trainable(params, new):
  """``params`` with its trainable part replaced by ``new``."""
  return params.replace(adapters=new) if is_lora(params) else new


def model_params(params, trainable_part=None, *, merged: bool = False):
  """Params the model functions take, with gradients only through ``trainable_part``.

  Without LoRA: ``trainable_part`` (or ``params``) itself. With `LoraParams`: the
  stop-gradient base with the adapters (``trainable_part``, default
  ``params.adapters``), `unmerged` (the training path) or `merge`\\ d.
  """
  if not is_lora(params):
    return params if trainable_part is None else trainable_part
  adapters = params.adapters if trainable_part is None else trainable_part
  base = jax.lax.stop_gradient(params.base)
  return (merge if merged else unmerged)(base, adapters, params.scale)


def merged(params):
  """Plain model params (the adapters merged in): for sampling and ``save_hf``."""
  return model_params(params, merged=True)


def base_params(params):
  """The frozen base model (``params`` itself without LoRA)."""
  return params.base if is_lora(params) else params


def count_params(tree) -> int:
  """Number of scalars in a pytree."""
  return int(sum(math.prod(x.shape) for x in jax.tree.leaves(tree)))


def from_config(cfg) -> Optional[LoraConfig]:
  """A `LoraConfig` from a config block (``rank`` 0 or a missing block: None, LoRA off)."""
  if cfg is None:
    return None
  cfg = dict(cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
  known = {"rank", "alpha", "targets", "merged_sampling"}
  extra = sorted(set(cfg) - known)
  if extra:
    raise ValueError(f"unknown lora options {extra}; known: {', '.join(sorted(known))}")
  if not cfg.get("rank"):
    return None
  targets: Sequence[str] = cfg.get("targets", ALL_TARGETS)
  if isinstance(targets, str):
    targets = tuple(t.strip() for t in targets.split(",") if t.strip())
  return LoraConfig(rank=cfg["rank"], alpha=cfg.get("alpha", 2 * cfg["rank"]),
                    targets=tuple(targets), merged_sampling=cfg.get("merged_sampling", True))


def for_sampling(params, merged_weights: bool = True):
  """The policy a sampler runs: `merged` weights, or the base with the adapters
  `unmerged` beside its kernels (no stop-gradient, no copy of the base)."""
  if not is_lora(params):
    return params
  if merged_weights:
    return merge(params.base, params.adapters, params.scale)
  return unmerged(params.base, params.adapters, params.scale)


def logical_axes(config, adapters):
  """`PartitionSpec`s of logical axis names for ``adapters``: ``A`` takes its kernel's
  ``layers`` and input axes, ``B`` its ``layers`` and output axes; the rank axis is
  unnamed (replicated). Use with ``sharding.tree_shardings``."""
  from jaxrl_llm.models.transformer import param_logical_axes
  from jax.sharding import PartitionSpec
  kernel_axes = param_logical_axes(config)["layers"]
  out: dict = {}
  for group, named in adapters.items():
    for name in named:
      _, kernel_key, in_dims = TARGETS[name]
      spec = tuple(kernel_axes[group][kernel_key])
      out.setdefault(group, {})[name] = {
          "a": PartitionSpec(*spec[:1 + in_dims], None),
          "b": PartitionSpec(spec[0], None, *spec[1 + in_dims:])}
  return out

"""Meshes, logical-axis rules and the sharded forward on 8 fake CPU devices."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest
from jax.sharding import PartitionSpec as P

from jaxrl_llm import models, sharding


def test_there_are_eight_fake_devices():
  assert len(jax.devices()) == 8, "tests/conftest.py must set XLA_FLAGS before jax is imported"


def test_make_mesh_sizes_and_errors():
  mesh = sharding.make_mesh(data=2, fsdp=-1, tensor=2)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
  assert dict(sharding.make_mesh().shape) == {"data": 1, "fsdp": 8, "tensor": 1}
  with pytest.raises(ValueError, match="not divisible"):
    sharding.make_mesh(data=3)
  with pytest.raises(ValueError, match="at most one"):
    sharding.make_mesh(data=-1, fsdp=-1)
  with pytest.raises(ValueError, match="but there are 8 devices"):
    sharding.make_mesh(data=2, fsdp=2, tensor=1)


def test_rules_map_logical_names_and_skip_indivisible_dims():
  mesh_shape = {"data": 2, "fsdp": 2, "tensor": 4}
  rules = sharding.TRAIN_RULES
  assert sharding.logical_to_mesh_axes(("batch", "length"), rules) == (("data", "fsdp"), None)
  # 14 heads do not divide over tensor=4: replicated on that dim, embed still on fsdp.
  assert sharding.logical_to_mesh_axes(("embed", "heads", "head_dim"), rules, (64, 14, 8),
                                       mesh_shape) == ("fsdp", None, None)
  assert sharding.logical_to_mesh_axes(("embed", "heads"), rules, (64, 16), mesh_shape) == (
      "fsdp", "tensor")
  # Sampling layout drops FSDP from the weights.
  assert sharding.logical_to_mesh_axes(("embed", "mlp"), sharding.SAMPLING_RULES) == (None, "tensor")
  with pytest.raises(ValueError, match="logical axis 'experts' has no rule"):
    sharding.logical_to_mesh_axes(("experts",), rules)


@pytest.mark.parametrize("preset", ["tiny-llama", "tiny-qwen2"])
def test_sharded_forward_equals_single_device(preset):
  config = models.get_preset(preset)
  params = models.init_params(config, jax.random.key(0))
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, config.vocab_size, (4, 12)).astype(np.int32)
  mask = (np.arange(12)[None] >= np.array([[0], [3], [5], [1]])).astype(np.int32)
  expected = np.asarray(models.forward(config, params, tokens, mask))

  mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
  p_shard = sharding.param_shardings(config, mesh)
  sharded_params = sharding.shard_params(params, config, mesh)
  batch = sharding.shard_batch({"tokens": tokens, "mask": mask}, mesh)
  fwd = jax.jit(lambda p, b: models.forward(config, p, b["tokens"], b["mask"]),
                in_shardings=(p_shard, sharding.batch_sharding(mesh)),
                out_shardings=sharding.logical_sharding(("batch", "length", "vocab"), mesh))
  got = fwd(sharded_params, batch)

  # The parameters really are split across devices.
  q = sharded_params["layers"]["attn"]["q_kernel"]
  assert q.sharding.spec == P(None, "fsdp", "tensor", None)
  assert q.addressable_shards[0].data.shape == (2, 16, 2, 8)  # [L, D/fsdp, H/tensor, Dh]
  up = sharded_params["layers"]["mlp"]["up_kernel"]
  assert up.addressable_shards[0].data.shape == (2, 16, 32)
  assert batch["tokens"].sharding.spec == P(("data", "fsdp"), None)
  assert got.sharding.spec == P(("data", "fsdp"), None, "tensor")
  valid = mask.astype(bool)
  assert np.abs(np.asarray(got) - expected)[valid].max() <= 1e-5


def test_sampling_layout_replicates_over_fsdp():
  config = models.get_preset("tiny-llama")
  mesh = sharding.make_mesh(data=1, fsdp=4, tensor=2)
  shards = sharding.param_shardings(config, mesh, sharding.SAMPLING_RULES)
  assert shards["layers"]["attn"]["q_kernel"].spec == P(None, None, "tensor", None)
  assert shards["embedding"].spec == P("tensor", None)

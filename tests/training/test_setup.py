"""setup.init_process: the keep_freed_host_memory knob (the setting is tested in
tests/runs/test_host_memory.py; conftest records the calls instead of applying it)."""

import ml_collections
import numpy as np
import pytest

from jaxrl_llm.training import setup


def test_init_process_applies_the_allocator_setting_only_when_the_knob_is_on():
  calls = setup.keep_freed_host_memory.calls
  assert setup.init_process(ml_collections.ConfigDict({"keep_freed_host_memory": False})) is False
  assert calls == []
  setup.init_process(ml_collections.ConfigDict({"keep_freed_host_memory": True}))
  assert len(calls) == 1
  setup.init_process(ml_collections.ConfigDict({}))  # default: on
  assert len(calls) == 2


def test_init_process_passes_cpu_devices_on(monkeypatch):
  seen = []
  monkeypatch.setattr(setup, "split_cpu_devices", seen.append)
  setup.init_process(ml_collections.ConfigDict({"cpu_devices": 2, "mesh": (2, 1, 1)}))
  setup.init_process(ml_collections.ConfigDict({}))
  assert seen == [2, 0]
  with pytest.raises(ValueError, match="config.cpu_devices=2 splits the CPU .* give config.mesh"):
    setup.init_process(ml_collections.ConfigDict({"cpu_devices": 2, "mesh": ()}))
  assert seen == [2, 0]


def test_init_process_takes_a_rollout_mesh_as_the_user_of_split_cpu_devices(monkeypatch):
  seen = []
  monkeypatch.setattr(setup, "split_cpu_devices", seen.append)
  setup.init_process(ml_collections.ConfigDict({"cpu_devices": 2, "mesh": (),
                                                "rollout_mesh": (2, 1, 1)}))
  assert seen == [2]


def _compiles_during(fn):
  """How many XLA compilations run while ``fn()`` runs (jax.monitoring events)."""
  import jax
  events = []
  listener = lambda name, secs, **kw: events.append(name)
  jax.monitoring.register_event_duration_secs_listener(listener)
  try:
    fn()
  finally:
    jax.monitoring.unregister_event_duration_listener(listener)
  return sum(name == "/jax/core/compile/backend_compile_duration" for name in events)


@pytest.mark.parametrize("use_mesh", [False, True])
def test_commit_state_spares_the_second_call_a_recompile(use_mesh):
  """An uncommitted leaf (the optimiser count from jnp.zeros) comes back committed from
  the first call of a jitted, donating update; committing it first keeps one compile."""
  import jax
  import jax.numpy as jnp
  from jaxrl_llm import sharding

  mesh = sharding.make_mesh(8, 1, 1) if use_mesh else None

  def fresh():
    w = jnp.arange(16.0).reshape(8, 2)
    if mesh is not None:
      w = jax.device_put(w, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data")))
    else:
      w = jax.device_put(w, jax.devices()[0])
    return {"w": w, "count": jnp.zeros((), jnp.int32)}

  step = lambda s: {"w": s["w"] * 2.0, "count": s["count"] + 1}
  for commit, second_call_compiles in ((False, 1), (True, 0)):
    update = jax.jit(step, donate_argnums=0)
    state = setup.commit_state(fresh(), mesh) if commit else fresh()
    if commit:
      for x in jax.tree.leaves(state):
        assert x.committed
        if mesh is not None:
          assert x.sharding.mesh == mesh
    state = update(state)
    holder = [state]
    assert _compiles_during(lambda: holder.append(update(holder[0]))) == second_call_compiles
    np.testing.assert_array_equal(holder[1]["w"], np.arange(16.0).reshape(8, 2) * 4)
    assert int(holder[1]["count"]) == 2


def test_rollout_placement_same_mesh_and_separate_mesh():
  import jax
  import jax.numpy as jnp
  from jaxrl_llm import models, sharding, training

  config = models.ModelConfig(family="llama", vocab_size=32, hidden_size=16,
                              intermediate_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                              head_dim=8)
  params = models.init_params(config, jax.random.key(0))
  # Unset, empty or equal to the training mesh: the sampler runs where training does.
  for c in ({}, {"rollout_mesh": ()}, {"mesh": (), "rollout_mesh": ()}):
    p = setup.rollout_placement(ml_collections.ConfigDict(c), config, None)
    assert p.mesh is None and p.to_rollout(params) is params
  train_mesh = sharding.make_mesh(8, 1, 1)
  same = setup.rollout_placement(
      ml_collections.ConfigDict({"mesh": (8, 1, 1), "rollout_mesh": (8, 1, 1)}), config,
      train_mesh)
  assert same.mesh is train_mesh
  # A separate rollout mesh: params go there by the rules, the batch comes back to the
  # default device, values unchanged.
  p = setup.rollout_placement(ml_collections.ConfigDict({"mesh": (), "rollout_mesh": (8, 1, 1)}),
                              config, None)
  assert p.mesh.shape == {"data": 8, "fsdp": 1, "tensor": 1}
  placed = p.to_rollout(params)
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(placed)):
    assert b.sharding.mesh == p.mesh
    np.testing.assert_array_equal(a, b)
  other = {"adapter": jnp.ones((4, 2))}  # not the plain param tree: replicated
  assert p.to_rollout(other)["adapter"].sharding.is_fully_replicated
  rows = 16
  batch = training.make_rollout_batch(
      jnp.ones((rows, 3), jnp.int32), jnp.ones((rows, 3), jnp.int32),
      jnp.ones((rows, 4), jnp.int32), jnp.ones((rows, 4), bool), jnp.zeros((rows, 4)),
      jnp.arange(rows, dtype=jnp.float32),
      group_ids=jnp.arange(rows, dtype=jnp.int32) // 4)
  on_mesh = training.place_batch(batch, p.mesh)
  back = p.to_train(on_mesh)
  for x in jax.tree.leaves(back):
    assert x.sharding.device_set == {jax.devices()[0]}
  np.testing.assert_array_equal(back.rewards, np.arange(rows))


@pytest.mark.parametrize("shape,message", [
    ((3, 1, 1), r"config.rollout_mesh=\(3, 1, 1\): make_mesh: data\*fsdp\*tensor = 3 but"),
    ((8, 1, 1, 1), r"config.rollout_mesh=\(8, 1, 1, 1\): "),
])
def test_rollout_placement_names_a_bad_rollout_mesh(shape, message):
  from jaxrl_llm import models
  config = models.ModelConfig(family="llama", vocab_size=32, hidden_size=16,
                              intermediate_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                              head_dim=8)
  with pytest.raises(ValueError, match=message):
    setup.rollout_placement(ml_collections.ConfigDict({"mesh": (), "rollout_mesh": shape}),
                            config, None)

"""One-process behaviour of the multi-process helpers (the two-process run itself is
tests/training/test_multihost.py): no initialisation without a request, a process's
rows, global_rows checks, to_host, process-0-only metrics, process-local examples."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxrl_llm import data, sharding
from jaxrl_llm.runs import metrics as metrics_lib, workdir
from jaxrl_llm.training import setup


def test_no_initialisation_without_a_request(monkeypatch):
  for k in sharding.DISTRIBUTED_ENV + ("JAX_MULTIHOST",):
    monkeypatch.delenv(k, raising=False)
  calls = []
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  assert sharding.maybe_initialize_distributed() is False
  assert setup.init_distributed(ConfigDict({"distributed": False})) is False
  assert setup.init_distributed(ConfigDict({})) is False  # configs without the field
  assert calls == []


def test_environment_and_flag_request_initialisation(monkeypatch):
  calls = []
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
  monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
  monkeypatch.setenv("JAX_COORDINATOR_ADDRESS", "10.0.0.1:1234")
  monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
  monkeypatch.setenv("JAX_PROCESS_ID", "3")
  assert sharding.maybe_initialize_distributed() is True
  assert calls[-1] == {"coordinator_address": "10.0.0.1:1234", "num_processes": 4,
                       "process_id": 3, "initialization_timeout": 300}
  for k in sharding.DISTRIBUTED_ENV:
    monkeypatch.delenv(k)
  # config.distributed=True alone: jax detects the cluster (TPU metadata, SLURM, MPI).
  assert setup.init_distributed(ConfigDict({"distributed": True})) is True
  assert calls[-1] == {"initialization_timeout": 300}
  monkeypatch.setattr(jax.distributed, "is_initialized", lambda: True)
  assert sharding.maybe_initialize_distributed(True) is True and len(calls) == 2


def test_one_process_holds_every_row_and_global_rows_is_checked():
  mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
  assert sharding.process_rows(mesh, 8) == slice(0, 8)
  x = np.arange(16, dtype=np.float32).reshape(8, 2)
  placed = sharding.shard_batch({"x": x}, mesh, global_rows=8)["x"]
  np.testing.assert_array_equal(sharding.to_host(placed), x)
  assert len(placed.sharding.device_set) == 8
  with pytest.raises(ValueError, match="global_rows=16 but the one process passed 8 rows"):
    sharding.shard_batch({"x": x}, mesh, global_rows=16)


def test_to_host_gives_numpy_copies():
  tree = {"a": jnp.arange(3.0), "b": (np.ones(2, np.int32),)}
  out = sharding.to_host(tree)
  assert isinstance(out["a"], np.ndarray) and isinstance(out["b"][0], np.ndarray)
  np.testing.assert_array_equal(out["a"], [0.0, 1.0, 2.0])


def test_process_examples_loads_only_this_process_rows(monkeypatch):
  source = data.ArithmeticTask(digits=2, min_digits=1, operators="+", split="train",
                               test_fraction=0.1)
  position = data.DataPosition(5, 16)
  whole, after = data.take_batch(source, position, 8)
  mine, rows, nxt = setup.process_examples(source, position, 8, None)
  assert rows == slice(0, 8) and mine == whole and tuple(nxt) == tuple(after) == (5, 24)
  # As process 1 of 2: rows 4..7 of the global batch, loaded alone; the cursor still
  # moves by the global batch.
  loaded = []

  class Recording:
    def examples(self, seed, start, count):
      loaded.append((start, count))
      return source.examples(seed, start, count)

  monkeypatch.setattr(sharding, "process_rows", lambda mesh, n: slice(4, 8))
  mine, rows, nxt = setup.process_examples(Recording(), position, 8, mesh=object())
  assert rows == slice(4, 8) and loaded == [(20, 4)]
  assert mine == whole[4:8] and tuple(nxt) == (5, 24)


def test_several_processes_need_a_mesh(monkeypatch):
  setup.check_distributed_mesh(None)  # one process: fine
  monkeypatch.setattr(jax, "process_count", lambda: 2)
  with pytest.raises(ValueError, match="2 processes but config.mesh is empty"):
    setup.check_distributed_mesh(None)


def test_only_process_zero_writes_metrics(tmp_path, monkeypatch):
  c = ConfigDict({"workdir": str(tmp_path), "tensorboard": False})
  assert isinstance(workdir.metric_writer(c), metrics_lib.MetricWriter)
  monkeypatch.setattr(jax, "process_index", lambda: 1)
  writer = workdir.metric_writer(c)
  assert isinstance(writer, metrics_lib.NullMetricWriter) and writer.backends == ()
  writer.write(1, {"train/loss": 1.0})
  writer.truncate_after(0)
  writer.close()
  assert writer.path == os.path.join(str(tmp_path), "metrics.jsonl")
  assert os.listdir(tmp_path) == []

"""setup.init_process: the keep_freed_host_memory knob (the setting is tested in
tests/runs/test_host_memory.py; conftest records the calls instead of applying it)."""

import ml_collections
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

"""runs.split_cpu_devices: the CPU backend as n devices, checked before JAX starts."""

import os
import subprocess
import sys

import jax
import pytest

from jaxrl_llm.runs.cpu_devices import split_cpu_devices

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_split_cpu_devices_gives_that_many_devices_in_a_fresh_process():
  code = ("from jaxrl_llm.runs.cpu_devices import split_cpu_devices\n"
          "split_cpu_devices(3)\n"
          "import jax\n"
          "print(jax.device_count(), jax.devices()[0].platform)\n")
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       check=True)
  assert out.stdout.split() == ["3", "cpu"]


def test_split_cpu_devices_zero_is_a_no_op_and_bad_values_are_named():
  jax.devices()  # the backend of this process is up
  split_cpu_devices(0)
  for bad in (-1, 1.5, True, "2"):
    with pytest.raises(ValueError, match="cpu_devices must be an int >= 0"):
      split_cpu_devices(bad)
  with pytest.raises(RuntimeError, match="cpu_devices=2 must be set before JAX starts"):
    split_cpu_devices(2)

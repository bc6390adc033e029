"""benchmarks/gpu_check.sh without a GPU: it must stop at once with a clear message.

(The GPU path itself needs an NVIDIA GPU and is not exercised by the suite.)
"""

import os
import stat
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu_check.sh")


def _run(env_extra, timeout=120):
  env = dict(os.environ, **env_extra)
  start = time.perf_counter()
  proc = subprocess.run(["bash", SCRIPT], capture_output=True, text=True, env=env,
                        timeout=timeout, cwd=ROOT)
  return proc, time.perf_counter() - start


def _fake_smi(tmp_path, listing, rc=0):
  path = tmp_path / "nvidia-smi"
  path.write_text(f"#!/bin/sh\necho '{listing}'\nexit {rc}\n")
  path.chmod(path.stat().st_mode | stat.S_IEXEC)
  return str(path)


def test_no_nvidia_smi_exits_2_at_once(tmp_path):
  proc, elapsed = _run({"NVIDIA_SMI": str(tmp_path / "no-such-nvidia-smi"),
                        "GPU_VENV": str(tmp_path / "venv")})
  assert proc.returncode == 2
  assert "no NVIDIA GPU" in proc.stderr and "not found" in proc.stderr
  assert elapsed < 5
  assert not (tmp_path / "venv").exists()  # nothing was installed


def test_driver_without_a_gpu_exits_2(tmp_path):
  smi = _fake_smi(tmp_path, "No devices were found", rc=6)
  proc, _ = _run({"NVIDIA_SMI": smi, "GPU_VENV": str(tmp_path / "venv")})
  assert proc.returncode == 2 and "no usable NVIDIA GPU" in proc.stderr
  smi = _fake_smi(tmp_path, "")
  proc, _ = _run({"NVIDIA_SMI": smi, "GPU_VENV": str(tmp_path / "venv")})
  assert proc.returncode == 2 and "lists none" in proc.stderr


def test_failed_cuda_jax_install_exits_3_with_the_log(tmp_path):
  # A GPU is "listed", but pip can reach no index: the install must fail with a clear message.
  smi = _fake_smi(tmp_path, "GPU 0: NVIDIA H200 (UUID: GPU-fake)")
  proc, _ = _run({"NVIDIA_SMI": smi, "GPU_VENV": str(tmp_path / "venv"), "PIP_NO_INDEX": "1",
                  "PIP_CONFIG_FILE": os.devnull, "PYTHON": sys.executable}, timeout=300)
  assert proc.returncode == 3, (proc.stdout, proc.stderr)
  assert "installing a CUDA jax failed" in proc.stderr
  assert os.path.isfile(tmp_path / "venv" / "install.log")

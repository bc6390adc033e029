"""Two processes on localhost (``jax.distributed``, CPU collectives, 4 fake devices each)
run an SFT step and an RL step on one (2, 2, 2) mesh spanning both, from process-local
rows, and one round of rollouts whose verifier work is split between the processes;
the results equal this process's one-process, 8-device run, and the checkpoint
both processes wrote restores in each of them and here."""

import importlib.util
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "multihost_worker.py")
TIMEOUT_S = 300  # both processes together; a hung coordinator fails the test, not the suite


def _worker_module():
  spec = importlib.util.spec_from_file_location("multihost_worker", WORKER)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def _free_port() -> int:
  with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _run_two_processes(out_dir: str) -> list[str]:
  port = _free_port()
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
             JAX_PLATFORMS="cpu")
  for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID", "JAX_MULTIHOST"):
    env.pop(k, None)
  logs = [open(os.path.join(out_dir, f"log_{i}.txt"), "w+") for i in range(2)]
  procs = [subprocess.Popen([sys.executable, "-u", WORKER, str(i), "2", str(port), out_dir],
                            cwd=ROOT, env=env, stdout=logs[i], stderr=subprocess.STDOUT)
           for i in range(2)]
  deadline = time.monotonic() + TIMEOUT_S
  try:
    while any(p.poll() is None for p in procs):
      # One process failing leaves the other waiting on a collective: stop at once.
      if any(p.poll() not in (None, 0) for p in procs) or time.monotonic() > deadline:
        break
      time.sleep(0.2)
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  texts = []
  for log in logs:
    log.seek(0)
    texts.append("".join(l for l in log if "[Gloo]" not in l))
    log.close()
  codes = [p.returncode for p in procs]
  if codes != [0, 0]:
    timed_out = time.monotonic() > deadline
    pytest.fail(f"two-process run {'timed out after %d s' % TIMEOUT_S if timed_out else 'failed'}"
                f" (exit codes {codes}, port {port}):\n"
                + "\n".join(f"--- process {i} ---\n{t[-3000:]}" for i, t in enumerate(texts)))
  return texts


@pytest.mark.slow
def test_two_processes_equal_one_process_and_share_a_checkpoint(tmp_path):
  assert jax.device_count() >= 8, "tests/conftest.py should give 8 fake CPU devices"
  out_dir = str(tmp_path)
  texts = _run_two_processes(out_dir)
  assert "process 0/2: distributed=True, 4 local / 8 devices" in texts[0], texts[0][-2000:]
  assert "process 1/2: distributed=True, 4 local / 8 devices" in texts[1], texts[1][-2000:]
  results = [dict(np.load(os.path.join(out_dir, f"results_{i}.npz"))) for i in range(2)]

  worker = _worker_module()
  from jaxrl_llm import sharding
  from jaxrl_llm.runs.checkpoint import Checkpointer
  reference, ref_state, _ = worker.compute()  # one process, 8 devices, same mesh shape

  # Each process loaded only its own half of the 8 rows.
  assert [r["rows"].tolist() for r in results] == [[0, 4], [4, 8]]
  assert reference["rows"].tolist() == [0, 8]
  for r in results:
    assert int(r["process_count"]) == 2
    assert bool(r["restored_equal"]) and bool(r["restored_sharded_like_saved"])
    for key in reference:
      if key.startswith(("sft_", "rl_")):
        np.testing.assert_allclose(r[key], reference[key], atol=1e-5, rtol=0, err_msg=key)
  # Rollouts: the same samples and rewards as one process, but each process ran the
  # verifier on its own 4 of the 8 rows (the reference process ran it on all 8).
  assert int(reference["rollout_scored_rows"]) == 8
  for r in results:
    assert int(r["rollout_scored_rows"]) == 4
    np.testing.assert_array_equal(r["rollout_tokens"], reference["rollout_tokens"])
    np.testing.assert_array_equal(r["rollout_rewards"], reference["rollout_rewards"])
    np.testing.assert_allclose(r["rollout_batch_rewards"], reference["rollout_rewards"])
  assert len(set(reference["rollout_rewards"].tolist())) > 1  # not a constant reward
  # The steps moved the weights far more than the tolerance (the comparison is not vacuous).
  from jaxrl_llm import models
  params0 = jax.tree.leaves(models.init_params(worker.tiny_config(), jax.random.key(0)))
  for prefix in ("sft_param_", "rl_param_"):
    moved = max(float(np.max(np.abs(reference[f"{prefix}{i}"] - np.asarray(p))))
                for i, p in enumerate(params0))
    assert moved > 1e-3, (prefix, moved)

  # The checkpoint the two processes wrote restores here, onto one process's 8 devices.
  ckpt = Checkpointer(os.path.join(out_dir, "ckpt"), every=1)
  assert ckpt.all_steps() == [1]
  restored, meta = ckpt.restore(1, ref_state)
  ckpt.close()
  assert meta == {"step": 1}
  for i, leaf in enumerate(jax.tree.leaves(sharding.to_host(restored.params))):
    np.testing.assert_allclose(leaf, results[0][f"rl_param_{i}"], atol=0, rtol=0)
  assert len(restored.params["embedding"].sharding.device_set) == 8

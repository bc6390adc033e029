"""Split the host CPU into several JAX devices, so a data-parallel mesh runs streams side by side.

On XLA:CPU one device runs every op of a step with the whole intra-op thread pool; the
small ops of a decode step (one token per row: ``[rows, hidden]`` matmuls) then spend much
of their time handing work between threads. With ``n`` CPU devices and a ``(data=n)``
mesh, each device decodes ``rows / n`` rows and the devices' ops run concurrently.
Measured on a 2-vCPU Xeon, the `benchmarks/rl_step_vs_trl.py` rollout (128 rows x 64
tokens): 0.30 s on one device, 0.215 s on two (mesh ``(2, 1, 1)``); its update is the
same on both (0.42 s), and four devices made the update slower (0.56 s). On a 2-vCPU AMD
EPYC (family 26) the rollout went 0.204 -> 0.139 s, but the data-parallel update stalled
in its gradient all-reduce on 13 of 30 steps (1.23 s instead of 0.31 s): there the
experiments sample on the split CPU and train on one device (``config.rollout_mesh``,
`jaxrl_llm.training.setup.rollout_placement`).
"""

import jax


def split_cpu_devices(num_devices: int) -> None:
  """Makes the CPU backend expose ``num_devices`` devices (``jax_num_cpu_devices``).

  Call it before anything touches a device (``training.setup.init_process`` does, from
  ``config.cpu_devices``). It does not change GPU or TPU backends. ``num_devices`` = 0
  leaves JAX's default (one CPU device).
  """
  if not isinstance(num_devices, int) or isinstance(num_devices, bool) or num_devices < 0:
    raise ValueError(f"cpu_devices must be an int >= 0, got {num_devices!r}")
  if num_devices == 0:
    return
  try:
    jax.config.update("jax_num_cpu_devices", num_devices)
  except RuntimeError as e:
    raise RuntimeError(f"cpu_devices={num_devices} must be set before JAX starts its backends "
                       f"(before any array is created): {e}") from None

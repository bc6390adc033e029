"""Test-wide setup: 8 fake CPU devices (for mesh tests), shared tiny HF checkpoints, and a
bound on the memory mappings that compiled programs pile up in a long-lived worker."""

import os
import tempfile

# Must happen before jax is imported anywhere: gives 8 CPU devices so sharding
# tests can build a (data=2, fsdp=2, tensor=2) mesh. Single-device code is
# unaffected (it runs on device 0).
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
# One persistent XLA compilation cache for the whole run (both xdist workers and the
# subprocesses tests start inherit it): many tests compile the same programs (a run and
# its resumed copy, the demo twice). Entries are keyed by program, jax version, flags
# and devices, so a cache left from an earlier run is reused only where it is exact.
# Measured: sigkill-resume + demo-twice tests 80 s -> 58 s.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", os.path.join(
    tempfile.gettempdir(), f"jaxrl_llm_test_xla_cache_{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402

# The three tiny families of the acceptance tests, as transformers config kwargs.
TINY_HF_FAMILIES = {
    # untied embeddings, GQA 4:2, Llama-3 rope scaling active at these lengths
    "llama": dict(tie_word_embeddings=False, rope_theta=500000.0,
                  rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                "high_freq_factor": 4.0, "original_max_position_embeddings": 16}),
    "qwen2": dict(tie_word_embeddings=True),  # q/k/v biases
    "qwen3": dict(tie_word_embeddings=False, head_dim=16),  # q/k RMSNorm
}


def build_hf_model(family: str, seed: int = 0, std: float = 0.2, **overrides):
  """A random tiny transformers model (every weight, bias and norm ~ N(0, std))."""
  import torch
  from transformers import AutoModelForCausalLM, LlamaConfig, Qwen2Config, Qwen3Config

  cls = {"llama": LlamaConfig, "qwen2": Qwen2Config, "qwen3": Qwen3Config}[family]
  kwargs = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                bos_token_id=1, eos_token_id=2, pad_token_id=0)
  kwargs.update(TINY_HF_FAMILIES[family])
  kwargs.update(overrides)
  torch.manual_seed(seed)
  model = AutoModelForCausalLM.from_config(cls(**kwargs), dtype=torch.float32).eval()
  with torch.no_grad():
    for p in model.parameters():
      p.normal_(0.0, std)
  return model


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory):
  """{family: directory} of saved tiny transformers checkpoints (built once per session)."""
  out = {}
  for family in TINY_HF_FAMILIES:
    path = tmp_path_factory.mktemp(f"hf_{family}")
    build_hf_model(family).save_pretrained(path)
    out[family] = str(path)
  return out


@pytest.fixture
def run_on_8_devices():
  """`run(script, ok_marker)`: executes `script` with 8 fake CPU devices.

  In this process when jax already has them (tests/conftest.py's flag), else in a
  subprocess (jax was initialised with fewer devices); the subprocess must print
  `ok_marker`.
  """
  import subprocess
  import sys

  import jax

  def run(script: str, ok_marker: str, name: str = "8_device_script"):
    if jax.device_count() >= 8:
      exec(compile(script, name, "exec"), {})
      return
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8",
               JAX_PLATFORMS="cpu")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=root,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and ok_marker in result.stdout, result.stderr[-3000:]

  return run


@pytest.fixture(autouse=True)
def _keep_allocator_settings_out_of_test_workers(monkeypatch):
  """Experiments run in-process by tests call `setup.init_process`, whose glibc mallopt is
  process-wide and cannot be undone: without this, every later test in that xdist worker
  would run under a different allocator depending on test order (one fresh-clone run of
  the suite with it applied segfaulted inside jax's compilation-cache write; the next run
  passed). The setting itself is tested in subprocesses (tests/runs/test_host_memory.py);
  here calls are recorded in ``setup.keep_freed_host_memory.calls``."""
  from jaxrl_llm.training import setup

  calls = []

  def record() -> bool:
    calls.append(True)
    return False

  record.calls = calls
  monkeypatch.setattr(setup, "keep_freed_host_memory", record)


def _map_count_limit() -> int:
  try:
    with open("/proc/sys/vm/max_map_count") as f:
      return int(f.read())
  except (OSError, ValueError):
    return 65530  # Linux's default


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs_before_the_map_limit():
  """Every XLA:CPU executable keeps its JIT code in memory mappings until it is freed, and
  jax's caches keep every executable a test module compiled. One xdist worker measured
  ~150 mappings per test (31k after 200 tests, RSS 5.4 GB); past ``vm.max_map_count``
  (65,530 by default) mmap fails inside LLVM and the worker segfaults while compiling,
  as two fresh-clone runs of the suite did (in jax's compile and cache-write calls) late
  in the run. After a module, when the process holds over half the limit, the caches are
  cleared (then 1-3k mappings, ~2 GB); below it nothing is recompiled."""
  yield
  try:
    with open("/proc/self/maps") as f:
      count = sum(1 for _ in f)
  except OSError:
    return
  if count > _map_count_limit() // 2:
    import gc

    import jax
    jax.clear_caches()
    gc.collect()

"""runs.Checkpointer with typed PRNG keys in the state (the offline agents carry one), and
the layering of jaxrl_llm.runs (it imports no other jaxrl_llm package)."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.runs.checkpoint import Checkpointer


def _state(seed, impl):
  return {"w": jnp.arange(3.0) + seed, "rng": jax.random.key(seed, impl=impl),
          "keys": jax.random.split(jax.random.key(seed + 1, impl=impl), 2)}


@pytest.mark.parametrize("impl", ["threefry2x32", "rbg"])
@pytest.mark.parametrize("async_save", [False, True])
def test_typed_keys_round_trip(tmp_path, impl, async_save):
  saved = _state(5, impl)
  ckpt = Checkpointer(str(tmp_path), every=1, keep=2, async_save=async_save)
  ckpt.save(1, saved, {"seed": 5})
  ckpt.close()
  template = _state(9, impl)  # other values: what is restored must come from disk
  for target in (template, jax.eval_shape(lambda: template)):
    restored, meta = Checkpointer(str(tmp_path)).restore(1, target)
    assert meta == {"seed": 5}
    np.testing.assert_array_equal(restored["w"], [5.0, 6.0, 7.0])
    for name in ("rng", "keys"):
      assert jax.dtypes.issubdtype(restored[name].dtype, jax.dtypes.prng_key)
      assert jax.random.key_impl(restored[name]) == jax.random.key_impl(saved[name])
      np.testing.assert_array_equal(jax.random.key_data(restored[name]),
                                    jax.random.key_data(saved[name]))
    # The restored key draws what the saved one draws.
    np.testing.assert_array_equal(jax.random.normal(restored["rng"], (4,)),
                                  jax.random.normal(saved["rng"], (4,)))


def test_runs_imports_no_other_jaxrl_llm_package():
  code = ("import sys\n"
          "import jaxrl_llm.runs.checkpoint, jaxrl_llm.runs.metrics, jaxrl_llm.runs.workdir\n"
          "bad = sorted({m for m in sys.modules if m.startswith('jaxrl_llm.')\n"
          "              and not m.startswith('jaxrl_llm.runs')})\n"
          "assert not bad, bad\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]

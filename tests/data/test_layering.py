"""DESIGN.md layering: data and rewards do not import the model, training or sampling stacks."""

import subprocess
import sys


def test_data_and_rewards_import_no_upper_or_model_layers():
  code = ("import sys, jaxrl_llm.data, jaxrl_llm.rewards; "
          "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('jax', 'flax', 'torch') "
          "or m.startswith(('jaxrl_llm.models', 'jaxrl_llm.training', 'jaxrl_llm.sampling'))); "
          "print(bad)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "[]", out.stdout

"""DESIGN.md layering: the offline data/evaluation modules never import the LLM stack."""

import subprocess
import sys

LLM_STACK = ("jaxrl_llm.models", "jaxrl_llm.losses", "jaxrl_llm.sampling", "jaxrl_llm.training",
             "jaxrl_llm.rewards", "transformers", "torch")


def test_offline_modules_do_not_import_llm_stack():
  code = (
      "import sys\n"
      "import jaxrl_llm.offline.datasets, jaxrl_llm.offline.corruption, jaxrl_llm.offline.evaluation\n"
      "import jaxrl_llm.offline.generation.make_datasets\n"
      f"bad = [m for m in sys.modules if m.startswith({LLM_STACK!r})]\n"
      "assert not bad, bad\n")
  result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
  assert result.returncode == 0, result.stderr[-2000:]

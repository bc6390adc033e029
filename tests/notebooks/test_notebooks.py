"""Every notebook in notebooks/ runs top to bottom (DESIGN.md: executed by the suite).

Each runs in its own process, as a user would run it, on one CPU device; the
notebooks check their own results with `assert`s, so a wrong number fails here.
"""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "notebooks", "*.ipynb")))


def test_there_are_notebooks():
  assert NOTEBOOKS, "notebooks/ holds no .ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path):
  env = dict(os.environ, MPLBACKEND="Agg", NOTEBOOK_OUTPUT_DIR=str(tmp_path))
  # The suite's 8 fake devices are for the mesh tests, not for notebooks.
  env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace(
      "--xla_force_host_platform_device_count=8", "").strip()
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "notebooks", "run_notebook.py"), path],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-8000:]


def test_runner_names_the_failing_cell(tmp_path):
  import json
  nb = {"cells": [{"cell_type": "markdown", "source": ["# t"]},
                  {"cell_type": "code", "source": ["x = 1\n", "print(x)"]},
                  {"cell_type": "code", "source": ["assert x == 2, 'x is not 2'"]}],
        "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
  path = tmp_path / "bad.ipynb"
  path.write_text(json.dumps(nb))
  proc = subprocess.run([sys.executable, os.path.join(ROOT, "notebooks", "run_notebook.py"),
                         str(path)], capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1
  assert "cell 2 raised" in proc.stderr and "x is not 2" in proc.stderr

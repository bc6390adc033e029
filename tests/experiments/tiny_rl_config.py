"""Config file for the subprocess runs of test_rl_experiment (tiny, random init)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _helpers  # noqa: E402


def get_config():
  return _helpers.tiny_rl_config("/tmp/unused")

"""LIMR selection: accuracy log of a history run -> the kept examples as a JSONL.

    python experiments/limr_select.py --config=configs/limr_arithmetic.py:history \\
        --out=/tmp/jaxrl_llm/limr/selected.jsonl [--log=PATH]

Reads ``workdir/<limr.log>`` of the history config (or ``--log``), scores every example
with the Learning Impact Measurement (``jaxrl_llm.data.selection``, arXiv 2502.11886), keeps
``s_i >= limr.theta`` and writes them (``data.rehearsal.save_examples``) for
``--config.task.train_examples``.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxrl_llm.data import selection  # noqa: E402
from jaxrl_llm.training import setup  # noqa: E402


def run(c, out: str, log: str = "") -> dict:
  """Selects from the history run ``c``'s accuracy log into ``out``; returns the info."""
  lim = c.get("limr", {})
  log = log or os.path.join(c.workdir, lim.get("log", "example_accuracy.jsonl"))
  source = setup.build_task(c.task, "train")
  return selection.select_to_jsonl(log, source, out, theta=float(lim.get("theta", 0.6)),
                                   num_epochs=lim.get("num_epochs") or None,
                                   steps_per_epoch=lim.get("steps_per_epoch") or None)


def main(argv):
  del argv
  info = run(_CONFIG.value, _OUT.value, _LOG.value)
  print(f"LIMR kept {info['num_kept']} of {info['num_examples']} examples "
        f"({info['num_valid']} with a complete history) at theta={info['theta']}: "
        f"{info['path']}")


if __name__ == "__main__":
  from absl import app, flags
  from ml_collections import config_flags
  _CONFIG = config_flags.DEFINE_config_file("config", None, "history-run config file")
  _OUT = flags.DEFINE_string("out", None, "output JSONL of the kept examples")
  _LOG = flags.DEFINE_string("log", "", "accuracy log (default: workdir/<limr.log>)")
  flags.mark_flags_as_required(["config", "out"])
  app.run(main)

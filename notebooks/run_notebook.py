"""Run a notebook's code cells in order, in one namespace, without Jupyter.

    python notebooks/run_notebook.py notebooks/NAME.ipynb [--write]

The test suite runs every notebook this way (tests/notebooks). `--write` stores
each cell's printed output back into the notebook (as Jupyter "stream"
outputs, written atomically) so that the file reads with its results on GitHub
or Colab. Differences from a Jupyter kernel, on purpose: a cell's last
expression is not displayed (notebooks here `print` what they show), IPython
magics (`%...`, `!...`) are not supported, and figures are saved with
`savefig`, not displayed (matplotlib's Agg backend is forced).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile
import time
import traceback


class NotebookError(RuntimeError):
  """A cell raised; the message names the notebook and the cell."""


def code_cells(notebook: dict) -> list[tuple[int, dict]]:
  return [(i, c) for i, c in enumerate(notebook["cells"]) if c.get("cell_type") == "code"]


def run(path: str, write: bool = False, echo: bool = True) -> dict:
  """Executes `path`'s code cells; returns {cell index: seconds}. Raises NotebookError."""
  os.environ.setdefault("MPLBACKEND", "Agg")
  with open(path) as f:
    notebook = json.load(f)
  namespace = {"__name__": "__main__", "__file__": os.path.abspath(path)}
  timings = {}
  for count, (index, cell) in enumerate(code_cells(notebook), start=1):
    source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
    for line in source.splitlines():
      if line.lstrip().startswith(("%", "!")):
        raise NotebookError(f"{path}, cell {index}: IPython magic {line.strip()!r} is not supported")
    buffer = io.StringIO()
    start = time.perf_counter()
    try:
      with contextlib.redirect_stdout(buffer):
        exec(compile(source, f"{path}[cell {index}]", "exec"), namespace)  # noqa: S102
    except Exception as e:  # re-raised with the cell named
      if echo:
        sys.stdout.write(buffer.getvalue())
      raise NotebookError(f"{path}, cell {index} raised:\n{traceback.format_exc()}") from e
    timings[index] = time.perf_counter() - start
    if echo:
      sys.stdout.write(buffer.getvalue())
    cell["execution_count"] = count
    text = buffer.getvalue()
    cell["outputs"] = ([{"output_type": "stream", "name": "stdout",
                         "text": text.splitlines(keepends=True)}] if text else [])
  if write:
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(path).st_mode & 0o777  # NamedTemporaryFile would leave 0600
    with tempfile.NamedTemporaryFile("w", dir=directory, suffix=".ipynb.tmp", delete=False) as f:
      json.dump(notebook, f, indent=1, ensure_ascii=False)
      f.write("\n")
    os.chmod(f.name, mode)
    os.replace(f.name, path)
  return timings


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("notebook")
  parser.add_argument("--write", action="store_true", help="store printed outputs in the file")
  args = parser.parse_args(argv)
  try:
    timings = run(args.notebook, write=args.write)
  except NotebookError as e:
    print(e, file=sys.stderr)
    return 1
  print(f"[{args.notebook}: {len(timings)} code cells in {sum(timings.values()):.1f}s]",
        file=sys.stderr)
  return 0


if __name__ == "__main__":
  sys.exit(main())

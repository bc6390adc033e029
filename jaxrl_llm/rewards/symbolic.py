"""Symbolic answer equivalence with math-verify, under a hard per-call deadline.

``SymbolicVerifier(timeout_s).equivalent(predicted, reference)`` asks
math-verify (Kydlíček et al., Hugging Face 2025, https://github.com/huggingface/Math-Verify:
LaTeX -> SymPy, then string / numeric / symbolic / set / relation comparison)
whether two answer strings are equal, so that ``x^2+1`` matches ``1+x^2`` and
``\\sqrt2`` matches ``2^{1/2}``. It returns ``True``, ``False`` or ``None``
(undecided: the deadline passed, or the answer is longer than ``max_chars``).

Why a worker process: SymPy evaluates some inputs eagerly in C (``9^{9^{9}}``
is one big-integer power that runs for minutes), which no signal or thread can
interrupt, and math-verify's own timeout is ``signal.alarm`` (whole seconds,
main thread only: a ``ValueError`` in worker threads). So math-verify runs in
a child process (``_symbolic_worker.py``, started on first use) with its own
timeouts off. That process imports math-verify once and forks a comparison
child from its warm state; it kills the child when ``timeout_s`` passes and
forks a fresh one in milliseconds, so one pathological answer costs
``timeout_s`` and the next call pays no start-up. The caller's process uses no
signal (it waits on a pipe with ``select``, and kills the whole worker only if
it stops answering ``_BACKSTOP_S`` after the deadline), so the verifier works
from any thread; a lock serialises requests (a caller waits at most one
deadline per request ahead of it). Results are memoised per
``(predicted, reference)`` (LRU, ``memo_size``), and so are timeouts: a
reference or prediction whose *parse* timed out is undecided from then on
without another attempt, so a pathological string costs ``timeout_s`` once,
not once per GRPO sample.

Start-up is not part of the deadline (it does not depend on the input); it
has its own bound, ``startup_timeout_s``, and a worker that cannot start
(math-verify not installed) raises :class:`SymbolicVerifierError`.

The library keeps one default verifier per process (:func:`default_verifier`,
created on first use, stopped at exit): the registry's reward functions are
plain ``fn(completion, example)`` and have nowhere else to keep it.
"""

from __future__ import annotations

import atexit
import collections
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from typing import Optional

SYMBOLIC_TIMEOUT_S = 0.5
"""Default deadline per comparison. MATH-style answers take 1-80 ms here; 0.5 s keeps a
pathological one well inside the 1 s per-reward bound of the totality tests."""
MAX_SYMBOLIC_CHARS = 256
"""Longer answers are not sent to math-verify (a final answer is short; this bounds the parse)."""
_BACKSTOP_S = 2.0
"""How long after the deadline the caller waits for the worker's own timeout reply before killing it."""
_WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_symbolic_worker.py")


class SymbolicVerifierError(RuntimeError):
  """The math-verify worker could not start (e.g. the ``math-verify`` package is missing)."""


class _Worker:
  """The worker process (``_symbolic_worker.py``) and its line-buffered stdout."""

  def __init__(self, timeout_s: float):
    # -P: the script's folder (this package) is not put on the worker's sys.path.
    # stderr goes to a file (read only if start-up fails), so a chatty worker never blocks.
    self.stderr = tempfile.TemporaryFile()
    self.proc = subprocess.Popen([sys.executable, "-P", _WORKER, repr(timeout_s)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
    self.owner_pid = os.getpid()
    self.buffer = b""

  def alive(self) -> bool:
    return self.proc.poll() is None

  def read_line(self, deadline: float) -> Optional[str]:
    """The next line, or ``None`` at the deadline or end of output."""
    fd = self.proc.stdout.fileno()
    while b"\n" not in self.buffer:
      remaining = deadline - time.monotonic()
      if remaining <= 0:
        return None
      readable, _, _ = select.select([fd], [], [], remaining)
      if not readable:
        return None
      chunk = os.read(fd, 4096)
      if not chunk:
        return None
      self.buffer += chunk
    line, self.buffer = self.buffer.split(b"\n", 1)
    return line.decode("ascii", "replace")

  def wait_ready(self, timeout_s: float) -> None:
    line = self.read_line(time.monotonic() + timeout_s)
    if line != "ready":
      self.kill()
      self.stderr.seek(0)
      err = self.stderr.read().decode(errors="replace")
      raise SymbolicVerifierError(
          f"math-verify worker did not start within {timeout_s:.0f} s (is the 'math-verify' "
          f"package installed? pip install math-verify); worker stderr: {err[-1500:]!r}")

  def kill(self) -> None:
    if self.proc.poll() is None:
      self.proc.kill()
    self.proc.wait()
    for stream in (self.proc.stdin, self.proc.stdout):
      try:
        stream.close()
      except (OSError, ValueError):
        pass


class SymbolicVerifier:
  """math-verify equivalence of answer strings, ``timeout_s`` at most per comparison."""

  def __init__(self, timeout_s: float = SYMBOLIC_TIMEOUT_S, *, max_chars: int = MAX_SYMBOLIC_CHARS,
               startup_timeout_s: float = 60.0, memo_size: int = 4096):
    if not timeout_s > 0:
      raise ValueError(f"SymbolicVerifier: timeout_s must be > 0, got {timeout_s}")
    if max_chars < 1 or memo_size < 1 or not startup_timeout_s > 0:
      raise ValueError(f"SymbolicVerifier: max_chars, memo_size and startup_timeout_s must be "
                       f"positive, got {max_chars}, {memo_size}, {startup_timeout_s}")
    self.timeout_s = float(timeout_s)
    self.max_chars = int(max_chars)
    self.startup_timeout_s = float(startup_timeout_s)
    self._memo_size = int(memo_size)
    self._memo = collections.OrderedDict()  # key -> True / False / None
    self._lock = threading.Lock()
    self._active: Optional[_Worker] = None
    self.stats = collections.Counter()  # starts, requests, timeouts, worker_failures

  # -- memo ------------------------------------------------------------------
  def _recall(self, key):
    if key in self._memo:
      self._memo.move_to_end(key)
      return True, self._memo[key]
    return False, None

  def _remember(self, key, value) -> None:
    self._memo[key] = value
    self._memo.move_to_end(key)
    while len(self._memo) > self._memo_size:
      self._memo.popitem(last=False)

  # -- worker ----------------------------------------------------------------
  def _worker(self) -> _Worker:
    """The running worker, started (and waited for) if there is none."""
    if self._active is not None and self._active.owner_pid != os.getpid():
      self._active = None  # a fork inherited the parent's worker: leave it to the parent
    if self._active is not None and not self._active.alive():
      self._discard_active()
    if self._active is None:
      worker = _Worker(self.timeout_s)
      worker.wait_ready(self.startup_timeout_s)
      self._active = worker
      self.stats["starts"] += 1
    return self._active

  def _discard_active(self) -> None:
    if self._active is not None:
      self._active.kill()
      self._active = None

  def warm_up(self) -> None:
    """Starts the worker now instead of on the first comparison."""
    with self._lock:
      self._worker()

  def close(self) -> None:
    with self._lock:
      if self._active is not None and self._active.owner_pid == os.getpid():
        self._discard_active()
      self._active = None

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  # -- comparison --------------------------------------------------------------
  def equivalent(self, predicted: str, reference: str) -> Optional[bool]:
    """``True`` / ``False`` from math-verify, ``None`` if undecided (deadline, too long)."""
    if not isinstance(predicted, str) or not isinstance(reference, str):
      return None
    if len(predicted) > self.max_chars or len(reference) > self.max_chars:
      return None
    with self._lock:
      for key in (("ref", reference), ("pred", predicted), ("pair", predicted, reference)):
        found, value = self._recall(key)
        if found:
          return value
      worker = self._worker()
      self.stats["requests"] += 1
      deadline = time.monotonic() + self.timeout_s + _BACKSTOP_S
      try:
        worker.proc.stdin.write((json.dumps([predicted, reference]) + "\n").encode())
        worker.proc.stdin.flush()
      except (BrokenPipeError, OSError):
        self._discard_active()
        return None
      stage = None
      while True:
        line = worker.read_line(deadline)
        if line in ("0", "1"):
          result = line == "1"
          self._remember(("pair", predicted, reference), result)
          return result
        if line in ("r", "p"):
          stage = line
          continue
        if line != "t":
          # The worker itself stopped answering (or died): not the input's doing, so
          # nothing is remembered; kill it, and the next call starts a new one.
          self.stats["worker_failures"] += 1
          self._discard_active()
          return None
        # "t": the worker killed its comparison child at the deadline.
        self.stats["timeouts"] += 1
        key = {None: ("ref", reference), "r": ("pred", predicted)}.get(
            stage, ("pair", predicted, reference))
        self._remember(key, None)
        return None


_DEFAULT_LOCK = threading.Lock()
_DEFAULT: list = []  # the process's default verifier, created on first use


def default_verifier() -> SymbolicVerifier:
  """The process-wide verifier used by the registered math rewards (``SYMBOLIC_TIMEOUT_S``)."""
  with _DEFAULT_LOCK:
    if not _DEFAULT:
      verifier = SymbolicVerifier()
      atexit.register(verifier.close)
      _DEFAULT.append(verifier)
    return _DEFAULT[0]

"""The math-verify process behind :class:`jaxrl_llm.rewards.symbolic.SymbolicVerifier`.

Run as a script (``python -P _symbolic_worker.py TIMEOUT_S``; never
imported by the library), so that it starts without ``jaxrl_llm`` or jax. It
imports math-verify once, warms it up, then forks a *child* that does the
comparisons; this process (the "zygote") only relays requests and enforces the
deadline: when the child has not answered within ``TIMEOUT_S`` it is killed and
a fresh child is forked from the warm zygote (milliseconds, not a new Python).

Line protocol with the parent on stdin/stdout, one request at a time:

* at start: ``ready``;
* request: one JSON line ``[predicted, reference]`` (strings);
* replies: ``r`` once the reference is parsed, ``p`` once the prediction is
  parsed, then ``1`` (equivalent), ``0`` (not, or math-verify could not
  parse or compare) or ``t`` (the deadline passed; the child was replaced).

The progress lines tell the parent which part was slow. math-verify's own
``signal.alarm`` timeouts are off (``parsing_timeout=None``,
``timeout_seconds=None``): an alarm cannot interrupt a long C-level operation
(SymPy evaluating ``9^{9^{9}}`` is one big-integer power), a kill can. The
zygote never computes, so it sees the end of its input (or a broken pipe)
within one deadline of its parent's exit and then exits; the child dies with
the zygote (``PR_SET_PDEATHSIG`` on Linux; elsewhere at its next read). POSIX
only (``fork``, ``select``).
"""

import json
import logging
import os
import select
import signal
import sys
import time


def _die_with_parent(parent_pid: int) -> None:
  """Linux: SIGKILL this process when its parent (the single-threaded zygote) exits."""
  if sys.platform.startswith("linux"):
    try:
      import ctypes
      ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
      pass
  if os.getppid() != parent_pid:  # the parent died before prctl took effect
    os._exit(0)


def _as_latex(text: str) -> str:
  """``$...$`` around the bare answer: math-verify's LaTeX extraction looks for math delimiters."""
  text = text.strip()
  while len(text) >= 2 and text[0] == "$" and text[-1] == "$":
    text = text[1:-1].strip()
  return f"${text}$"


def _equivalent(parse, verify, predicted: str, reference: str, progress) -> bool:
  gold = parse(_as_latex(reference), parsing_timeout=None)
  progress(b"r\n")
  target = parse(_as_latex(predicted), parsing_timeout=None)
  progress(b"p\n")
  return bool(gold) and bool(target) and bool(verify(gold, target, timeout_seconds=None))


def _child_loop(parse, verify, requests_fd: int, replies_fd: int) -> None:
  """Runs in the forked child: requests in, progress and results out, until end of input."""
  requests = os.fdopen(requests_fd, "rb")

  def write(data: bytes) -> None:
    os.write(replies_fd, data)

  for line in requests:
    try:
      predicted, reference = json.loads(line)
      result = _equivalent(parse, verify, str(predicted), str(reference), write)
    except Exception:  # pylint: disable=broad-except  # any failure is "not shown equivalent"
      result = False
    write(b"1\n" if result else b"0\n")


def _fork_child(parse, verify):
  """(pid, requests write fd, replies read fd) of a new comparison child."""
  req_r, req_w = os.pipe()
  rep_r, rep_w = os.pipe()
  zygote = os.getpid()
  pid = os.fork()
  if pid == 0:  # child
    try:
      os.close(req_w)
      os.close(rep_r)
      devnull = os.open(os.devnull, os.O_RDWR)
      os.dup2(devnull, 0)  # never read the zygote's requests or hold its output open
      os.dup2(devnull, 1)
      _die_with_parent(zygote)
      _child_loop(parse, verify, req_r, rep_w)
    finally:
      os._exit(0)
  os.close(req_r)
  os.close(rep_w)
  return pid, req_w, rep_r


def _kill(pid: int, *fds: int) -> None:
  try:
    os.kill(pid, signal.SIGKILL)
  except ProcessLookupError:
    pass
  os.waitpid(pid, 0)
  for fd in fds:
    os.close(fd)


def main() -> None:
  timeout_s = float(sys.argv[1])
  logging.disable(logging.WARNING)  # math-verify logs parse failures and disabled-timeout notices
  from math_verify import parse, verify
  # Warm-up in the zygote, so every forked child starts with the LaTeX grammar and
  # SymPy's lazily built tables ready.
  for pred, ref in (("1+x^2", "x^2+1"), ("2^{1/2}", "\\sqrt{2}"), ("\\frac{1}{2}", "0.5"),
                    ("\\{1,2\\}", "(1,2)"), ("x=5", "5"), ("\\pi", "3.14")):
    _equivalent(parse, verify, pred, ref, lambda _: None)
  out = sys.stdout.buffer
  pid, req_w, rep_r = _fork_child(parse, verify)
  try:
    out.write(b"ready\n")
    out.flush()
    for line in sys.stdin.buffer:
      os.write(req_w, line if line.endswith(b"\n") else line + b"\n")
      deadline = time.monotonic() + timeout_s
      buffer, done = b"", False
      while not done:
        remaining = deadline - time.monotonic()
        readable = select.select([rep_r], [], [], remaining)[0] if remaining > 0 else []
        chunk = os.read(rep_r, 4096) if readable else b""
        if not chunk:  # deadline passed or the child died: replace it
          _kill(pid, req_w, rep_r)
          pid, req_w, rep_r = _fork_child(parse, verify)
          out.write(b"t\n")
          break
        buffer += chunk
        while b"\n" in buffer:
          reply, buffer = buffer.split(b"\n", 1)
          out.write(reply + b"\n")
          done = done or reply in (b"0", b"1")
      out.flush()
  except (BrokenPipeError, OSError):
    pass  # the parent went away
  finally:
    _kill(pid, req_w, rep_r)


if __name__ == "__main__":
  main()

"""Symbolic equivalence through math-verify, its deadline, memo, threads and failure modes.

Expected values are mathematical facts (x^2+1 = 1+x^2, sqrt(2) = 2^(1/2), ...),
not outputs of the code under test.
"""

import signal
import sys
import threading
import time

import pytest

from jaxrl_llm.rewards import (REWARD_FNS, SymbolicVerifier, SymbolicVerifierError, answers_match,
                               math_answer_reward)
from jaxrl_llm.rewards import symbolic

TOWER = "9^{9^{9}}"  # SymPy evaluates it as one C-level big-integer power: minutes, uninterruptible


@pytest.fixture(scope="module")
def verifier():
  with SymbolicVerifier(timeout_s=0.5) as v:
    v.warm_up()
    yield v


@pytest.mark.parametrize("predicted, reference", [
    ("x^2+1", "1+x^2"), ("1+x^2", "x^2+1"), (r"\sqrt2", "2^{1/2}"), (r"\sqrt{2}", "2^{1/2}"),
    (r"\frac{1}{2}", "0.5"), (r"\frac{x}{2}", "0.5x"), ("(x+1)^2", "x^2+2x+1"),
    (r"\{1,2\}", r"\{2,1\}"), (r"2\pi", r"\pi+\pi"), (r"\sqrt{8}", r"2\sqrt{2}"),
])
def test_equivalent(verifier, predicted, reference):
  assert verifier.equivalent(predicted, reference) is True
  assert answers_match(predicted, reference, symbolic=verifier)
  assert math_answer_reward(rf"so \boxed{{{predicted}}}", reference, verifier=verifier) == 1.0


@pytest.mark.parametrize("predicted, reference", [
    ("x^2+1", "x^2+2"), ("x^2+1", "1-x^2"), (r"\sqrt2", "2^{1/3}"), (r"\sqrt{2}", "1.41"),
    ("(x+1)^2", "x^2+1"), ("2x", "x+2"), ("(1,2)", "(2,1)"), ("y+1", "x+1"),
])
def test_not_equivalent(verifier, predicted, reference):
  assert verifier.equivalent(predicted, reference) is False
  assert not answers_match(predicted, reference, symbolic=verifier)
  assert math_answer_reward(rf"\boxed{{{predicted}}}", reference, verifier=verifier) == 0.0


def test_registry_math_rewards_use_the_symbolic_path():
  # The registered rewards use the process's default verifier.
  for name in ("math", "gsm8k"):
    assert REWARD_FNS[name](r"The answer is \boxed{1+x^2}.", "x^2+1") == 1.0
    assert REWARD_FNS[name](r"The answer is \boxed{\sqrt2}.", {"answer": "2^{1/2}"}) == 1.0
    assert REWARD_FNS[name](r"The answer is \boxed{x^2+2}.", "x^2+1") == 0.0
  # The strict arithmetic reward stays exact and numeric.
  assert REWARD_FNS["arithmetic"]("1+x^2", "x^2+1") == 0.0


class _MustNotBeCalled:
  def equivalent(self, predicted, reference):
    raise AssertionError(f"symbolic path used for numbers {predicted!r}, {reference!r}")


@pytest.mark.parametrize("predicted, reference, expected", [
    # Documented percent convention: 50\% is the number 50 (MATH's grader strips \%), so it
    # matches 50 and not 0.5; numbers are decided exactly, never by the symbolic verifier.
    (r"50\%", "50", True), ("50%", "50", True), (r"50\%", "0.5", False), ("50%", r"\frac{1}{2}", False),
    (r"\frac{1}{2}", "0.5", True), ("0.333333", "1/3", False), ("1,000", "1000", True),
])
def test_numbers_are_decided_exactly_without_the_verifier(predicted, reference, expected):
  assert answers_match(predicted, reference, symbolic=_MustNotBeCalled()) is expected
  assert math_answer_reward(rf"\boxed{{{predicted}}}", reference,
                            verifier=_MustNotBeCalled()) == float(expected)


def test_pathological_answer_is_cut_at_the_deadline_and_the_next_call_is_fast(verifier):
  starts = verifier.stats["starts"]
  begin = time.perf_counter()
  assert verifier.equivalent(TOWER, "1") is None
  elapsed = time.perf_counter() - begin
  assert 0.5 <= elapsed < 0.9, elapsed
  assert math_answer_reward(rf"\boxed{{{TOWER}}}", "1", verifier=verifier) == 0.0  # memo: instant
  begin = time.perf_counter()
  assert verifier.equivalent("x^2+1", "1+x^2") is True  # the comparison child was replaced
  assert time.perf_counter() - begin < 0.4
  assert verifier.stats["starts"] == starts  # ... inside the warm worker, no new start-up


def test_huge_factorial_is_cut_at_the_deadline(verifier):
  begin = time.perf_counter()
  assert verifier.equivalent("99999999!", "1") is None
  assert time.perf_counter() - begin < 0.9


def test_timeouts_and_results_are_memoised(verifier):
  assert verifier.equivalent(TOWER, "2") is None
  assert verifier.equivalent("3x", "x+2x") is True
  requests = verifier.stats["requests"]
  begin = time.perf_counter()
  for _ in range(5):
    assert verifier.equivalent(TOWER, "2") is None
    assert verifier.equivalent("3x", "x+2x") is True
  assert time.perf_counter() - begin < 0.05
  assert verifier.stats["requests"] == requests


def test_long_answers_are_not_sent(verifier):
  requests = verifier.stats["requests"]
  long = "x+" * symbolic.MAX_SYMBOLIC_CHARS + "1"
  assert verifier.equivalent(long, "x+1") is None
  assert verifier.equivalent("x+1", long) is None
  assert verifier.stats["requests"] == requests


def test_safe_from_worker_threads_and_leaves_signals_alone(verifier):
  handler = signal.getsignal(signal.SIGALRM)
  pairs = [("a^2-b^2", "(a-b)(a+b)", True), ("2y", "y+y", True), ("3z", "z+2", False),
           (r"\sqrt{9}", "3", True)] * 3
  results, errors = {}, []

  def work(i):
    try:
      results[i] = math_answer_reward(rf"\boxed{{{pairs[i][0]}}}", pairs[i][1], verifier=verifier)
    except Exception as e:  # pylint: disable=broad-except
      errors.append(e)

  threads = [threading.Thread(target=work, args=(i,)) for i in range(len(pairs))]
  for t in threads:
    t.start()
  for t in threads:
    t.join(timeout=30)
  assert not errors
  assert results == {i: float(p[2]) for i, p in enumerate(pairs)}
  assert signal.getsignal(signal.SIGALRM) is handler
  assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_worker_started_by_a_thread_outlives_the_thread():
  with SymbolicVerifier(timeout_s=0.5) as v:
    t = threading.Thread(target=v.warm_up)
    t.start()
    t.join()
    time.sleep(0.2)
    assert v.equivalent("x+x", "2x") is True
    assert v.equivalent(TOWER, "3") is None  # a deadline kill in the thread-started worker
    assert v.equivalent("x*x", "x^2") is True
    assert v.stats["starts"] == 1 and v.stats["worker_failures"] == 0


def test_recovers_when_the_worker_dies():
  with SymbolicVerifier(timeout_s=0.5) as v:
    assert v.equivalent("x+x", "2x") is True
    v._active.proc.kill()  # pylint: disable=protected-access
    v._active.proc.wait()  # pylint: disable=protected-access
    assert v.equivalent("x*x", "x^2") is True
    assert v.stats["starts"] == 2
    # A worker that dies during a request: undecided, and not remembered as the input's fault.
    threading.Timer(0.15, v._active.proc.kill).start()  # pylint: disable=protected-access
    assert v.equivalent(TOWER, "4") is None
    assert v.stats["worker_failures"] == 1 and v.stats["timeouts"] == 0
    assert v.equivalent("2+2", "4") is True  # the reference "4" was not marked undecided
    assert v.stats["starts"] == 3


def test_missing_math_verify_is_a_named_error(tmp_path, monkeypatch):
  fake = tmp_path / "worker.py"
  fake.write_text("import math_verify_is_not_installed_here\n")
  monkeypatch.setattr(symbolic, "_WORKER", str(fake))
  with SymbolicVerifier(startup_timeout_s=30) as v:
    with pytest.raises(SymbolicVerifierError, match="math-verify"):
      v.equivalent("x+1", "1+x")


@pytest.mark.parametrize("kwargs", [dict(timeout_s=0), dict(timeout_s=-1.0), dict(max_chars=0),
                                    dict(memo_size=0), dict(startup_timeout_s=0)])
def test_bad_options(kwargs):
  with pytest.raises(ValueError, match="SymbolicVerifier"):
    SymbolicVerifier(**kwargs)


def test_worker_needs_no_network():
  # math-verify and what it imports (SymPy, the ANTLR runtime) open no socket: with socket
  # creation disabled, importing them and comparing still works.
  import subprocess
  code = ("import socket, sys\n"
          "class NoNet(socket.socket):\n"
          "  def __init__(self, *a, **k): raise OSError('network used')\n"
          "socket.socket = NoNet\n"
          "socket.create_connection = socket.getaddrinfo = NoNet\n"
          "import logging; logging.disable(logging.WARNING)\n"
          "from math_verify import parse, verify\n"
          "print(verify(parse('$x^2+1$'), parse('$1+x^2$')), verify(parse('$2^{1/2}$'), "
          "parse('$\\\\sqrt2$')))\n")
  out = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True,
                       timeout=60)
  assert out.returncode == 0, out.stderr
  assert out.stdout.split() == ["True", "True"]

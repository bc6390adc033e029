"""keep_freed_host_memory: a large block freed by a worker thread stays in the process."""

import platform
import subprocess
import sys

import pytest

from jaxrl_llm.runs import host_memory

# In a fresh process: optionally apply the setting, then a new thread allocates, touches
# and frees 256 MB (as an XLA:CPU worker frees a call's temporary buffer); print the
# resident size after the free, in MB.
_PROBE = """
import ctypes, sys, threading
from jaxrl_llm.runs import host_memory
if sys.argv[1] == "1":
  assert host_memory.keep_freed_host_memory()
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def work():
  n = 256 << 20
  p = libc.malloc(n)
  ctypes.memset(p, 1, n)
  libc.free(p)
t = threading.Thread(target=work); t.start(); t.join()
rss = [l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]
print(int(rss) // 1024)
"""


def _rss_after_free(apply: bool) -> int:
  out = subprocess.run([sys.executable, "-c", _PROBE, "1" if apply else "0"], check=True,
                       capture_output=True, text=True)
  return int(out.stdout.strip())


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc only (the setting is a no-op elsewhere)")
def test_freed_block_stays_resident_only_with_the_setting():
  kept, returned = _rss_after_free(True), _rss_after_free(False)
  assert kept >= returned + 200, (kept, returned)  # 256 MB block kept vs unmapped


def test_returns_false_off_glibc(monkeypatch):
  monkeypatch.setattr(platform, "libc_ver", lambda: ("", ""))
  assert host_memory.keep_freed_host_memory() is False

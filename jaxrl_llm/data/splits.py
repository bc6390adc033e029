"""Train/test assignment by hashing a problem's canonical key.

A problem belongs to the test split iff ``u(key) < test_fraction``, where
``u(key) = blake2b(salt | key) / 2**64`` is a fixed pseudo-uniform number in
[0, 1). Generators reject problems of the other split, so the two splits are
disjoint *by construction* for any seeds, and the split of a problem never
depends on the training seed.
"""

import hashlib

DEFAULT_SPLIT_SALT = "jaxrl_llm-v1"
SPLITS = ("train", "test")


def split_unit(key: str, salt: str = DEFAULT_SPLIT_SALT) -> float:
  """The problem's fixed pseudo-uniform number ``u(key)`` in [0, 1)."""
  digest = hashlib.blake2b(f"{salt}|{key}".encode("utf-8"), digest_size=8).digest()
  return int.from_bytes(digest, "big") / 2.0**64


def split_of(key: str, test_fraction: float, salt: str = DEFAULT_SPLIT_SALT) -> str:
  """``"test"`` if ``split_unit(key) < test_fraction`` else ``"train"``."""
  check_test_fraction(test_fraction)
  return "test" if split_unit(key, salt) < test_fraction else "train"


def check_test_fraction(test_fraction: float) -> None:
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")


def check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")


def check_seed_index(seed: int, index: int) -> tuple[int, int]:
  """Both non-negative ints (NumPy's seed sequences need that)."""
  seed, index = int(seed), int(index)
  if seed < 0:
    raise ValueError(f"seed must be >= 0, got {seed}")
  if index < 0:
    raise ValueError(f"index must be >= 0, got {index}")
  return seed, index

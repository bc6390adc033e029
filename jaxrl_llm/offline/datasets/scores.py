"""D4RL-normalised scores and the D4RL reference returns."""

from __future__ import annotations

from typing import Dict

import numpy as np

# D4RL `infos.py` reference returns (random, expert) used for `100 * (R - min) / (max - min)`.
# They were measured on the *v2* (mujoco-py) environments; gymnasium v5 physics differ slightly,
# so locally generated datasets also store their own measured random/expert returns.
D4RL_REF_SCORES: Dict[str, tuple] = {
    "hopper": (-20.272305, 3234.3),
    "halfcheetah": (-280.178953, 12135.0),
    "walker2d": (1.629008, 4592.3),
    "antmaze": (0.0, 1.0),
}


def normalized_score(returns, ref_min: float, ref_max: float):
  """D4RL normalised score: `100 * (R - R_min) / (R_max - R_min)`."""
  if ref_max == ref_min:
    raise ValueError("normalized_score: `ref_max` equals `ref_min`.")
  return 100.0 * (np.asarray(returns, np.float64) - ref_min) / (ref_max - ref_min)

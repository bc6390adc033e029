"""Shared output type of every objective in :mod:`jaxrl_llm.losses`."""

from typing import Mapping, NamedTuple

import jax


class LossOutput(NamedTuple):
  """A loss as a sum and a count, plus diagnostics.

  Attributes:
    total: scalar, the sum of the loss over the counted elements (already
      multiplied by any per-element normaliser of the aggregation mode).
    count: scalar, how many elements ``total`` is a sum over. The loss to
      differentiate is ``total / count`` (see :func:`safe_mean`); keeping the two
      apart makes token means exact under gradient accumulation, packing and
      sharding (sum the totals and the counts, then divide once).
    metrics: scalar diagnostics (clip fractions, approximate KL, ratio stats).
      Metrics are means over the local batch; they are not differentiated.
  """

  total: jax.Array
  count: jax.Array
  metrics: Mapping[str, jax.Array]

"""Pallas kernels for jaxrl_llm (independent package: never imports jaxrl_llm).

``fused_logprobs``: per-token log-prob / entropy / KL of a vocabulary head
without materialising ``[T, V]`` logits, with backends ``xla`` (chunked),
``tpu`` (Pallas Mosaic), ``gpu`` (Pallas Triton) and a dense ``reference``.
"""

from kernels_pallas.api import FusedOutput
from kernels_pallas.api import fused_logprobs
from kernels_pallas.api import fused_logprobs_reference
from kernels_pallas.api import IMPLS

__all__ = ("FusedOutput", "fused_logprobs", "fused_logprobs_reference", "IMPLS")

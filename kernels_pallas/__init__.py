"""Pallas kernels for jaxrl_llm (independent package: never imports jaxrl_llm).

``fused_logprobs``: per-token log-prob / entropy / KL of a vocabulary head
without materialising ``[T, V]`` logits, with backends ``xla`` (chunked),
``tpu`` (Pallas Mosaic), ``gpu`` (Pallas Triton) and a dense ``reference``.
``fused_logprobs_vocab_sharded``: the same with the vocabulary head split over a
mesh axis (tensor parallel), via `shard_map` and ``[T]``-sized collectives.
"""

from kernels_pallas.api import FusedOutput
from kernels_pallas.api import fused_logprobs
from kernels_pallas.api import fused_logprobs_reference
from kernels_pallas.api import IMPLS
from kernels_pallas.vocab_parallel import fused_logprobs_vocab_sharded
from kernels_pallas.vocab_parallel import vocab_parallel_logprobs

__all__ = ("FusedOutput", "fused_logprobs", "fused_logprobs_reference",
           "fused_logprobs_vocab_sharded", "IMPLS", "vocab_parallel_logprobs")

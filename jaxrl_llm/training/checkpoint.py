"""Re-exports ``jaxrl_llm.runs.checkpoint`` (the one checkpointer of every loop, offline included)."""

from jaxrl_llm.runs.checkpoint import Checkpointer, committed_steps

__all__ = ["Checkpointer", "committed_steps"]

"""jaxrl_llm: a JAX-first functional framework for RL on language models and offline RL.

Subpackages are imported explicitly (``from jaxrl_llm import losses``) so that the
offline-RL stack never pulls in the LLM stack and vice versa (DESIGN.md layering).
"""

__version__ = "0.1.0"

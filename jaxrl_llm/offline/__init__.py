"""Offline RL: agents behind one functional API, datasets, corruption, environment evaluation.

Never imports the LLM stack (DESIGN.md layering).
"""

from jaxrl_llm.offline import corruption, datasets
from jaxrl_llm.offline.types import Transitions

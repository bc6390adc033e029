"""Evaluation utilities: pass@k / maj@k, reasoning-boundary curves (`boundary`), and
rliable-style aggregate statistics and plots (`stats`)."""

from jaxrl_llm.evaluation.passk import maj_at_k, majority_vote, pass_at_k
from jaxrl_llm.evaluation import stats  # rliable-style aggregate statistics and plots
from jaxrl_llm.evaluation import boundary  # pass@k curves, maj@k, bands over problems

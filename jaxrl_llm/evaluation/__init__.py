"""Evaluation utilities: pass@k / maj@k (more, e.g. aggregate statistics, to come)."""

from jaxrl_llm.evaluation.passk import maj_at_k, majority_vote, pass_at_k
from jaxrl_llm.evaluation import stats  # rliable-style aggregate statistics and plots

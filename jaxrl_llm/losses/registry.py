"""Name -> function registries, so a config string selects an objective.

The tables are read-only mappings built at import time (no mutable module
state); every entry is an ordinary importable function.
"""

import functools
import types
from typing import Callable

from jaxrl_llm.losses import advantages, divergences, policy

POLICY_LOSSES = types.MappingProxyType({
    "ppo": policy.ppo_policy_loss,
    "vanilla": policy.ppo_policy_loss,
    "gspo": policy.gspo_policy_loss,
    "cispo": policy.cispo_policy_loss,
    "reinforce": policy.reinforce_loss,
    "gpg": policy.gpg_policy_loss,
})

ADVANTAGE_ESTIMATORS = types.MappingProxyType({
    "grpo": advantages.grpo_advantages,
    "dr_grpo": advantages.dr_grpo_advantages,
    "lite_ppo": advantages.lite_ppo_advantages,
    "rloo": advantages.rloo_advantages,
    "opo": advantages.opo_advantages,
    "gpg": advantages.gpg_advantages,
    "grpo_passk": advantages.grpo_passk_advantages,
    "reinforce_plus_plus": advantages.reinforce_plus_plus_advantages,
    "reinforce_plus_plus_baseline": advantages.reinforce_plus_plus_baseline_advantages,
    "gae": advantages.gae_advantages,
})

KL_ESTIMATORS = tuple(divergences.KL_KINDS) + tuple(k + "+" for k in divergences.KL_KINDS)


def _lookup(table, name: str, what: str):
  if name not in table:
    raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
  return table[name]


def get_policy_loss(name: str) -> Callable:
  """``fn(logprobs, old_logprobs, advantages, mask, **options) -> LossOutput``."""
  return _lookup(POLICY_LOSSES, name, "policy loss")


def get_advantage_estimator(name: str) -> Callable:
  """The advantage estimator registered under ``name`` (signatures differ; see each)."""
  return _lookup(ADVANTAGE_ESTIMATORS, name, "advantage estimator")


def get_kl(name: str) -> Callable:
  """``fn(logprobs, ref_logprobs) -> per-token KL`` for a :func:`kl_divergence` kind."""
  if name not in KL_ESTIMATORS:
    raise ValueError(f"unknown KL estimator {name!r}; known: {', '.join(KL_ESTIMATORS)}")
  return functools.partial(divergences.kl_divergence, kind=name)

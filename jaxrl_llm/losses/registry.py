"""Name -> function registries, so a config string selects an objective.

Everything a method may swap is reached through one table here, and every entry
of one table has one signature, so callers never branch on a name:

* policy losses:  ``fn(logprobs, old_logprobs, advantages, mask, *, <inputs>, **options) -> LossOutput``
  (a :class:`PolicyLoss` row also names the extra inputs and batch extras it reads)
* advantages:     ``estimator(AdvantageInputs, **options) -> AdvantageOutput``
  (adapters below over the pure math of :mod:`jaxrl_llm.losses.advantages`;
  adding an estimator is one adapter and one table row in this file)
* KL estimators:  ``fn(logprobs, ref_logprobs) -> per-token KL``
* reward shaping: ``fn(rewards [B], completion_mask [B, N], **options) -> (rewards, metrics)``

The tables are read-only mappings built at import time (no mutable module
state); every entry is an ordinary importable function.
"""

import functools
import inspect
import types
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import advantages, dapo, divergences, policy
from jaxrl_llm.losses.advantages import AdvantageInputs, AdvantageOutput
from jaxrl_llm.losses import pacs
from jaxrl_llm.losses import laser, rapo
from jaxrl_llm.losses import rl_plus
from jaxrl_llm.losses import dph_rl
from jaxrl_llm.losses import rover
from jaxrl_llm.losses import seele
from jaxrl_llm.losses import guide

# What ``training.make_rl_step`` can pass a policy loss beyond its four arrays (see
# :class:`PolicyLoss`): RolloutBatch fields, forward statistics of the current policy
# and the optimiser step.
POLICY_INPUTS = (
    "rewards",               # [B] float
    "group_ids",             # [B] int
    "is_off_policy",         # [B] bool
    "completion_mask",       # [B, N] every completion token, forced/hint ones included
    "sampler_logprobs",      # [B, N] the sampler's log-probs
    "ref_logprobs",          # [B, N] frozen reference (needs a reference model)
    "entropy",               # [B, N] entropy of the current policy
    "mean_logprobs",         # [B, N] (1/V) sum_a log pi(a | s_t), current policy
    "old_mean_logprobs",     # [B, N] the same under the behaviour policy
    "self_reward_logprobs",  # [B] log pi(z_c | x, y, EOS) (LaSeR's appended token)
    "self_reward_valid",     # [B] bool: the row had room for z_c (not truncated)
    "step",                  # int32 scalar: optimiser steps taken before this update
    "extras",                # the batch's extras mapping, whole
)


class PolicyLoss(NamedTuple):
  """A registered policy loss.

  ``fn(logprobs, old_logprobs, advantages, mask, *, <inputs>, **options) -> LossOutput``:
  the step passes each name in ``inputs`` (from :data:`POLICY_INPUTS`) as a keyword
  argument; ``options`` come from the config. ``extras`` names the
  ``RolloutBatch.extras`` keys the loss reads; the step fails at its first update,
  naming them, when the batch lacks one. ``whole_groups``: the loss couples the rows
  of a prompt's group (e.g. PACS's per-group baseline and class weights), so the
  loop's minibatches and micro-batches must hold whole groups.
  """

  fn: Callable[..., "LossOutput"]
  inputs: tuple = ()
  extras: tuple = ()
  whole_groups: bool = False

  def __call__(self, *args, **kwargs):
    return self.fn(*args, **kwargs)


_POLICY_LOSS_ROWS = {
    "ppo": PolicyLoss(policy.ppo_policy_loss),
    "vanilla": PolicyLoss(policy.ppo_policy_loss),
    "gspo": PolicyLoss(policy.gspo_policy_loss),
    "cispo": PolicyLoss(policy.cispo_policy_loss),
    "reinforce": PolicyLoss(policy.reinforce_loss),
    "gpg": PolicyLoss(policy.gpg_policy_loss),
    "pacs": PolicyLoss(pacs.pacs_loss, inputs=("rewards", "group_ids"), whole_groups=True),
    "sapo": PolicyLoss(policy.sapo_policy_loss),
    "gmpo": PolicyLoss(policy.gmpo_policy_loss),
    "geo_mean": PolicyLoss(policy.gmpo_policy_loss),
    "clip_cov": PolicyLoss(policy.clip_cov_policy_loss, inputs=("step",)),
    "kl_cov": PolicyLoss(policy.kl_cov_policy_loss),
    "laser": PolicyLoss(laser.laser_loss, inputs=("self_reward_logprobs", "self_reward_valid",
                                                  "rewards", "group_ids", "step"),
                        whole_groups=True),
    "rapo": PolicyLoss(rapo.rapo_loss, inputs=("ref_logprobs", "rewards", "extras"),
                       extras=(rapo.TILTED_LOGNORM_KEY,)),
    "rl_plus": PolicyLoss(rl_plus.rl_plus_loss, inputs=("is_off_policy",)),
    "dph_rl": PolicyLoss(dph_rl.dph_rl_loss, inputs=("extras",),
                         extras=("is_rehearsal", "base_logprobs")),
    "rover": PolicyLoss(rover.rover_loss, inputs=("mean_logprobs", "old_mean_logprobs")),
    # SEELE: PPO-clip on generated tokens + gamma * NLL on the forced hint tokens
    "seele": PolicyLoss(seele.seele_loss, inputs=("completion_mask",)),
    # Guide-GRPO: PPO on sampled rows, r / (r + gamma) on hinted rerolls (lp_old = sampler's)
    "guide": PolicyLoss(guide.guide_loss, inputs=("is_off_policy", "sampler_logprobs")),
}


def _check_policy_rows(rows):
  for name, row in rows.items():
    bad = sorted(set(row.inputs) - set(POLICY_INPUTS))
    if bad:
      raise ValueError(f"policy loss {name!r} asks for unknown inputs {bad}; known: "
                       f"{', '.join(POLICY_INPUTS)}")
  return types.MappingProxyType(rows)


POLICY_LOSSES = _check_policy_rows(_POLICY_LOSS_ROWS)


# ---- advantage estimators: one protocol --------------------------------------------------


class AdvantageEstimator(NamedTuple):
  """A registered estimator: ``est(inputs, **options) -> AdvantageOutput``.

  uses_values: it reads ``inputs.values`` (a critic; the trainer then keeps a
    value head and fits it to ``returns``).
  group_relative: its baseline comes from the other responses of a prompt's
    group, so it needs groups of at least 2.
  extras: ``RolloutBatch.extras`` keys it reads (through ``AdvantageInputs``, e.g.
    ``token_rewards``); ``rl.batch_augment`` must provide them.
  """

  fn: Callable[..., AdvantageOutput]
  uses_values: bool = False
  group_relative: bool = True
  extras: tuple = ()

  def __call__(self, inputs: AdvantageInputs, **options) -> AdvantageOutput:
    return self.fn(inputs, **options)

  @property
  def options(self) -> tuple:
    """Names of the keyword options ``fn`` accepts."""
    return tuple(p.name for p in inspect.signature(self.fn).parameters.values()
                 if p.kind == p.KEYWORD_ONLY)


def terminal_rewards(rewards: jax.Array, mask: jax.Array) -> jax.Array:
  """Puts each sequence's reward on its last masked-in token: ``[B] -> [B, T]`` (0 if none)."""
  m = mask.astype(jnp.int32)
  t = m.shape[1]
  last = t - 1 - jnp.argmax(m[:, ::-1], axis=1)
  onehot = jax.nn.one_hot(last, t, dtype=jnp.float32) * (jnp.sum(m, axis=1) > 0)[:, None]
  return onehot * rewards[:, None].astype(jnp.float32)


def _per_token(scores_adv, inputs):
  """``[B]`` outcome advantages broadcast over the masked tokens."""
  m = inputs.mask.astype(jnp.float32)
  return AdvantageOutput(scores_adv[:, None] * m, None, {})


def _scores(inputs):
  return inputs.rewards.astype(jnp.float32)


def grpo_estimator(inputs: AdvantageInputs, *, std_scope: str = "group",
                   eps: float = 1e-6) -> AdvantageOutput:
  """:func:`advantages.grpo_advantages` per token."""
  return _per_token(advantages.grpo_advantages(_scores(inputs), group_ids=inputs.group_ids,
                                               std_scope=std_scope, eps=eps), inputs)


def dr_grpo_estimator(inputs: AdvantageInputs) -> AdvantageOutput:
  """:func:`advantages.dr_grpo_advantages` per token."""
  return _per_token(advantages.dr_grpo_advantages(_scores(inputs), group_ids=inputs.group_ids),
                    inputs)


def lite_ppo_estimator(inputs: AdvantageInputs, *, eps: float = 1e-6) -> AdvantageOutput:
  """:func:`advantages.lite_ppo_advantages` per token."""
  return _per_token(advantages.lite_ppo_advantages(_scores(inputs), group_ids=inputs.group_ids,
                                                   eps=eps), inputs)


def rloo_estimator(inputs: AdvantageInputs) -> AdvantageOutput:
  """:func:`advantages.rloo_advantages` per token."""
  return _per_token(advantages.rloo_advantages(_scores(inputs), group_ids=inputs.group_ids),
                    inputs)


def opo_estimator(inputs: AdvantageInputs) -> AdvantageOutput:
  """:func:`advantages.opo_advantages` per token, lengths = ``mask.sum(-1)``."""
  lengths = jnp.sum(inputs.mask.astype(jnp.float32), axis=1)
  return _per_token(advantages.opo_advantages(_scores(inputs), lengths,
                                              group_ids=inputs.group_ids), inputs)


def gpg_estimator(inputs: AdvantageInputs, *, f_norm: float = 1.0) -> AdvantageOutput:
  """:func:`advantages.gpg_advantages` per token."""
  return _per_token(advantages.gpg_advantages(_scores(inputs), group_ids=inputs.group_ids,
                                              f_norm=f_norm), inputs)


def grpo_passk_estimator(inputs: AdvantageInputs, *, normalize_by_std: bool = True,
                         eps: float = 1e-6) -> AdvantageOutput:
  """:func:`advantages.grpo_passk_advantages` per token."""
  return _per_token(advantages.grpo_passk_advantages(
      _scores(inputs), group_ids=inputs.group_ids, normalize_by_std=normalize_by_std, eps=eps),
      inputs)


def reinforce_plus_plus_estimator(inputs: AdvantageInputs, *,
                                  gamma: float = 1.0) -> AdvantageOutput:
  """:func:`advantages.reinforce_plus_plus_advantages` on the terminal token rewards."""
  adv, returns = advantages.reinforce_plus_plus_advantages(
      terminal_rewards(inputs.rewards, inputs.mask), inputs.mask, gamma=gamma)
  return AdvantageOutput(adv, returns, {})


def reinforce_plus_plus_baseline_estimator(inputs: AdvantageInputs) -> AdvantageOutput:
  """:func:`advantages.reinforce_plus_plus_baseline_advantages`."""
  adv = advantages.reinforce_plus_plus_baseline_advantages(_scores(inputs), inputs.mask,
                                                           group_ids=inputs.group_ids)
  return AdvantageOutput(adv, None, {})


def gae_estimator(inputs: AdvantageInputs, *, gamma: float = 1.0, lam: float = 1.0,
                  whiten: bool = True) -> AdvantageOutput:
  """:func:`advantages.gae_advantages` on the terminal token rewards and ``inputs.values``."""
  if inputs.values is None:
    raise ValueError("advantage estimator 'gae' needs AdvantageInputs.values (a critic)")
  m = inputs.mask.astype(jnp.float32)
  adv, returns = advantages.gae_advantages(terminal_rewards(inputs.rewards, inputs.mask),
                                           inputs.values * m, inputs.mask, gamma=gamma,
                                           lam=lam, whiten=whiten)
  return AdvantageOutput(adv, returns, {})


def grpo_split_estimator(inputs: AdvantageInputs, *, use_std: bool = False,
                         eps: float = 1e-6) -> AdvantageOutput:
  """:func:`rl_plus.grpo_split_advantages` per token: the baseline over each group's
  on-policy rows (``inputs.is_off_policy``; None: all on-policy). RL-PLUS's released
  script uses plain ``"grpo"`` instead (the demonstration inside the baseline)."""
  off = inputs.is_off_policy
  if off is None:
    off = jnp.zeros(inputs.rewards.shape, bool)
  return _per_token(rl_plus.grpo_split_advantages(_scores(inputs), off, group_ids=inputs.group_ids,
                                                  use_std=use_std, eps=eps), inputs)


def _token_rewards(inputs: AdvantageInputs, name: str) -> jax.Array:
  if inputs.token_rewards is None:
    raise ValueError(f"advantage estimator {name!r} reads token-level rewards "
                     "(RolloutBatch.extras['token_rewards']): set rl.batch_augment="
                     "'process_reward'")
  return inputs.token_rewards.astype(jnp.float32)


def gae_token_estimator(inputs: AdvantageInputs, *, gamma: float = 1.0, lam: float = 1.0,
                        whiten: bool = True) -> AdvantageOutput:
  """:func:`advantages.gae_advantages` on ``inputs.token_rewards`` (process rewards at
  step ends + the outcome at the last token; Clip / Delta, arXiv 2410.15115, with PPO)."""
  if inputs.values is None:
    raise ValueError("advantage estimator 'gae_token' needs AdvantageInputs.values (a critic)")
  m = inputs.mask.astype(jnp.float32)
  adv, returns = advantages.gae_advantages(_token_rewards(inputs, "gae_token") * m,
                                           inputs.values * m, inputs.mask, gamma=gamma,
                                           lam=lam, whiten=whiten)
  return AdvantageOutput(adv, returns, {})


def reinforce_plus_plus_token_estimator(inputs: AdvantageInputs, *,
                                        gamma: float = 1.0) -> AdvantageOutput:
  """:func:`advantages.reinforce_plus_plus_advantages` on ``inputs.token_rewards``
  (whitened return-to-go of the token rewards; no critic)."""
  m = inputs.mask.astype(jnp.float32)
  adv, returns = advantages.reinforce_plus_plus_advantages(
      _token_rewards(inputs, "reinforce_plus_plus_token") * m, inputs.mask, gamma=gamma)
  return AdvantageOutput(adv, returns, {})


ADVANTAGE_ESTIMATORS = types.MappingProxyType({
    "grpo_split": AdvantageEstimator(grpo_split_estimator),
    "grpo": AdvantageEstimator(grpo_estimator),
    "dr_grpo": AdvantageEstimator(dr_grpo_estimator),
    "lite_ppo": AdvantageEstimator(lite_ppo_estimator),
    "rloo": AdvantageEstimator(rloo_estimator),
    "opo": AdvantageEstimator(opo_estimator),
    "gpg": AdvantageEstimator(gpg_estimator),
    "grpo_passk": AdvantageEstimator(grpo_passk_estimator),
    "reinforce_plus_plus": AdvantageEstimator(reinforce_plus_plus_estimator,
                                              group_relative=False),
    "reinforce_plus_plus_baseline": AdvantageEstimator(reinforce_plus_plus_baseline_estimator),
    "gae": AdvantageEstimator(gae_estimator, uses_values=True, group_relative=False),
    # Token-level rewards from RolloutBatch.extras (batch augmenter 'process_reward')
    "gae_token": AdvantageEstimator(gae_token_estimator, uses_values=True, group_relative=False,
                                    extras=("token_rewards",)),
    "reinforce_plus_plus_token": AdvantageEstimator(reinforce_plus_plus_token_estimator,
                                                    group_relative=False,
                                                    extras=("token_rewards",)),
})

KL_ESTIMATORS = (tuple(divergences.KL_KINDS) + tuple(k + "+" for k in divergences.KL_KINDS)
                 + tuple("f:" + k for k in divergences.F_DIVERGENCES))


# ---- reward shaping ------------------------------------------------------------------


def no_shaping(rewards: jax.Array, completion_mask: jax.Array) -> tuple[jax.Array, dict]:
  """Identity shaping: the task rewards unchanged."""
  del completion_mask
  return rewards, {}


REWARD_SHAPINGS = types.MappingProxyType({
    "none": no_shaping,
    "overlong": dapo.overlong_shaping,
})


def _lookup(table, name: str, what: str):
  if name not in table:
    raise ValueError(f"unknown {what} {name!r}; known: {', '.join(sorted(table))}")
  return table[name]


def check_options(fn: Callable, options, what: str, skip: int = 0) -> dict:
  """``dict(options)`` after checking every key is an option of ``fn`` (its parameters
  after the first ``skip``, which the caller passes itself)."""
  options = dict(options or {})
  known = [p.name for p in list(inspect.signature(fn).parameters.values())[skip:]
           if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
  bad = sorted(set(options) - set(known))
  if bad:
    raise ValueError(f"{bad} are not options of {what}; its options: {', '.join(known) or 'none'}")
  return options


def get_policy_loss(name: str) -> Callable:
  """``fn(logprobs, old_logprobs, advantages, mask, **options) -> LossOutput``
  (the function itself; :func:`get_policy_loss_entry` also says what else it reads)."""
  return _lookup(POLICY_LOSSES, name, "policy loss").fn


def get_policy_loss_entry(name: str) -> PolicyLoss:
  """The :class:`PolicyLoss` registered under ``name`` (its function, inputs and extras)."""
  return _lookup(POLICY_LOSSES, name, "policy loss")


def get_advantage_estimator(name: str) -> AdvantageEstimator:
  """``est(AdvantageInputs, **options) -> AdvantageOutput`` registered under ``name``."""
  return _lookup(ADVANTAGE_ESTIMATORS, name, "advantage estimator")


def get_kl(name: str) -> Callable:
  """``fn(logprobs, ref_logprobs) -> per-token divergence`` on tokens from the policy.

  A :func:`kl_divergence` kind (``k1`` ... ``k3+``), or ``"f:<kind>"`` for any
  f-divergence generator of :func:`f_generator` (``f:forward_kl``, ``f:reverse_kl``,
  ``f:js``, ``f:chi2``, ``f:tv``, ``f:alpha`` with alpha 0.2, or ``f:alpha=<a>``):
  ``D_f(pi || pi_ref) = E_pi[f(u) / u]``, ``u = pi / pi_ref``
  (:func:`jaxrl_llm.losses.dph_rl.f_divergence_policy_samples`).
  """
  if name.startswith("f:"):
    try:
      kind, alpha = dph_rl.parse_f_divergence(name)
    except ValueError as e:
      raise ValueError(f"unknown KL estimator {name!r} ({e}); known: "
                       f"{', '.join(KL_ESTIMATORS)}, f:alpha=<a>") from None
    return functools.partial(dph_rl.f_divergence_policy_samples, kind=kind, alpha=alpha)
  if name not in KL_ESTIMATORS:
    raise ValueError(f"unknown KL estimator {name!r}; known: {', '.join(KL_ESTIMATORS)}, "
                     "f:alpha=<a>")
  return functools.partial(divergences.kl_divergence, kind=name)


def get_reward_shaping(name: str) -> Callable:
  """``fn(rewards [B], completion_mask [B, N], **options) -> (rewards, metrics)``."""
  return _lookup(REWARD_SHAPINGS, name or "none", "reward shaping")

"""RL step builders: prepare a rollout batch (old/ref log-probs, advantages), then update.

One rollout batch is used for ``ppo_epochs`` passes of ``num_minibatches``
optimiser steps each (Schulman et al. 2017, "Proximal Policy Optimization
Algorithms"); the behaviour log-probs ``old_logprobs`` are the trainer's
log-probs before the first update, so the importance ratio of the first step is
exactly 1. The sampler's own log-probs only enter through the sampler/trainer
mismatch metrics and optional truncated importance sampling (Yao et al. 2025,
"Your Efficient RL Framework Secretly Brings You Off-Policy RL Training").

Batch (a dict of arrays, rows ``g*G ... g*G + G - 1`` are one prompt's group):

  prompt_tokens [B, P], prompt_mask [B, P]            left-padded prompts
  completion_tokens [B, N], completion_mask [B, N]    sampled completions
  sampler_logprobs [B, N]                             the sampler's log-probs at the sampling
                                                      temperature (SampleOutput.temperature_logprobs)
  rewards [B]                                         verifiable rewards (+ shaping)

``prepare`` adds ``old_logprobs``, ``ref_logprobs``, ``advantages [B, N]``,
``is_weights [B, N]`` and, for GAE, ``old_values`` and ``returns``.
"""

import inspect
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxrl_llm import losses, models
from jaxrl_llm.losses import masked_mean, masked_sum
from jaxrl_llm.training.accumulate import accumulate_gradients
from jaxrl_llm.training.logprobs import completion_logprobs
from jaxrl_llm.training.state import TrainState, value_head_apply

sg = jax.lax.stop_gradient

RL_BATCH_KEYS = ("prompt_tokens", "prompt_mask", "completion_tokens", "completion_mask",
                 "sampler_logprobs", "rewards")
# Advantage estimators that take (scores, group_size=G) and return [B].
GROUP_ADVANTAGES = ("grpo", "dr_grpo", "lite_ppo", "rloo", "gpg", "grpo_passk")
ADVANTAGES = GROUP_ADVANTAGES + ("opo", "reinforce_plus_plus", "reinforce_plus_plus_baseline",
                                 "gae")


class RLStep(NamedTuple):
  """``prepare(params, value_params, ref_params, batch) -> (batch, metrics)`` (no gradient) and
  ``update(state, batch) -> (state, metrics)`` (one optimiser step)."""

  prepare: Callable
  update: Callable


def _check_batch(batch, keys):
  missing = [k for k in keys if k not in batch]
  if missing:
    raise ValueError(f"RL batch is missing {missing}; expected keys {list(keys)}")


def _terminal_rewards(rewards, mask):
  """Puts each sequence's reward on its last masked-in token: ``[B] -> [B, N]``."""
  m = mask.astype(jnp.int32)
  n = m.shape[1]
  last = n - 1 - jnp.argmax(m[:, ::-1], axis=1)
  onehot = jax.nn.one_hot(last, n, dtype=jnp.float32) * (jnp.sum(m, axis=1) > 0)[:, None]
  return onehot * rewards[:, None].astype(jnp.float32)


def make_rl_step(config: models.ModelConfig, optimizer: optax.GradientTransformation, *,
                 group_size: int, loss: str = "ppo", loss_kwargs: Optional[dict] = None,
                 advantage: str = "grpo", advantage_kwargs: Optional[dict] = None,
                 kl: Optional[str] = None, kl_coef: float = 0.0, entropy_coef: float = 0.0,
                 value_coef: float = 0.5, value_clip: Optional[float] = 0.2,
                 value_trunk_grad: bool = True,
                 gamma: float = 1.0, lam: float = 1.0, tis: Optional[dict] = None,
                 temperature: float = 1.0, num_micro_batches: int = 1,
                 logprob_impl: str = "auto", mesh=None) -> RLStep:
  """Builds the pure RL prepare/update functions.

  The minimised objective per optimiser step is

      L = L_pg(lp, lp_old, A) + kl_coef * mean_t KL_est(lp, lp_ref)
          - entropy_coef * mean_t H_t + value_coef * L_V      (L_V only with advantage="gae")

  with ``L_pg`` the registered policy loss ``loss`` (``jaxrl_llm.losses``),
  ``A`` from the registered advantage estimator ``advantage`` (group
  estimators get ``group_size``; ``gae`` uses a linear value head on the
  policy's hidden states, i.e. PPO with a shared trunk, unless
  ``value_trunk_grad=False``), ``KL_est`` the
  estimator ``kl`` (e.g. ``"k3"``, GRPO's choice) against a frozen reference.

  Args:
    config: the policy's ModelConfig.
    optimizer: optax transformation over ``(params, value_params)``.
    group_size: G, completions per prompt (rows are grouped contiguously).
    loss, loss_kwargs: policy loss name and options (``clip_low``, ``agg_mode`` ...).
    advantage, advantage_kwargs: advantage estimator name and options.
    kl, kl_coef: KL estimator name (None: no KL term and no reference model needed).
    entropy_coef: entropy bonus weight.
    value_coef, value_clip, gamma, lam: PPO critic options (advantage="gae").
    value_trunk_grad: whether L_V's gradient reaches the policy trunk (True: a
      shared trunk, as in PPO with one network; False: the value head is a linear
      probe on stop-gradient hidden states, so L_V leaves the policy untouched).
    tis: None, or options of :func:`jaxrl_llm.losses.truncated_importance_weights`
      (``level``, ``mode``, ``cap``, ``lower``) to reweight by trainer/sampler ratio.
    temperature: the sampling temperature (log-probs are taken at it).
    num_micro_batches: gradient accumulation chunks per optimiser step.
    logprob_impl: backend of the fused log-prob kernel.
    mesh: the training mesh; when its ``tensor`` axis splits the vocabulary the
      log-probs are computed vocab-parallel (see ``training.sequence_logprobs``).
  """
  pg_fn = losses.get_policy_loss(loss)
  loss_kwargs = dict(loss_kwargs or {})
  bad = set(loss_kwargs) - set(inspect.signature(pg_fn).parameters)
  if bad:
    raise ValueError(f"loss_kwargs {sorted(bad)} are not options of policy loss {loss!r}")
  if advantage not in ADVANTAGES:
    raise ValueError(f"unknown advantage estimator {advantage!r}; known: {', '.join(ADVANTAGES)}")
  adv_fn = losses.get_advantage_estimator(advantage)
  advantage_kwargs = dict(advantage_kwargs or {})
  kl_fn = losses.get_kl(kl) if kl is not None else None
  if kl_fn is None and kl_coef:
    raise ValueError(f"kl_coef={kl_coef} needs a KL estimator name in kl")
  if not isinstance(group_size, int) or group_size < 1:
    raise ValueError(f"group_size must be a positive int, got {group_size!r}")
  use_value = advantage == "gae"
  tis = dict(tis) if tis else None

  def logprobs_of(params, b, want_entropy):
    return completion_logprobs(config, params, b["prompt_tokens"], b["prompt_mask"],
                               b["completion_tokens"], b["completion_mask"],
                               temperature=temperature, want_entropy=want_entropy,
                               impl=logprob_impl, mesh=mesh)

  def prepare(params, value_params, ref_params, batch):
    _check_batch(batch, RL_BATCH_KEYS)
    b, _ = batch["completion_tokens"].shape
    if b % group_size:
      raise ValueError(f"batch of {b} rows is not divisible by group_size={group_size}")
    mask = batch["completion_mask"].astype(jnp.float32)
    rewards = batch["rewards"].astype(jnp.float32)
    cur = logprobs_of(params, batch, want_entropy=True)
    old_logprobs = sg(cur.logprobs)
    out = dict(batch, old_logprobs=old_logprobs)
    metrics = {"entropy": masked_mean(cur.entropy, mask)}
    if kl_fn is not None:
      if ref_params is None:
        raise ValueError(f"kl={kl!r} needs ref_params (a frozen reference model)")
      out["ref_logprobs"] = sg(logprobs_of(ref_params, batch, want_entropy=False).logprobs)
      metrics["kl"] = masked_mean(kl_fn(old_logprobs, out["ref_logprobs"]), mask)
    # Sampler/trainer mismatch (always measured) and optional truncated IS.
    w, is_metrics = losses.truncated_importance_weights(
        old_logprobs, batch["sampler_logprobs"].astype(jnp.float32), mask, **(tis or {}))
    metrics.update({f"mismatch/{k}": v for k, v in is_metrics.items()})
    if tis is not None:
      out["is_weights"] = w
    if advantage in GROUP_ADVANTAGES:
      adv = adv_fn(rewards, group_size=group_size, **advantage_kwargs)[:, None] * mask
    elif advantage == "opo":
      adv = adv_fn(rewards, jnp.sum(mask, 1), group_size=group_size, **advantage_kwargs)[:, None] * mask
    elif advantage == "reinforce_plus_plus_baseline":
      adv = adv_fn(rewards, mask, group_size=group_size, **advantage_kwargs)
    elif advantage == "reinforce_plus_plus":
      adv, _ = adv_fn(_terminal_rewards(rewards, mask), mask, gamma=gamma, **advantage_kwargs)
    else:  # gae
      old_values = sg(value_head_apply(value_params, cur.hidden)) * mask
      adv, returns = adv_fn(_terminal_rewards(rewards, mask), old_values, mask, gamma=gamma,
                            lam=lam, **advantage_kwargs)
      out["old_values"], out["returns"] = old_values, returns
      metrics["value_mean"] = masked_mean(old_values, mask)
    out["advantages"] = sg(adv.astype(jnp.float32))
    metrics["advantage_abs_mean"] = masked_mean(jnp.abs(out["advantages"]), mask)
    return out, metrics

  def terms_fn(all_params, mb):
    params, value_params = all_params
    mask = mb["completion_mask"].astype(jnp.float32)
    cur = logprobs_of(params, mb, want_entropy=True)
    pg = pg_fn(cur.logprobs, mb["old_logprobs"], mb["advantages"], mask,
               is_weights=mb.get("is_weights"), **loss_kwargs)
    totals = {"pg": pg.total, "entropy": masked_sum(cur.entropy, mask)}
    metrics = dict(pg.metrics)
    if kl_fn is not None:
      totals["kl"] = masked_sum(kl_fn(cur.logprobs, mb["ref_logprobs"]), mask)
    if use_value:
      hidden = cur.hidden if value_trunk_grad else sg(cur.hidden)
      values = value_head_apply(value_params, hidden)
      vf = losses.clipped_value_loss(values, mb["old_values"], mb["returns"], mask,
                                     clip=value_clip)
      totals["value"] = vf.total
      metrics.update(vf.metrics)
    return totals, metrics

  def counts_of(batch):
    """Counts of the whole batch: the policy loss's count is its aggregation's count."""
    mask = batch["completion_mask"].astype(jnp.float32)
    zeros = jnp.zeros(mask.shape, jnp.float32)
    pg = pg_fn(zeros, zeros, zeros, mask, **loss_kwargs)
    tokens = jnp.sum(mask)
    return {"pg": pg.count, "entropy": tokens, "kl": tokens, "value": tokens}

  coefs = {"pg": 1.0, "kl": kl_coef, "entropy": -entropy_coef,
           "value": value_coef if use_value else 0.0}

  def update(state: TrainState, batch):
    _check_batch(batch, RL_BATCH_KEYS + ("old_logprobs", "advantages"))
    counts = counts_of(batch)
    loss_value, grads, terms, metrics = accumulate_gradients(
        terms_fn, (state.params, state.value_params), batch, counts, coefs, num_micro_batches)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state,
                                          (state.params, state.value_params))
    params, value_params = optax.apply_updates((state.params, state.value_params), updates)
    metrics = dict(metrics, loss=loss_value, grad_norm=grad_norm,
                   pg_loss=terms["pg"], entropy=terms["entropy"])
    if "kl" in terms:
      metrics["kl"] = terms["kl"]
    if "value" in terms:
      metrics["value_loss"] = terms["value"]
    return TrainState(state.step + 1, params, value_params, opt_state), metrics

  return RLStep(prepare, update)

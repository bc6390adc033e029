"""RL step builders: prepare a rollout batch (old/ref log-probs, advantages), then update.

One rollout batch is used for ``ppo_epochs`` passes of ``num_minibatches``
optimiser steps each (Schulman et al. 2017, "Proximal Policy Optimization
Algorithms"); the behaviour log-probs ``old_logprobs`` are the trainer's
log-probs before the first update, so the importance ratio of the first step is
exactly 1. The sampler's own log-probs only enter through the sampler/trainer
mismatch metrics and optional truncated importance sampling (Yao et al. 2025,
"Your Efficient RL Framework Secretly Brings You Off-Policy RL Training").

When a rollout batch feeds exactly one optimiser step (``single_update=True``),
``lp_old = lp`` at that step, so ``prepare`` skips the trainer forward and
``update`` uses ``stop_gradient(lp)`` as ``old_logprobs`` (as TRL and verl do);
the entropy and mismatch metrics then come from ``update``.

The batch is a :class:`jaxrl_llm.training.RolloutBatch`; every token term
(policy loss, KL, entropy, value loss, advantages) is masked by its
``loss_mask``, so forced prefix / hint tokens get no gradient, while the
log-probs see the whole completion (``completion_mask``) as context.
"""

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxrl_llm import losses, models
from jaxrl_llm.models import lora
from jaxrl_llm.losses import masked_mean, masked_sum
from jaxrl_llm.training.accumulate import accumulate_gradients
from jaxrl_llm.training.batch import RolloutBatch, check_rollout_batch
from jaxrl_llm.training.logprobs import completion_logprobs
from jaxrl_llm.training.state import TrainState, value_head_apply

sg = jax.lax.stop_gradient


class RLStep(NamedTuple):
  """``prepare(state, batch, ref_params=None) -> (batch, metrics)`` (no gradient) and
  ``update(state, batch) -> (state, metrics)`` (one optimiser step); both pure and jit-able.

  ``uses_values``: the advantage estimator reads a critic (the state needs
  ``value_params``, see :func:`jaxrl_llm.training.init_value_head`).
  """

  prepare: Callable
  update: Callable
  uses_values: bool = False


def make_rl_step(config: models.ModelConfig, optimizer: optax.GradientTransformation, *,
                 group_size: int, loss: str = "ppo", loss_kwargs: Optional[dict] = None,
                 advantage: str = "grpo", advantage_kwargs: Optional[dict] = None,
                 kl: Optional[str] = None, kl_coef: float = 0.0, entropy_coef: float = 0.0,
                 value_coef: float = 0.5, value_clip: Optional[float] = 0.2,
                 value_trunk_grad: bool = True, tis: Optional[dict] = None,
                 temperature: float = 1.0, num_micro_batches: int = 1,
                 single_update: bool = False, logprob_impl: str = "auto",
                 mesh=None) -> RLStep:
  """Builds the pure RL prepare/update functions.

  The minimised objective per optimiser step is

      L = L_pg(lp, lp_old, A) + kl_coef * mean_t KL_est(lp, lp_ref)
          - entropy_coef * mean_t H_t + value_coef * L_V      (L_V only with a critic)

  with ``L_pg`` the registered policy loss ``loss``, ``A`` from the registered
  advantage estimator ``advantage`` (``losses.get_advantage_estimator``: one
  signature for all, so nothing here depends on which), ``KL_est`` the
  registered estimator ``kl`` (e.g. ``"k3"``, GRPO's choice) against a frozen
  reference. Means are over ``loss_mask`` tokens. An estimator registered with
  ``uses_values`` (GAE) gets a linear value head on the policy's hidden states,
  i.e. PPO with a shared trunk, unless ``value_trunk_grad=False``.

  Args:
    config: the policy's ModelConfig.
    optimizer: optax transformation over ``(lora.trainable(params), value_params)``
      (the params themselves without LoRA; with ``state.params`` a
      ``models.lora.LoraParams`` only its adapters are trained, the base is frozen).
    group_size: G, completions per prompt; the batch must have a multiple of G rows.
    loss, loss_kwargs: policy loss name and options (``clip_low``, ``agg_mode`` ...).
    advantage, advantage_kwargs: advantage estimator name and options (e.g.
      ``std_scope`` for grpo, ``gamma``/``lam``/``whiten`` for gae).
    kl, kl_coef: KL estimator name (None: no KL term and no reference model needed).
    entropy_coef: entropy bonus weight.
    value_coef, value_clip: critic loss weight and clip (estimators with a critic).
    value_trunk_grad: whether L_V's gradient reaches the policy trunk (True: a
      shared trunk, as in PPO with one network; False: the value head is a linear
      probe on stop-gradient hidden states, so L_V leaves the policy untouched).
    tis: None, or options of :func:`jaxrl_llm.losses.truncated_importance_weights`
      (``level``, ``mode``, ``cap``, ``lower``) to reweight by trainer/sampler ratio.
    temperature: the sampling temperature (log-probs are taken at it).
    num_micro_batches: gradient accumulation chunks per optimiser step.
    single_update: the batch feeds exactly one optimiser step (ppo_epochs = 1,
      one minibatch): ``prepare`` skips the trainer forward for ``old_logprobs``
      (unless the critic needs the hidden states) and ``update`` takes
      ``stop_gradient(lp)`` for them; same update, one forward fewer.
    logprob_impl: backend of the fused log-prob kernel.
    mesh: the training mesh; when its ``tensor`` axis splits the vocabulary the
      log-probs are computed vocab-parallel (see ``training.sequence_logprobs``).
  """
  pg_fn = losses.get_policy_loss(loss)
  loss_kwargs = losses.check_options(pg_fn, loss_kwargs, f"policy loss {loss!r}", skip=4)
  estimator = losses.get_advantage_estimator(advantage)
  advantage_kwargs = losses.check_options(estimator.fn, advantage_kwargs,
                                          f"advantage estimator {advantage!r}", skip=1)
  kl_fn = losses.get_kl(kl) if kl is not None else None
  if kl_fn is None and kl_coef:
    raise ValueError(f"kl_coef={kl_coef} needs a KL estimator name in kl")
  if not isinstance(group_size, int) or group_size < 1:
    raise ValueError(f"group_size must be a positive int, got {group_size!r}")
  use_value = estimator.uses_values
  tis = dict(tis) if tis else None
  prepare_forward = use_value or not single_update

  def logprobs_of(params, b: RolloutBatch, want_entropy):
    return completion_logprobs(config, params, b.prompt_tokens, b.prompt_mask,
                               b.completion_tokens, b.completion_mask,
                               temperature=temperature, want_entropy=want_entropy,
                               impl=logprob_impl, mesh=mesh)

  def mismatch(old_logprobs, b: RolloutBatch, mask):
    """Sampler/trainer mismatch metrics (always) and the TIS weights (or None)."""
    w, is_metrics = losses.truncated_importance_weights(
        old_logprobs, b.sampler_logprobs.astype(jnp.float32), mask, **(tis or {}))
    return (w if tis is not None else None), {f"mismatch/{k}": v for k, v in is_metrics.items()}

  def prepare(state: TrainState, batch: RolloutBatch, ref_params=None):
    check_rollout_batch(batch, group_size=group_size)
    mask = batch.loss_mask.astype(jnp.float32)
    metrics, fields = {}, {}
    values = None
    if prepare_forward:
      cur = logprobs_of(lora.model_params(state.params), batch, want_entropy=True)
      old_logprobs = sg(cur.logprobs)
      fields["old_logprobs"] = old_logprobs
      metrics["entropy"] = masked_mean(cur.entropy, mask)
      fields["is_weights"], mm = mismatch(old_logprobs, batch, mask)
      metrics.update(mm)
      if use_value:
        values = sg(value_head_apply(state.value_params, cur.hidden)) * mask
        fields["old_values"] = values
        metrics["value_mean"] = masked_mean(values, mask)
    if kl_fn is not None:
      if ref_params is None:
        raise ValueError(f"kl={kl!r} needs ref_params (a frozen reference model)")
      fields["ref_logprobs"] = sg(logprobs_of(ref_params, batch, want_entropy=False).logprobs)
      if "old_logprobs" in fields:
        metrics["kl"] = masked_mean(kl_fn(fields["old_logprobs"], fields["ref_logprobs"]), mask)
    out = estimator(losses.AdvantageInputs(batch.rewards.astype(jnp.float32), mask,
                                           batch.group_ids, values), **advantage_kwargs)
    fields["advantages"] = sg(out.advantages.astype(jnp.float32) * mask)
    if use_value:
      fields["returns"] = sg(out.returns)
    metrics.update(out.metrics)
    metrics["advantage_abs_mean"] = masked_mean(jnp.abs(fields["advantages"]), mask)
    return batch.replace(**fields), metrics

  def terms_fn(all_params, mb: RolloutBatch, state_params):
    trainable, value_params = all_params
    params = lora.model_params(state_params, trainable)
    mask = mb.loss_mask.astype(jnp.float32)
    cur = logprobs_of(params, mb, want_entropy=True)
    metrics = {}
    old_logprobs, is_weights = mb.old_logprobs, mb.is_weights
    if old_logprobs is None:  # single_update: lp_old = lp at this (only) step
      old_logprobs = sg(cur.logprobs)
      is_weights, mm = mismatch(old_logprobs, mb, mask)
      metrics.update(mm)
    pg = pg_fn(cur.logprobs, old_logprobs, mb.advantages, mask, is_weights=is_weights,
               **loss_kwargs)
    totals = {"pg": pg.total, "entropy": masked_sum(cur.entropy, mask)}
    metrics.update(pg.metrics)
    if kl_fn is not None:
      totals["kl"] = masked_sum(kl_fn(cur.logprobs, mb.ref_logprobs), mask)
    if use_value:
      hidden = cur.hidden if value_trunk_grad else sg(cur.hidden)
      values = value_head_apply(value_params, hidden)
      vf = losses.clipped_value_loss(values, mb.old_values, mb.returns, mask, clip=value_clip)
      totals["value"] = vf.total
      metrics.update(vf.metrics)
    return totals, metrics

  def counts_of(batch: RolloutBatch):
    """Counts of the whole batch: the policy loss's count is its aggregation's count."""
    mask = batch.loss_mask.astype(jnp.float32)
    zeros = jnp.zeros(mask.shape, jnp.float32)
    pg = pg_fn(zeros, zeros, zeros, mask, **loss_kwargs)
    tokens = jnp.sum(mask)
    return {"pg": pg.count, "entropy": tokens, "kl": tokens, "value": tokens}

  coefs = {"pg": 1.0, "kl": kl_coef, "entropy": -entropy_coef,
           "value": value_coef if use_value else 0.0}
  required = (("advantages",) + (() if single_update else ("old_logprobs",))
              + (("ref_logprobs",) if kl_fn is not None else ())
              + (("old_values", "returns") if use_value else ()))

  def update(state: TrainState, batch: RolloutBatch):
    check_rollout_batch(batch, require=required)
    counts = counts_of(batch)
    trained = (lora.trainable(state.params), state.value_params)
    loss_value, grads, terms, metrics = accumulate_gradients(
        lambda p, mb: terms_fn(p, mb, state.params), trained, batch, counts, coefs,
        num_micro_batches)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, trained)
    new_trainable, value_params = optax.apply_updates(trained, updates)
    params = lora.replace_trainable(state.params, new_trainable)
    metrics = dict(metrics, loss=loss_value, grad_norm=grad_norm,
                   pg_loss=terms["pg"], entropy=terms["entropy"])
    if "kl" in terms:
      metrics["kl"] = terms["kl"]
    if "value" in terms:
      metrics["value_loss"] = terms["value"]
    return TrainState(state.step + 1, params, value_params, opt_state), metrics

  return RLStep(prepare, update, use_value)

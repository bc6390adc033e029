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

import inspect
import types
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax

from jaxrl_llm import losses, models
from jaxrl_llm.models import lora
from jaxrl_llm.losses import masked_mean, masked_sum
from jaxrl_llm.training.accumulate import accumulate_gradients
from jaxrl_llm.training.batch import RolloutBatch, check_rollout_batch
from jaxrl_llm.training.logprobs import completion_logprobs, prompts_shared
from jaxrl_llm.training import self_reward, tilted_reference
from jaxrl_llm.training.state import TrainState, apply_gradients, trained_params, value_head_apply

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


class PrepareExtra(NamedTuple):
  """A ``RolloutBatch.extras`` entry that ``prepare`` computes for a policy loss naming it.

  ``fn(config, ref_params, batch, *, temperature, **options) -> (array [B, ...], metrics)``;
  ``needs_ref``: it reads the frozen reference (``ref_params``).
  """

  fn: Callable
  needs_ref: bool = False


PREPARE_EXTRAS = types.MappingProxyType({
    # RAPO (arXiv 2510.03865): log sum_a pi_ref(a)^phi(r), chunked over tokens.
    tilted_reference.TILTED_LOGNORM_KEY: PrepareExtra(tilted_reference.prepare_tilted_lognorm,
                                                      needs_ref=True),
})


def _prepare_hook_options(hooks, pg_fn, loss_kwargs, prepare_extras_kwargs) -> dict:
  """Each hook's options: the policy loss's value (given or default) for a shared name,
  then ``prepare_extras_kwargs`` for the hook's own (checked)."""
  given = dict(prepare_extras_kwargs or {})
  loss_values = {p.name: p.default for p in inspect.signature(pg_fn).parameters.values()
                 if p.kind == p.KEYWORD_ONLY and p.default is not p.empty}
  loss_values.update(loss_kwargs)
  out, used = {}, set()
  for key, hook in hooks.items():
    names = [p.name for p in inspect.signature(hook.fn).parameters.values()
             if p.kind == p.KEYWORD_ONLY and p.name != "temperature"]
    opts = {k: loss_values[k] for k in names if k in loss_values}
    own = {k: v for k, v in given.items() if k in names and k not in loss_values}
    used |= set(own)
    out[key] = {**opts, **own}
  bad = sorted(set(given) - used)
  if bad:
    raise ValueError(f"prepare_extras_kwargs {bad} are not options of the prepare hooks "
                     f"{sorted(hooks) or 'none'} of this policy loss")
  return out


def raise_if_prompts_unshared(metrics, option: str = "make_rl_step(share_prompt_forward=True)"):
  """Raises ``ValueError`` when an update's ``metrics`` report ``prompts_unshared``: the
  batch's groups did not share their prompts, so that update was not applied."""
  if float(metrics.get("prompts_unshared", 0.0)) > 0:
    raise ValueError(f"{option}, but the rows of a group carry different prompts (tokens or "
                     "mask), so the update was not applied; turn the option off for batches "
                     "whose groups are not G copies of one prompt (row-level prompt edits, "
                     "row-shuffled minibatches, appended rows)")


def make_rl_step(config: models.ModelConfig, optimizer: optax.GradientTransformation, *,
                 group_size: int, loss: str = "ppo", loss_kwargs: Optional[dict] = None,
                 advantage: str = "grpo", advantage_kwargs: Optional[dict] = None,
                 kl: Optional[str] = None, kl_coef: float = 0.0, entropy_coef: float = 0.0,
                 value_coef: float = 0.5, value_clip: Optional[float] = 0.2,
                 value_trunk_grad: bool = True, tis: Optional[dict] = None,
                 temperature: float = 1.0, num_micro_batches: int = 1,
                 single_update: bool = False, logprob_impl: str = "auto",
                 pg_coef: float = 1.0, self_reward_token: Optional[int] = None,
                 prepare_extras_kwargs: Optional[dict] = None, mesh=None,
                 share_prompt_forward: bool = False) -> RLStep:
  """Builds the pure RL prepare/update functions.

  The minimised objective per optimiser step is

      L = pg_coef * L_pg(lp, lp_old, A) + kl_coef * mean_t KL_est(lp, lp_ref)
          - entropy_coef * mean_t H_t + value_coef * L_V      (L_V only with a critic)

  with ``L_pg`` the registered policy loss ``loss``, ``A`` from the registered
  advantage estimator ``advantage`` (``losses.get_advantage_estimator``: one
  signature for all, so nothing here depends on which), ``KL_est`` the
  registered estimator ``kl`` (e.g. ``"k3"``, GRPO's choice) against a frozen
  reference. Means are over ``loss_mask`` tokens. A policy loss registered with
  ``inputs`` (``losses.PolicyLoss``, e.g. PACS's rewards and groups, ROVER's
  per-position mean log-probs) gets them as keyword arguments; the batch's
  ``extras`` it names must be present. An estimator registered with
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
    pg_coef: weight of the policy loss (0: the entropy / KL terms alone, e.g. 1-shot
      RLVR's entropy-only ablation, Wang et al. 2025, arXiv 2504.20571).
    self_reward_token: LaSeR's ``z_c`` (Yang et al. 2025, arXiv 2510.14943): the update's
      forward writes it right after each completion (``training.self_reward``) and
      passes its log-prob ``self_reward_logprobs [B]`` and ``self_reward_valid [B]``
      (False: truncated, no room) to a loss that asks for them. Required by such a loss.
    prepare_extras_kwargs: options of the ``prepare`` hooks of :data:`PREPARE_EXTRAS`
      (e.g. ``chunk_size`` of RAPO's tilted-reference normaliser); a hook's options
      that share a name with the policy loss's options take the loss's values.
    mesh: the training mesh; when its ``tensor`` axis splits the vocabulary the
      log-probs are computed vocab-parallel (see ``training.sequence_logprobs``).
    share_prompt_forward: the rows of every group carry the same prompt (as
      `rollout.collect_rollouts` builds them): the prompt's layers then run once per group
      (``training.completion_logprobs(prompt_group_size=G)``), so the policy's forward and
      backward (and prepare's old / reference forwards) cost ``B/G·P + B·N`` tokens
      instead of ``B·(P + N)``; loss and gradient equal the ordinary ones to float32
      rounding (benchmarks/rl_step_vs_trl.py: update 0.47 -> 0.42 s). A (micro-)batch
      whose rows do not split into groups ignores it. ``update`` checks the precondition
      on the values: a batch whose groups' prompts differ leaves the state unchanged and
      reports ``prompts_unshared = 1`` (``training.raise_if_prompts_unshared``).
  """
  pg_entry = losses.get_policy_loss_entry(loss)
  pg_fn = pg_entry.fn
  loss_kwargs = losses.check_options(pg_fn, loss_kwargs, f"policy loss {loss!r}", skip=4)
  clash = sorted(set(loss_kwargs) & set(pg_entry.inputs))
  if clash:
    raise ValueError(f"{clash} of policy loss {loss!r} are filled in from the batch, not options")
  pg_inputs = set(pg_entry.inputs)
  want_mean = bool(pg_inputs & {"mean_logprobs", "old_mean_logprobs"})
  needs_ref = kl is not None or "ref_logprobs" in pg_inputs
  wants_self_reward = bool(pg_inputs & {"self_reward_logprobs", "self_reward_valid"})
  if wants_self_reward and self_reward_token is None:
    raise ValueError(f"policy loss {loss!r} reads the self-reward token's log-prob: give "
                     "make_rl_step(self_reward_token=<token id>)")
  if self_reward_token is not None and not 0 <= self_reward_token < config.vocab_size:
    raise ValueError(f"self_reward_token={self_reward_token} must be in [0, vocab_size="
                     f"{config.vocab_size})")
  prepare_hooks = {k: PREPARE_EXTRAS[k] for k in pg_entry.extras if k in PREPARE_EXTRAS}
  hook_kwargs = _prepare_hook_options(prepare_hooks, pg_fn, loss_kwargs, prepare_extras_kwargs)
  needs_ref = needs_ref or any(h.needs_ref for h in prepare_hooks.values())
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

  def logprobs_of(params, b: RolloutBatch, want_entropy, want_mean_logprob=False,
                  shared=False):
    """``shared``: the rows of every group carry the same prompt (static)."""
    extra = {"want_mean_logprob": True} if want_mean_logprob else {}
    return completion_logprobs(config, params, b.prompt_tokens, b.prompt_mask,
                               b.completion_tokens, b.completion_mask,
                               temperature=temperature, want_entropy=want_entropy,
                               impl=logprob_impl, mesh=mesh,
                               prompt_group_size=group_size if shared else None,
                               **extra)

  def sharing(rows: int) -> bool:
    """Static: a (micro-)batch of ``rows`` rows takes the shared-prompt forward."""
    return share_prompt_forward and group_size > 1 and rows % group_size == 0

  def forward_logprobs(params, b: RolloutBatch, **kwargs):
    """`logprobs_of` of the whole batch (prepare's old / reference log-probs)."""
    return logprobs_of(params, b, shared=sharing(b.num_rows), **kwargs)

  def mismatch(old_logprobs, b: RolloutBatch, mask):
    """Sampler/trainer mismatch metrics (always, over sampled rows: off-policy rows
    have no sampler log-probs) and the TIS weights (or None)."""
    on_policy = mask * (~b.is_off_policy.astype(bool))[:, None].astype(mask.dtype)
    w, is_metrics = losses.truncated_importance_weights(
        old_logprobs, b.sampler_logprobs.astype(jnp.float32), on_policy, **(tis or {}))
    if w is not None:  # off-policy rows keep weight 1
      w = jnp.where(on_policy > 0, w, 1.0)
    return (w if tis is not None else None), {f"mismatch/{k}": v for k, v in is_metrics.items()}

  def appended(b: RolloutBatch):
    """LaSeR's ``z_c`` written after each completion (None without a token)."""
    if self_reward_token is None:
      return None
    return self_reward.append_self_reward_token(b.completion_tokens, b.completion_mask,
                                                self_reward_token)

  def loss_inputs(b: RolloutBatch, cur, step):
    """The keyword inputs ``pg_entry.inputs`` of the policy loss, from the batch and
    the current forward ``cur`` (None: zeros of the right shapes, for the counts)."""
    shape = b.loss_mask.shape
    zeros = jnp.zeros(shape, jnp.float32)
    missing = sorted(set(pg_entry.extras) - set(b.extras))
    if missing:
      raise ValueError(f"policy loss {loss!r} needs RolloutBatch.extras {missing} (a batch "
                       f"augmenter, rl.batch_augment, provides them); the batch has "
                       f"{sorted(b.extras) or 'none'}")
    out = {}
    for name in pg_entry.inputs:
      if name == "rewards":
        out[name] = b.rewards.astype(jnp.float32)
      elif name == "group_ids":
        out[name] = b.group_ids
      elif name == "is_off_policy":
        out[name] = b.is_off_policy.astype(bool)
      elif name == "completion_mask":
        out[name] = b.completion_mask.astype(bool)
      elif name == "sampler_logprobs":
        out[name] = b.sampler_logprobs.astype(jnp.float32)
      elif name == "ref_logprobs":
        out[name] = b.ref_logprobs if b.ref_logprobs is not None else zeros
      elif name == "entropy":
        out[name] = zeros if cur is None else cur.entropy
      elif name == "mean_logprobs":
        out[name] = zeros if cur is None else cur.mean_logprobs
      elif name == "old_mean_logprobs":
        if "old_mean_logprobs" in b.extras:
          out[name] = b.extras["old_mean_logprobs"]
        else:  # single_update: the behaviour policy is the current one
          out[name] = zeros if cur is None else sg(cur.mean_logprobs)
      elif name == "self_reward_logprobs":
        out[name] = (jnp.zeros(shape[:1], jnp.float32) if cur is None else
                     self_reward.gather_self_reward_logprobs(cur.logprobs, appended(b)))
      elif name == "self_reward_valid":
        out[name] = appended(b).valid
      elif name == "step":
        out[name] = jnp.asarray(step, jnp.int32)
      elif name == "extras":
        out[name] = b.extras
      else:
        raise ValueError(f"make_rl_step cannot provide input {name!r} of policy loss {loss!r}")
    return out

  def prepare(state: TrainState, batch: RolloutBatch, ref_params=None):
    check_rollout_batch(batch, group_size=group_size)
    mask = batch.loss_mask.astype(jnp.float32)
    metrics, fields = {}, {}
    values = None
    if prepare_forward:
      cur = forward_logprobs(lora.model_params(state.params), batch, want_entropy=True,
                             want_mean_logprob=want_mean)
      old_logprobs = sg(cur.logprobs)
      fields["old_logprobs"] = old_logprobs
      if "old_mean_logprobs" in pg_inputs:
        fields["extras"] = dict(batch.extras, old_mean_logprobs=sg(cur.mean_logprobs))
      metrics["entropy"] = masked_mean(cur.entropy, mask)
      fields["is_weights"], mm = mismatch(old_logprobs, batch, mask)
      metrics.update(mm)
      if use_value:
        values = sg(value_head_apply(state.value_params, cur.hidden)) * mask
        fields["old_values"] = values
        metrics["value_mean"] = masked_mean(values, mask)
    if needs_ref:
      if ref_params is None:
        why = f"kl={kl!r}" if kl is not None else f"policy loss {loss!r}"
        raise ValueError(f"{why} needs ref_params (a frozen reference model)")
      fields["ref_logprobs"] = sg(forward_logprobs(ref_params, batch,
                                                   want_entropy=False).logprobs)
      if kl_fn is not None and "old_logprobs" in fields:
        metrics["kl"] = masked_mean(kl_fn(fields["old_logprobs"], fields["ref_logprobs"]), mask)
    for key, hook in prepare_hooks.items():  # extras a loss needs, from the reference
      extras = dict(fields.get("extras", batch.extras))
      extras[key], hook_metrics = hook.fn(config, ref_params, batch, temperature=temperature,
                                          **hook_kwargs[key])
      fields["extras"] = extras
      metrics.update(hook_metrics)
    out = estimator(losses.AdvantageInputs(batch.rewards.astype(jnp.float32), mask,
                                           batch.group_ids, values,
                                           batch.is_off_policy.astype(bool),
                                           batch.extras.get(losses.TOKEN_REWARDS_KEY)),
                    **advantage_kwargs)
    fields["advantages"] = sg(out.advantages.astype(jnp.float32) * mask)
    if use_value:
      fields["returns"] = sg(out.returns)
    metrics.update(out.metrics)
    metrics["advantage_abs_mean"] = masked_mean(jnp.abs(fields["advantages"]), mask)
    return batch.replace(**fields), metrics

  def terms_fn(all_params, mb: RolloutBatch, state_params, step, shared):
    trainable, value_params = all_params
    params = lora.model_params(state_params, trainable)
    mask = mb.loss_mask.astype(jnp.float32)
    app = appended(mb)
    fwd = mb if app is None else mb.replace(completion_tokens=app.tokens, completion_mask=app.mask)
    # With z_c appended: causal attention leaves the completion's log-probs unchanged and
    # z_c's column lies outside loss_mask, so only the self-reward input reads it.
    cur = logprobs_of(params, fwd, want_entropy=True, want_mean_logprob=want_mean,
                      shared=shared)
    metrics = {}
    old_logprobs, is_weights = mb.old_logprobs, mb.is_weights
    if old_logprobs is None:  # single_update: lp_old = lp at this (only) step
      old_logprobs = sg(cur.logprobs)
      is_weights, mm = mismatch(old_logprobs, mb, mask)
      metrics.update(mm)
    pg = pg_fn(cur.logprobs, old_logprobs, mb.advantages, mask, is_weights=is_weights,
               **loss_inputs(mb, cur, step), **loss_kwargs)
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

  def counts_of(batch: RolloutBatch, step):
    """Counts of the whole batch: the policy loss's count is its aggregation's count
    (a count depends on masks and groups, never on log-prob values)."""
    mask = batch.loss_mask.astype(jnp.float32)
    zeros = jnp.zeros(mask.shape, jnp.float32)
    pg = pg_fn(zeros, zeros, zeros, mask, **loss_inputs(batch, None, step), **loss_kwargs)
    tokens = jnp.sum(mask)
    return {"pg": pg.count, "entropy": tokens, "kl": tokens, "value": tokens}

  coefs = {"pg": pg_coef, "kl": kl_coef, "entropy": -entropy_coef,
           "value": value_coef if use_value else 0.0}
  required = (("advantages",) + (() if single_update else ("old_logprobs",))
              + (("ref_logprobs",) if needs_ref else ())
              + (("old_values", "returns") if use_value else ()))

  def update(state: TrainState, batch: RolloutBatch):
    check_rollout_batch(batch, require=required)
    counts = counts_of(batch, state.step)
    trained = trained_params(state)
    shared = batch.num_rows % num_micro_batches == 0 and sharing(
        batch.num_rows // num_micro_batches)
    loss_value, grads, terms, metrics = accumulate_gradients(
        lambda p, mb: terms_fn(p, mb, state.params, state.step, shared), trained, batch,
        counts, coefs, num_micro_batches)
    new_state, grad_norm = apply_gradients(state, optimizer, grads)
    metrics = dict(metrics, loss=loss_value, grad_norm=grad_norm,
                   pg_loss=terms["pg"], entropy=terms["entropy"])
    if "kl" in terms:
      metrics["kl"] = terms["kl"]
    if "value" in terms:
      metrics["value_loss"] = terms["value"]
    if shared:
      # The shared forward read each group's first prompt only; a batch whose groups do not
      # share their prompts leaves the state as it was and says so (raise_if_prompts_unshared).
      # Not a jax.lax.cond between the two forwards: XLA:CPU ran that update slower than the
      # ordinary one (0.50 vs 0.47 s at the benchmark shape; under autodiff a cond's forward
      # also writes both branches' residuals).
      ok = prompts_shared(batch.prompt_tokens, batch.prompt_mask, group_size)
      new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, state)
      metrics["prompts_unshared"] = (~ok).astype(jnp.float32)
    return new_state, metrics

  return RLStep(prepare, update, use_value)

"""Preference-optimisation step: DPO / IPO / rDPO / SimPO / ORPO / KTO / INPO on
sequence log-probs, one registry lookup (``losses.get_preference_loss``) for the loss.

Batches are dicts of ``[B, T]`` int arrays, each row ``BOS + prompt + response + EOS``
left-padded to ``T`` with ``loss_mask`` 1 on the response and its EOS (the layout of
:func:`jaxrl_llm.training.sft_batch`):

* paired (:func:`preference_batch`): ``chosen_*`` and ``rejected_*`` ``tokens``,
  ``attention_mask``, ``loss_mask`` (:data:`PAIRED_KEYS`); both halves run through the
  model as one ``[2B, T]`` forward.
* unpaired (:func:`unpaired_batch`, KTO): ``tokens``, ``attention_mask``, ``loss_mask``,
  ``labels [B]`` (1 = desirable) and the ``kl_*`` rows of mismatched prompt/response
  pairs for KTO's reference point (:data:`UNPAIRED_KEYS`).

Constant inputs may be precomputed into the batch (``[B]`` float):
``ref_chosen_logps`` / ``ref_rejected_logps`` (or ``ref_logps`` / ``ref_kl_logps``) from
:meth:`PreferenceStep.reference_logps`, and INPO's ``prev_chosen_logps`` /
``prev_rejected_logps`` from :meth:`PreferenceStep.previous_logps`.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl_llm import losses, models
from jaxrl_llm.losses import preference as pref
from jaxrl_llm.models import lora
from jaxrl_llm.training.accumulate import accumulate_gradients
from jaxrl_llm.training.logprobs import sequence_logprobs
from jaxrl_llm.training.state import TrainState, apply_gradients, trained_params

ROW_KEYS = ("tokens", "attention_mask", "loss_mask")
PAIRED_KEYS = tuple(f"{side}_{k}" for side in ("chosen", "rejected") for k in ROW_KEYS)
UNPAIRED_KEYS = ROW_KEYS + ("labels",) + tuple(f"kl_{k}" for k in ROW_KEYS)
PAIRED_REFERENCE_KEYS = ("ref_chosen_logps", "ref_rejected_logps")
UNPAIRED_REFERENCE_KEYS = ("ref_logps", "ref_kl_logps")
PREVIOUS_KEYS = ("prev_chosen_logps", "prev_rejected_logps")


# ---- host-side batches -------------------------------------------------------------------


def rows_from_ids(prompt_ids: Sequence[Sequence[int]], response_ids: Sequence[Sequence[int]],
                  pad_id: int, width: int) -> dict:
  """``tokens``, ``attention_mask``, ``loss_mask`` ``[B, width]`` int32 from token ids:
  row ``i`` is ``prompt_ids[i] + response_ids[i]`` left-padded, ``loss_mask`` 1 on the
  response."""
  if len(prompt_ids) != len(response_ids):
    raise ValueError(f"rows_from_ids: {len(prompt_ids)} prompts but {len(response_ids)} "
                     f"responses")
  seqs, masks = [], []
  for i, (p, a) in enumerate(zip(prompt_ids, response_ids)):
    p, a = list(p), list(a)
    if len(p) + len(a) > width:
      raise ValueError(f"width={width} is shorter than row {i} ({len(p)} prompt + {len(a)} "
                       f"response tokens)")
    seqs.append(p + a)
    masks.append([0] * len(p) + [1] * len(a))
  tokens, attn = models.left_pad(seqs, pad_id, width)
  loss_mask, _ = models.left_pad(masks, 0, width)
  return {"tokens": np.asarray(tokens, np.int32), "attention_mask": np.asarray(attn, np.int32),
          "loss_mask": np.asarray(loss_mask, np.int32)}


def _encode(tokenizer, prompts, responses, width, add_bos):
  try:
    return rows_from_ids([tokenizer.encode(p, add_bos=add_bos) for p in prompts],
                         [tokenizer.encode(r, add_eos=True) for r in responses],
                         tokenizer.pad_id, width)
  except ValueError as e:
    raise ValueError(f"preference batch: {e}") from None


def preference_batch(tokenizer, pairs: Sequence, width: int,
                     add_bos: bool = True) -> dict:
  """A paired batch (:data:`PAIRED_KEYS`) from ``data.preference.PreferencePair`` records."""
  prompts = [p.prompt for p in pairs]
  out = {}
  for side in ("chosen", "rejected"):
    rows = _encode(tokenizer, prompts, [getattr(p, side) for p in pairs], width, add_bos)
    out.update({f"{side}_{k}": v for k, v in rows.items()})
  return out


def paired_batch_from_ids(prompt_ids, chosen_ids, rejected_ids, pad_id: int,
                          width: int) -> dict:
  """A paired batch (:data:`PAIRED_KEYS`) from token ids (e.g. sampled responses, EOS
  included where the sampler stopped), without a decode/encode round trip."""
  out = {}
  for side, ids in (("chosen", chosen_ids), ("rejected", rejected_ids)):
    try:
      rows = rows_from_ids(prompt_ids, ids, pad_id, width)
    except ValueError as e:
      raise ValueError(f"preference batch ({side}): {e}") from None
    out.update({f"{side}_{k}": v for k, v in rows.items()})
  return out


def select_pairs(rewards, group_size: int):
  """``(winners, losers, tied)`` from the verifier rewards ``[P * G]`` of ``G`` responses
  per prompt (contiguous groups): for each prompt whose rewards are not all equal, the
  row of its (first) highest and of its (first) lowest reward; ``tied [P]`` bool marks
  the prompts skipped because every response scored the same (INPO's labelling step)."""
  r = np.asarray(rewards, np.float64)
  if group_size < 2 or r.ndim != 1 or r.shape[0] % group_size:
    raise ValueError(f"select_pairs: rewards of shape {r.shape} do not split into groups of "
                     f"group_size={group_size} (>= 2)")
  g = r.reshape(-1, group_size)
  tied = g.max(axis=1) == g.min(axis=1)
  base = np.arange(g.shape[0]) * group_size
  keep = ~tied
  winners = (base + np.argmax(g, axis=1))[keep]
  losers = (base + np.argmin(g, axis=1))[keep]
  return winners, losers, tied


def mismatched_rows(prompts: Sequence[str]) -> list[int]:
  """For row ``i``, the nearest earlier row (cyclically) with a different prompt, whose
  response KTO's reference point pairs with prompt ``i`` (TRL shifts the responses of a
  batch by one; this also skips rows of the same prompt, e.g. both halves of an unpaired
  pair). Row ``i - 1`` when every prompt is the same."""
  n = len(prompts)
  out = []
  for i in range(n):
    j = next(((i - k) % n for k in range(1, n) if prompts[(i - k) % n] != prompts[i]),
             (i - 1) % n)
    out.append(j)
  return out


def unpaired_batch(tokenizer, responses: Sequence, width: int, add_bos: bool = True) -> dict:
  """An unpaired batch (:data:`UNPAIRED_KEYS`) from ``data.preference.LabelledResponse``
  records; the ``kl_*`` rows pair prompt ``i`` with response :func:`mismatched_rows` ``[i]``."""
  prompts = [r.prompt for r in responses]
  completions = [r.completion for r in responses]
  out = dict(_encode(tokenizer, prompts, completions, width, add_bos))
  other = mismatched_rows(prompts)
  kl = _encode(tokenizer, prompts, [completions[j] for j in other], width, add_bos)
  out.update({f"kl_{k}": v for k, v in kl.items()})
  out["labels"] = np.asarray([bool(r.label) for r in responses], np.int32)
  return out


# ---- log-probs ---------------------------------------------------------------------------


def sequence_logps(config: models.ModelConfig, params, tokens: jax.Array,
                   attention_mask: jax.Array, loss_mask: jax.Array, *,
                   impl: str = "auto", mesh=None) -> jax.Array:
  """``[B]`` summed log-probs ``sum_t loss_mask[t] log pi(tokens[t] | tokens[<t])``."""
  out = sequence_logprobs(config, params, tokens, attention_mask, impl=impl, mesh=mesh)
  return jnp.sum(out.logprobs * loss_mask[:, 1:].astype(jnp.float32), axis=-1)


def response_lengths(loss_mask: jax.Array) -> jax.Array:
  """``[B]`` response token counts (the tokens that get a log-prob)."""
  return jnp.sum(loss_mask[:, 1:].astype(jnp.int32), axis=-1)


class PreferenceStep(NamedTuple):
  """What :func:`make_preference_step` returns (pure functions, jit them).

  update(state, batch, ref_params=None) -> (state, metrics): one optimiser step.
    Reference log-probs missing from the batch are computed from ``ref_params`` or,
    with ``state.params`` a ``lora.LoraParams``, from its frozen base.
  reference_logps(ref_params, batch) -> dict: the reference's ``[B]`` log-probs
    (:data:`PAIRED_REFERENCE_KEYS` or :data:`UNPAIRED_REFERENCE_KEYS`), to merge into a
    batch that is used more than once.
  previous_logps(params, batch) -> dict: ``prev_chosen_logps`` / ``prev_rejected_logps``
    under ``params`` (INPO's previous iterate; model params or ``LoraParams``).
  entry: the registry row (``losses.PreferenceLoss``).
  """

  update: Callable
  reference_logps: Callable
  previous_logps: Callable
  entry: pref.PreferenceLoss


def _check_keys(batch, keys, what):
  missing = [k for k in keys if k not in batch]
  if missing:
    raise ValueError(f"{what} batch is missing {missing}; expected keys {list(keys)}")


def make_preference_step(config: models.ModelConfig, optimizer: optax.GradientTransformation,
                         *, loss: str, loss_kwargs: Optional[dict] = None,
                         num_micro_batches: int = 1, logprob_impl: str = "auto",
                         mesh=None) -> PreferenceStep:
  """Step functions for the preference loss ``loss`` (``losses.PREFERENCE_LOSSES``).

  The objective is ``L = sum_pairs loss / B`` (``count = B`` pairs, or responses for
  KTO), differentiated in ``num_micro_batches`` sequential chunks exactly
  (``accumulate_gradients``). With ``state.params`` a ``lora.LoraParams`` only the
  adapters are differentiated and updated and the reference defaults to the frozen
  base. KTO's reference point ``z0`` is computed once over the whole batch (it is a
  batch statistic, not differentiated), before the micro-batches.
  ``mesh``: the training mesh, for vocab-parallel log-probs.
  """
  entry = losses.get_preference_loss(loss)
  options = pref.check_preference_options(loss, loss_kwargs)
  row_keys = PAIRED_KEYS if entry.paired else UNPAIRED_KEYS
  ref_keys = PAIRED_REFERENCE_KEYS if entry.paired else UNPAIRED_REFERENCE_KEYS

  def logps(model_params, batch, prefix=""):
    return sequence_logps(config, model_params, batch[f"{prefix}tokens"],
                          batch[f"{prefix}attention_mask"], batch[f"{prefix}loss_mask"],
                          impl=logprob_impl, mesh=mesh)

  def paired_logps(model_params, batch):
    """One ``[2B, T]`` forward for the chosen and rejected rows."""
    both = {k: jnp.concatenate([jnp.asarray(batch[f"chosen_{k}"]),
                                jnp.asarray(batch[f"rejected_{k}"])]) for k in ROW_KEYS}
    lp = logps(model_params, both)
    b = lp.shape[0] // 2
    return lp[:b], lp[b:]

  def reference_logps(ref_params, batch):
    _check_keys(batch, row_keys, f"preference ({loss})")
    ref = jax.lax.stop_gradient(lora.model_params(ref_params))
    if entry.paired:
      c, r = paired_logps(ref, batch)
      return {"ref_chosen_logps": c, "ref_rejected_logps": r}
    return {"ref_logps": logps(ref, batch), "ref_kl_logps": logps(ref, batch, "kl_")}

  def previous_logps(params, batch):
    if not entry.paired:
      raise ValueError(f"preference loss {loss!r} is unpaired; previous-iterate log-probs "
                       f"are for paired losses (INPO)")
    _check_keys(batch, row_keys, f"preference ({loss})")
    c, r = paired_logps(jax.lax.stop_gradient(lora.model_params(params)), batch)
    return {"prev_chosen_logps": c, "prev_rejected_logps": r}

  def update(state: TrainState, batch, ref_params=None):
    _check_keys(batch, row_keys, f"preference ({loss})")
    batch = dict(batch)
    if entry.needs_reference and any(k not in batch for k in ref_keys):
      if ref_params is None and lora.is_lora(state.params):
        ref_params = lora.base_params(state.params)
      if ref_params is None:
        raise ValueError(f"preference loss {loss!r} needs a reference model: pass ref_params, "
                         f"use LoRA (the frozen base), or precompute {list(ref_keys)} into "
                         f"the batch (PreferenceStep.reference_logps)")
      batch.update(reference_logps(ref_params, batch))
    if entry.needs_previous:
      _check_keys(batch, PREVIOUS_KEYS, f"preference ({loss}) previous-iterate")
    whole = {}
    if not entry.paired:  # KTO's z0: one batch statistic, without gradient
      whole["policy_kl_logps"] = jax.lax.stop_gradient(
          logps(lora.model_params(state.params), batch, "kl_"))
      whole["ref_kl_logps"] = batch.pop("ref_kl_logps")
      for k in ("kl_tokens", "kl_attention_mask", "kl_loss_mask"):
        batch.pop(k)
    n = batch["chosen_tokens" if entry.paired else "tokens"].shape[0]
    counts = {"pref": jnp.asarray(n, jnp.float32)}

    def terms_fn(trained, mb):
      model_params = lora.model_params(state.params, trained[0])
      if entry.paired:
        pc, pr = paired_logps(model_params, mb)
        avail = {"chosen_lengths": response_lengths(mb["chosen_loss_mask"]),
                 "rejected_lengths": response_lengths(mb["rejected_loss_mask"])}
        avail.update({k: mb[k] for k in PAIRED_REFERENCE_KEYS + PREVIOUS_KEYS if k in mb})
        out = entry.fn(pc, pr, **{k: avail[k] for k in entry.inputs}, **options)
      else:
        avail = dict(whole, labels=mb["labels"], ref_logps=mb.get("ref_logps"))
        out = entry.fn(logps(model_params, mb), **{k: avail[k] for k in entry.inputs},
                       **options)
      return {"pref": out.total}, dict(out.metrics)

    trained = trained_params(state)
    loss_value, grads, _, metrics = accumulate_gradients(
        terms_fn, trained, batch, counts, {"pref": 1.0}, num_micro_batches)
    new_state, grad_norm = apply_gradients(state, optimizer, grads)
    mask_keys = ("chosen_loss_mask", "rejected_loss_mask") if entry.paired else ("loss_mask",)
    tokens = sum(jnp.sum(response_lengths(batch[k])) for k in mask_keys)
    metrics = dict(metrics, loss=loss_value, grad_norm=grad_norm,
                   tokens=tokens.astype(jnp.float32))
    return new_state, metrics

  return PreferenceStep(update, reference_logps, previous_logps, entry)

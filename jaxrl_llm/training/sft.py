"""Supervised fine-tuning step: masked next-token cross-entropy."""

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl_llm import models
from jaxrl_llm.models import lora
from jaxrl_llm.losses import masked_sum
from jaxrl_llm.losses.pear import pear_sft_loss
from jaxrl_llm.training.accumulate import accumulate_gradients
from jaxrl_llm.training.logprobs import sequence_logprobs
from jaxrl_llm.training.state import TrainState, apply_gradients, trained_params

SFT_BATCH_KEYS = ("tokens", "attention_mask", "loss_mask")


def _check_batch(batch, keys):
  missing = [k for k in keys if k not in batch]
  if missing:
    raise ValueError(f"batch is missing {missing}; expected keys {list(keys)}")


def sft_batch(tokenizer, examples, width: int, add_bos: bool = True,
              echo: Optional[Sequence[bool]] = None) -> dict:
  """An SFT batch from prompt/completion examples (``data.Example``).

  Row ``i``: BOS (if ``add_bos``) + prompt + completion + EOS, left-padded to
  ``width``; ``loss_mask`` is 1 on completion + EOS. ``echo[i]`` True makes
  demonstration ``i`` deliberately imperfect, ``"46=46"`` instead of ``"46"``
  (right answer, wrong format: experiments/demo_rlvr.py's setting). Returns the
  ``SFT_BATCH_KEYS`` as int32 NumPy arrays ``[B, width]``.
  """
  seqs, masks = [], []
  for i, ex in enumerate(examples):
    p = tokenizer.encode(ex.prompt, add_bos=add_bos)
    text = ex.completion + "=" + ex.completion if echo is not None and echo[i] else ex.completion
    a = tokenizer.encode(text, add_eos=True)
    if len(p) + len(a) > width:
      raise ValueError(f"sft_batch: width={width} is shorter than example {i} "
                       f"({len(p) + len(a)} tokens): {ex.prompt!r}")
    seqs.append(p + a)
    masks.append([0] * len(p) + [1] * len(a))
  tokens, attn = models.left_pad(seqs, tokenizer.pad_id, width)
  loss_mask, _ = models.left_pad(masks, 0, width)
  return {"tokens": np.asarray(tokens, np.int32), "attention_mask": np.asarray(attn, np.int32),
          "loss_mask": np.asarray(loss_mask, np.int32)}


def make_sft_step(config: models.ModelConfig, optimizer: optax.GradientTransformation, *,
                  num_micro_batches: int = 1, logprob_impl: str = "auto",
                  mesh=None, pear: Optional[dict] = None) -> Callable:
  """``step(state, batch) -> (state, metrics)`` minimising the token-mean NLL.

  ``batch``: ``tokens [B, T]`` (left-padded), ``attention_mask [B, T]``,
  ``loss_mask [B, T]`` (1 on the tokens to learn, e.g. the answer). The loss is

      L = - sum_{b,t} m_{b,t+1} log pi(x_{b,t+1} | x_{b,<=t}) / sum m_{b,t+1}

  ``mesh``: the training mesh, for vocab-parallel log-probs (``sequence_logprobs``).
  With ``state.params`` a ``models.lora.LoraParams`` only its adapters are
  differentiated and updated (the base is frozen; ``lora.model_params``).

  ``pear``: None (plain SFT, the code above unchanged) or the keyword options of
  ``losses.pear.pear_weights`` (mode, gamma, clip_low, clip_high, block_size,
  log_weight_clip): PEAR's importance-weighted SFT (SECONDARY, arXiv 2602.01058),
  ``L = sum_t sg[G_t] (-lp_t) / #tokens``. The batch then also holds
  ``behavior_logprobs [B, T-1]``, the log-probs of ``tokens[:, 1:]`` under the policy that
  generated the data (aligned with ``sequence_logprobs``); metrics gain ``pear_*``.
  """
  if pear is not None:
    return _make_pear_sft_step(config, optimizer, dict(pear), num_micro_batches, logprob_impl,
                               mesh)

  def terms_fn(params, mb):
    out = sequence_logprobs(config, params, mb["tokens"], mb["attention_mask"], impl=logprob_impl,
                            mesh=mesh)
    m = mb["loss_mask"][:, 1:].astype(jnp.float32)
    return {"nll": masked_sum(-out.logprobs, m)}, {}

  def step(state: TrainState, batch):
    _check_batch(batch, SFT_BATCH_KEYS)
    counts = {"nll": jnp.sum(batch["loss_mask"][:, 1:].astype(jnp.float32))}

    def wrapped(p, mb):
      return terms_fn(lora.model_params(state.params, p[0]), mb)

    trained = trained_params(state)
    loss, grads, terms, metrics = accumulate_gradients(
        wrapped, trained, batch, counts, {"nll": 1.0}, num_micro_batches)
    new_state, grad_norm = apply_gradients(state, optimizer, grads)
    metrics = dict(metrics, loss=loss, nll=terms["nll"], grad_norm=grad_norm,
                   tokens=counts["nll"])
    return new_state, metrics

  return step


PEAR_BATCH_KEYS = SFT_BATCH_KEYS + ("behavior_logprobs",)


def _make_pear_sft_step(config, optimizer, pear: dict, num_micro_batches: int,
                        logprob_impl: str, mesh) -> Callable:
  """``make_sft_step(..., pear=options)``: the SFT step with PEAR's weighted NLL."""

  def terms_fn(params, mb):
    out = sequence_logprobs(config, params, mb["tokens"], mb["attention_mask"], impl=logprob_impl,
                            mesh=mesh)
    m = mb["loss_mask"][:, 1:].astype(jnp.float32)
    res = pear_sft_loss(out.logprobs, mb["behavior_logprobs"].astype(jnp.float32), m, **pear)
    return ({"pear": res.total, "nll": masked_sum(-out.logprobs, m)},
            {f"pear_{k}": v for k, v in res.metrics.items() if k != "nll"})

  def step(state: TrainState, batch):
    _check_batch(batch, PEAR_BATCH_KEYS)
    tokens = jnp.sum(batch["loss_mask"][:, 1:].astype(jnp.float32))
    counts = {"pear": tokens, "nll": tokens}

    def wrapped(p, mb):
      return terms_fn(lora.model_params(state.params, p[0]), mb)

    trained = trained_params(state)
    loss, grads, terms, metrics = accumulate_gradients(
        wrapped, trained, batch, counts, {"pear": 1.0}, num_micro_batches)
    new_state, grad_norm = apply_gradients(state, optimizer, grads)
    metrics = dict(metrics, loss=loss, nll=terms["nll"], grad_norm=grad_norm, tokens=tokens)
    return new_state, metrics

  return step


def behavior_logprobs_from_examples(examples, batch: dict,
                                    key: str = "behavior_logprobs") -> np.ndarray:
  """``[B, T-1]`` behaviour log-probs stored in the data, aligned with ``sequence_logprobs``.

  ``examples[i].metadata[key]``: one float per learned token of row ``i`` (completion +
  EOS, i.e. ``sum(loss_mask[i])`` values), as the generating policy scored them. Rows are
  left-padded with the completion last, so they fill the last columns.
  """
  mask = np.asarray(batch["loss_mask"])[:, 1:]
  out = np.zeros(mask.shape, np.float32)
  for i, ex in enumerate(examples):
    values = (ex.metadata or {}).get(key)
    if values is None:
      raise ValueError(f"example {i} ({ex.prompt!r}) has no metadata[{key!r}]: pear.behavior="
                       f"'data' needs per-token behaviour log-probs in the data "
                       f"(use pear.behavior='init' for a frozen copy of the initial model)")
    n = int(mask[i].sum())
    values = np.asarray(values, np.float32).reshape(-1)
    if values.shape[0] != n:
      raise ValueError(f"example {i}: metadata[{key!r}] has {values.shape[0]} values for "
                       f"{n} completion tokens (completion + EOS)")
    out[i, mask.shape[1] - n:] = values
  return out

"""Supervised fine-tuning step: masked next-token cross-entropy."""

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl_llm import models
from jaxrl_llm.models import lora
from jaxrl_llm.losses import masked_sum
from jaxrl_llm.training.accumulate import accumulate_gradients
from jaxrl_llm.training.logprobs import sequence_logprobs
from jaxrl_llm.training.state import TrainState

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
                  mesh=None) -> Callable:
  """``step(state, batch) -> (state, metrics)`` minimising the token-mean NLL.

  ``batch``: ``tokens [B, T]`` (left-padded), ``attention_mask [B, T]``,
  ``loss_mask [B, T]`` (1 on the tokens to learn, e.g. the answer). The loss is

      L = - sum_{b,t} m_{b,t+1} log pi(x_{b,t+1} | x_{b,<=t}) / sum m_{b,t+1}

  ``mesh``: the training mesh, for vocab-parallel log-probs (``sequence_logprobs``).
  With ``state.params`` a ``models.lora.LoraParams`` only its adapters are
  differentiated and updated (the base is frozen; ``lora.model_params``).
  """

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

    trained = (lora.trainable(state.params), state.value_params)
    loss, grads, terms, metrics = accumulate_gradients(
        wrapped, trained, batch, counts, {"nll": 1.0}, num_micro_batches)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = optimizer.update(grads, state.opt_state, trained)
    new_trainable, value_params = optax.apply_updates(trained, updates)
    params = lora.replace_trainable(state.params, new_trainable)
    metrics = dict(metrics, loss=loss, nll=terms["nll"], grad_norm=grad_norm,
                   tokens=counts["nll"])
    return TrainState(state.step + 1, params, value_params, opt_state), metrics

  return step

"""Exact micro-batch gradient accumulation for losses given as (total, count) pairs."""

from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import safe_mean


def split_micro_batches(batch, num_micro_batches: int):
  """``[B, ...] -> [n, B/n, ...]`` for every array of the batch (row ``i`` goes to ``i // (B/n)``)."""
  def split(x):
    if x.shape[0] % num_micro_batches:
      raise ValueError(f"batch of {x.shape[0]} rows is not divisible by "
                       f"num_micro_batches={num_micro_batches}")
    return x.reshape((num_micro_batches, x.shape[0] // num_micro_batches) + x.shape[1:])
  return jax.tree.map(split, batch)


def accumulate_gradients(terms_fn: Callable, params, batch, counts: Mapping[str, jax.Array],
                         coefs: Mapping[str, float], num_micro_batches: int = 1):
  """Gradient of ``L = sum_c coef_c * (sum_m total_{c,m}) / count_c`` over micro-batches ``m``.

  Every objective returns a sum over its counted elements and how many there
  are (``LossOutput``); ``counts`` are the counts of the WHOLE batch (they do
  not depend on the parameters, so they are known before any forward pass).
  Dividing each micro-batch's total by the global count makes the accumulated
  gradient equal to the full-batch gradient exactly, whatever the masks.

  Args:
    terms_fn: ``(params, micro_batch) -> (totals: dict, metrics: dict)``.
    params: differentiated pytree.
    batch: pytree of ``[B, ...]`` arrays.
    counts: ``{term: scalar}`` global counts (e.g. masked tokens).
    coefs: ``{term: float}`` weight of each term in the loss (0 disables it).
    num_micro_batches: the batch is split into this many sequential chunks.

  Returns:
    ``(loss, grads, terms, metrics)``: ``terms[c] = safe_mean(total_c, count_c)``
    and ``metrics`` averaged over the micro-batches.
  """
  if num_micro_batches < 1:
    raise ValueError(f"num_micro_batches must be >= 1, got {num_micro_batches}")

  def mb_loss(p, mb):
    totals, metrics = terms_fn(p, mb)
    loss = sum(coefs[c] * safe_mean(totals[c], counts[c]) for c in totals if coefs.get(c, 0.0))
    return jnp.asarray(loss, jnp.float32), (totals, metrics)

  grad_fn = jax.value_and_grad(mb_loss, has_aux=True)
  if num_micro_batches == 1:
    (loss, (totals, metrics)), grads = grad_fn(params, batch)
  else:
    mbs = split_micro_batches(batch, num_micro_batches)

    def body(carry, mb):
      (loss, (totals, metrics)), grads = grad_fn(params, mb)
      return jax.tree.map(jnp.add, carry, (loss, grads, totals)), metrics

    first = jax.tree.map(lambda x: x[0], mbs)
    zero = jax.tree.map(jnp.zeros_like, jax.eval_shape(
        lambda: (lambda out: (out[0][0], out[1], out[0][1][0]))(grad_fn(params, first))))
    (loss, grads, totals), metrics = jax.lax.scan(body, zero, mbs)
    metrics = jax.tree.map(lambda x: jnp.mean(x, axis=0), metrics)
  terms = {c: safe_mean(totals[c], counts[c]) for c in totals}
  return loss, grads, terms, metrics

"""A-LoL training pieces: offline JSONL data, the value head on the frozen reference,
advantages computed once, and the train-step builder.

Baheti et al., "Leftover Lunch: Advantage-based Offline Reinforcement Learning for
Language Models", arXiv 2305.14718 (official code ``abaheti95/LoL-RL`` @9f8d816).

* Data: a local JSONL of ``{"prompt": str, "response": str, "reward": number}`` rows
  (optional ``"answer"``: the reference answer, needed only to score the reference
  model's own generations); :func:`load_offline_jsonl` names the file, line and field of
  a bad row. :func:`arithmetic_offline_records` writes such a file for the synthetic
  arithmetic task (responses labelled by the verifier).
* Value: ``V_ref(x) = max_value * sigmoid(MLP(attention_pool(h_ref(x))))`` over the frozen
  reference model's last-layer (final-norm) hidden states of the prompt
  (:func:`value_head_apply`), fitted by MSE to rewards of a validation split, keeping
  the epoch with the lowest held-out MSE (:func:`fit_value_head`).
* ``A(x, y) = R(x, y) - V_ref(x)``, computed once before training (:func:`advantages`).
* Update: :func:`make_a_lol_step` minimises ``losses.a_lol.a_lol_loss`` on batches of
  ``tokens, attention_mask, loss_mask, ref_logprobs, advantages``.
"""

from __future__ import annotations

import json
import math
import os
from typing import Callable, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxrl_llm import data, models
from jaxrl_llm.losses.a_lol import a_lol_loss
from jaxrl_llm.losses.aggregation import masked_sum
from jaxrl_llm.models import lora
from jaxrl_llm.training.accumulate import accumulate_gradients
from jaxrl_llm.training.logprobs import sequence_logprobs
from jaxrl_llm.training.sft import sft_batch
from jaxrl_llm.training.state import TrainState, apply_gradients, trained_params

A_LOL_BATCH_KEYS = ("tokens", "attention_mask", "loss_mask", "ref_logprobs", "advantages")


# ---- offline data ------------------------------------------------------------------------


class OfflineRecord(NamedTuple):
  """One offline training pair: a prompt, a response and its scalar reward."""

  prompt: str
  response: str
  reward: float
  answer: Optional[str] = None  # reference answer (only to score pi_ref's own generations)


def load_offline_jsonl(path) -> list[OfflineRecord]:
  """Reads ``{"prompt", "response", "reward"[, "answer"]}`` rows from a local JSONL file.

  Raises:
    FileNotFoundError: no file at ``path``.
    ValueError: a malformed row, naming the file, the line and the field.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"load_offline_jsonl: no file at {path!r}")
  records = []
  with open(path, encoding="utf-8") as f:
    for lineno, line in enumerate(f, start=1):
      if not line.strip():
        continue
      where = f"{path}:{lineno}"
      try:
        row = json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f"load_offline_jsonl: {where}: invalid JSON ({e.msg} at column "
                         f"{e.colno})") from None
      if not isinstance(row, dict):
        raise ValueError(f"load_offline_jsonl: {where}: expected a JSON object, got "
                         f"{type(row).__name__}")
      for name in ("prompt", "response", "reward"):
        if name not in row:
          raise ValueError(f"load_offline_jsonl: {where}: missing field {name!r} "
                           f"(keys: {sorted(row)})")
      for name in ("prompt", "response"):
        if not isinstance(row[name], str):
          raise ValueError(f"load_offline_jsonl: {where}: field {name!r} must be a string, "
                           f"got {type(row[name]).__name__}")
      reward = row["reward"]
      if (isinstance(reward, bool) or not isinstance(reward, (int, float))
          or not math.isfinite(reward)):
        raise ValueError(f"load_offline_jsonl: {where}: field 'reward' must be a finite "
                         f"number, got {reward!r}")
      answer = row.get("answer")
      if answer is not None and not isinstance(answer, str):
        raise ValueError(f"load_offline_jsonl: {where}: field 'answer' must be a string, "
                         f"got {type(answer).__name__}")
      records.append(OfflineRecord(row["prompt"], row["response"], float(reward), answer))
  if not records:
    raise ValueError(f"load_offline_jsonl: {path!r} has no rows")
  return records


def write_offline_jsonl(path, records: Sequence[OfflineRecord]) -> str:
  """Writes ``records`` as JSONL (atomically: a temporary file renamed); returns the path."""
  path = os.fspath(path)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for r in records:
      row = {"prompt": r.prompt, "response": r.response, "reward": float(r.reward)}
      if r.answer is not None:
        row["answer"] = r.answer
      f.write(json.dumps(row) + "\n")
  os.replace(tmp, path)
  return path


def wrong_answer(answer: str, rng: np.random.Generator) -> str:
  """A plausible wrong answer: the integer off by 1..10, or one digit dropped / repeated."""
  value = int(answer)
  kind = int(rng.integers(3))
  if kind == 0 or len(answer) < 2:
    off = int(rng.integers(1, 11)) * (1 if rng.random() < 0.5 else -1)
    return str(value + off)
  i = int(rng.integers(len(answer)))
  if kind == 1:
    return answer[:i] + answer[i + 1:]
  return answer[:i] + answer[i] + answer[i:]


def arithmetic_offline_records(task, num_prompts: int, reward_fn: Callable, *, seed: int = 0,
                               responses_per_prompt: int = 2,
                               correct_fraction: float = 0.5) -> list[OfflineRecord]:
  """Synthetic offline pairs for an arithmetic task, each response labelled by the verifier.

  Each of ``num_prompts`` problems (stream ``seed`` of ``task``) gets
  ``responses_per_prompt`` responses: the reference answer with probability
  ``correct_fraction``, else :func:`wrong_answer`; ``reward = reward_fn(response, example)``.
  """
  if num_prompts < 1 or responses_per_prompt < 1:
    raise ValueError(f"num_prompts and responses_per_prompt must be >= 1, got {num_prompts}, "
                     f"{responses_per_prompt}")
  if not 0.0 <= correct_fraction <= 1.0:
    raise ValueError(f"correct_fraction must be in [0, 1], got {correct_fraction}")
  rng = np.random.default_rng([seed, 7])
  records = []
  for ex in task.examples(seed, 0, num_prompts):
    for _ in range(responses_per_prompt):
      response = ex.answer if rng.random() < correct_fraction else wrong_answer(ex.answer, rng)
      records.append(OfflineRecord(ex.prompt, response, float(reward_fn(response, ex)), ex.answer))
  return records


def split_by_prompt(records: Sequence[OfflineRecord], val_fraction: float, seed: int):
  """``(train, val)``: the distinct prompts shuffled (``seed``) and ``val_fraction`` of them
  (at least one) held out with all their responses."""
  if not 0.0 < val_fraction < 1.0:
    raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
  prompts = sorted({r.prompt for r in records})
  if len(prompts) < 2:
    raise ValueError(f"the data set has {len(prompts)} distinct prompt(s); a validation split "
                     f"for the value head needs at least 2")
  order = np.random.default_rng([seed, 11]).permutation(len(prompts))
  num_val = min(max(1, int(round(val_fraction * len(prompts)))), len(prompts) - 1)
  val = {prompts[i] for i in order[:num_val]}
  return ([r for r in records if r.prompt not in val], [r for r in records if r.prompt in val])


def offline_batch(tokenizer, records: Sequence[OfflineRecord], width: int,
                  add_bos: bool = True) -> dict:
  """``tokens / attention_mask / loss_mask [n, width]``: BOS + prompt + response + EOS,
  left-padded; the loss mask covers the response and its EOS (``training.sft_batch``)."""
  return sft_batch(tokenizer, [data.Example(r.prompt, "", r.response) for r in records], width,
                   add_bos)


def prompt_batch(tokenizer, prompts: Sequence[str], width: int, add_bos: bool = True):
  """``(tokens, attention_mask)`` ``[n, width]`` int32 of the left-padded prompts."""
  seqs = [tokenizer.encode(p, add_bos=add_bos) for p in prompts]
  longest = max(len(s) for s in seqs)
  if longest > width:
    raise ValueError(f"prompt_batch: width={width} is shorter than the longest prompt "
                     f"({longest} tokens)")
  tokens, attn = models.left_pad(seqs, tokenizer.pad_id, width)
  return np.asarray(tokens, np.int32), np.asarray(attn, np.int32)


# ---- frozen-reference forward passes (once, before training) ------------------------------


def reference_logprobs(config, ref_params, batch: dict, *, chunk: int = 64,
                       logprob_impl: str = "auto") -> np.ndarray:
  """``[n, T-1]`` float32 ``log pi_ref`` of ``tokens[:, 1:]``, 0 off the loss mask (chunks)."""
  fn = jax.jit(lambda p, t, a: sequence_logprobs(config, p, t, a, impl=logprob_impl).logprobs)
  n = batch["tokens"].shape[0]
  parts = []
  for i in range(0, n, chunk):
    t, a = batch["tokens"][i:i + chunk], batch["attention_mask"][i:i + chunk]
    rows = t.shape[0]
    if rows < chunk and n > chunk:  # pad the last chunk: one compiled shape
      t = np.concatenate([t, np.repeat(t[-1:], chunk - rows, 0)])
      a = np.concatenate([a, np.repeat(a[-1:], chunk - rows, 0)])
    parts.append(np.asarray(fn(ref_params, t, a))[:rows])
  lp = np.concatenate(parts).astype(np.float32)
  return lp * (np.asarray(batch["loss_mask"])[:, 1:] > 0)


def prompt_features(config, ref_params, tokens, attention_mask, *, chunk: int = 64) -> np.ndarray:
  """``[n, P, D]`` float32 final-norm hidden states of the frozen reference on the prompts."""
  fn = jax.jit(lambda p, t, a: models.hidden_states(config, p, t, a).astype(jnp.float32))
  return np.concatenate([np.asarray(fn(ref_params, tokens[i:i + chunk],
                                       attention_mask[i:i + chunk]))
                         for i in range(0, tokens.shape[0], chunk)])


# ---- value head ----------------------------------------------------------------------------


def init_value_head(key, hidden_size: int, mlp_size: int = 64) -> dict:
  """Parameters of the attention-pooling value head (float32)."""
  k1, k2, k3 = jax.random.split(key, 3)
  scale = 1.0 / math.sqrt(hidden_size)
  return {"query": jax.random.normal(k1, (hidden_size,)) * scale,
          "w1": jax.random.normal(k2, (hidden_size, mlp_size)) * scale,
          "b1": jnp.zeros((mlp_size,)),
          "w2": jax.random.normal(k3, (mlp_size,)) / math.sqrt(mlp_size),
          "b2": jnp.zeros(())}


def value_head_apply(params: dict, hidden: jax.Array, mask: jax.Array, *,
                     max_value: float = 1.0) -> jax.Array:
  """``V(x) = max_value * sigmoid(w2 . gelu(W1^T pool + b1) + b2)``, ``[B, P, D] -> [B]``.

  ``pool = sum_t a_t h_t`` with ``a = softmax_t(h_t . q / sqrt(D))`` over the prompt tokens
  (``mask [B, P]``; padding gets no weight). The attention-pooling head of A-LoL
  (Baheti et al., arXiv 2305.14718; ``utils/rl_utils.py::ValueHeadAttention``), sigmoid
  output times ``max_value`` (rewards in ``[0, max_value]``).
  """
  if hidden.ndim != 3 or mask.shape != hidden.shape[:2]:
    raise ValueError(f"hidden must be [B, P, D] and mask [B, P], got {hidden.shape}, "
                     f"{mask.shape}")
  h = hidden.astype(jnp.float32)
  scores = jnp.einsum("bpd,d->bp", h, params["query"]) / math.sqrt(h.shape[-1])
  scores = jnp.where(mask > 0, scores, -1e30)
  attn = jax.nn.softmax(scores, axis=-1) * (mask > 0)
  pooled = jnp.einsum("bp,bpd->bd", attn, h)
  z = jax.nn.gelu(pooled @ params["w1"] + params["b1"])
  return max_value * jax.nn.sigmoid(z @ params["w2"] + params["b2"])


def fit_value_head(key, features, feature_mask, rewards, *, epochs: int = 50,
                   learning_rate: float = 1e-2, batch_size: int = 32,
                   holdout_fraction: float = 0.2, max_value: float = 1.0,
                   mlp_size: int = 64):
  """Fits the value head by MSE to ``rewards``, keeping the epoch with the best held-out MSE.

  ``features [n, P, D]`` / ``feature_mask [n, P]``: the frozen reference's prompt hidden
  states (:func:`prompt_features`); ``rewards [n]``. A ``holdout_fraction`` of the rows
  (at least one, when ``n >= 2``) is not trained on and picks the best epoch (the
  official code keeps the best epoch on held-out data). Adam, mini-batches of
  ``batch_size`` rows reshuffled each epoch.

  Returns:
    ``(params, metrics)``: ``mse_fit`` / ``mse_holdout`` at the best epoch,
    ``best_epoch`` (0 = the initial head), ``mse_holdout_init`` and ``mse_const`` (a
    constant predictor at the fitting rows' mean reward, for comparison).
  """
  features = np.asarray(features, np.float32)
  feature_mask = np.asarray(feature_mask, np.float32)
  rewards = np.asarray(rewards, np.float32)
  n = rewards.shape[0]
  if features.shape[0] != n or feature_mask.shape != features.shape[:2]:
    raise ValueError(f"features [n, P, D], feature_mask [n, P] and rewards [n] disagree: "
                     f"{features.shape}, {feature_mask.shape}, {rewards.shape}")
  if n < 2:
    raise ValueError(f"fit_value_head needs at least 2 rows, got {n}")
  if epochs < 0 or batch_size < 1 or not 0.0 < holdout_fraction < 1.0:
    raise ValueError(f"need epochs >= 0, batch_size >= 1, 0 < holdout_fraction < 1; got "
                     f"{epochs}, {batch_size}, {holdout_fraction}")
  k_init, k_split, k_epochs = jax.random.split(key, 3)
  order = np.asarray(jax.random.permutation(k_split, n))
  num_hold = min(max(1, int(round(holdout_fraction * n))), n - 1)
  hold, fit = order[:num_hold], order[num_hold:]
  params = init_value_head(k_init, features.shape[-1], mlp_size)
  opt = optax.adam(learning_rate)
  opt_state = opt.init(params)

  def mse(p, idx):
    v = value_head_apply(p, features[idx], feature_mask[idx], max_value=max_value)
    return jnp.mean((v - rewards[idx]) ** 2)

  @jax.jit
  def update(p, s, h, m, r):
    loss, g = jax.value_and_grad(
        lambda q: jnp.mean((value_head_apply(q, h, m, max_value=max_value) - r) ** 2))(p)
    u, s = opt.update(g, s, p)
    return optax.apply_updates(p, u), s, loss

  bs = min(batch_size, fit.shape[0])
  best = (float(mse(params, hold)), 0, params)
  init_hold = best[0]
  for epoch in range(1, epochs + 1):
    perm = fit[np.asarray(jax.random.permutation(jax.random.fold_in(k_epochs, epoch),
                                                 fit.shape[0]))]
    for i in range(0, perm.shape[0] - bs + 1, bs):
      idx = perm[i:i + bs]
      params, opt_state, _ = update(params, opt_state, features[idx], feature_mask[idx],
                                    rewards[idx])
    hold_mse = float(mse(params, hold))
    if hold_mse < best[0]:
      best = (hold_mse, epoch, params)
  hold_mse, best_epoch, params = best
  const = float(np.mean((rewards[hold] - rewards[fit].mean()) ** 2))
  return params, {"mse_fit": float(mse(params, fit)), "mse_holdout": hold_mse,
                  "best_epoch": float(best_epoch), "mse_holdout_init": init_hold,
                  "mse_const": const}


def advantages(value_params, features, feature_mask, rewards, *, max_value: float = 1.0,
               chunk: int = 256):
  """``(A = R - V_ref(x), V_ref(x))`` as float32 ``[n]`` NumPy arrays (computed once)."""
  fn = jax.jit(lambda p, h, m: value_head_apply(p, h, m, max_value=max_value))
  values = np.concatenate([np.asarray(fn(value_params, features[i:i + chunk],
                                         feature_mask[i:i + chunk]))
                           for i in range(0, features.shape[0], chunk)]).astype(np.float32)
  return np.asarray(rewards, np.float32) - values, values


# ---- the update ----------------------------------------------------------------------------


def make_a_lol_step(config: models.ModelConfig, optimizer: optax.GradientTransformation, *,
                    variant: str = "a_lol", loss_kwargs: Optional[dict] = None,
                    num_micro_batches: int = 1, logprob_impl: str = "auto",
                    mesh=None) -> Callable:
  """``step(state, batch) -> (state, metrics)`` minimising the A-LoL loss.

  ``batch``: ``tokens, attention_mask, loss_mask [B, T]`` (``offline_batch`` rows),
  ``ref_logprobs [B, T-1]`` (:func:`reference_logprobs`) and ``advantages [B]``. The loss
  is ``(1/B) sum_i L_i`` of ``losses.a_lol.a_lol_loss(variant, **loss_kwargs)``; with LoRA
  only the adapters are trained (as ``make_sft_step``).
  """
  loss_kwargs = dict(loss_kwargs or {})

  def terms_fn(params, mb):
    out = sequence_logprobs(config, params, mb["tokens"], mb["attention_mask"], impl=logprob_impl,
                            mesh=mesh)
    m = mb["loss_mask"][:, 1:].astype(jnp.float32)
    res = a_lol_loss(out.logprobs, mb["ref_logprobs"].astype(jnp.float32),
                     mb["advantages"].astype(jnp.float32), m, variant=variant, **loss_kwargs)
    return {"a_lol": res.total, "nll": masked_sum(-out.logprobs, m)}, dict(res.metrics)

  def step(state: TrainState, batch):
    missing = [k for k in A_LOL_BATCH_KEYS if k not in batch]
    if missing:
      raise ValueError(f"batch is missing {missing}; expected keys {list(A_LOL_BATCH_KEYS)}")
    tokens = jnp.sum(batch["loss_mask"][:, 1:].astype(jnp.float32))
    counts = {"a_lol": jnp.asarray(batch["tokens"].shape[0], jnp.float32), "nll": tokens}

    def wrapped(p, mb):
      return terms_fn(lora.model_params(state.params, p[0]), mb)

    trained = trained_params(state)
    loss, grads, terms, metrics = accumulate_gradients(
        wrapped, trained, batch, counts, {"a_lol": 1.0}, num_micro_batches)
    new_state, grad_norm = apply_gradients(state, optimizer, grads)
    metrics = dict(metrics, loss=loss, nll=terms["nll"], grad_norm=grad_norm, tokens=tokens)
    return new_state, metrics

  return step

"""Independent NumPy transcriptions of verl 0.9.1 / TRL 1.16 / OpenRLHF formulas.

Written from the semantics in shared/reference/pytorch_loss_semantics.md with
explicit Python loops and float64, deliberately *not* mirroring the structure of
jaxrl_llm.losses, to serve as test oracles. Helpers follow verl's own numerics
(``+1e-8`` denominators, NaN for an all-masked ``token-mean``).
"""

import math
from collections import defaultdict

import numpy as np


# ---------------------------------------------------------------- verl helpers
def verl_masked_sum(v, m, axis=None):
  return (np.where(m.astype(bool), v, 0.0) * m).sum(axis=axis)


def verl_masked_mean(v, m, axis=None):
  return verl_masked_sum(v, m, axis) / (m.sum(axis=axis) + 1e-8)


def verl_masked_whiten(v, m):
  mean = verl_masked_mean(v, m)
  var = verl_masked_mean((v - mean) ** 2, m)
  n = m.sum()
  var = var * n / (n - 1)
  return (v - mean) / math.sqrt(var + 1e-8)


def verl_agg_loss(loss, mask, mode, loss_scale_factor=None):
  """verl ``agg_loss`` with dp_size=1 and no global counts."""
  b, t = loss.shape
  if mode == "token-mean":
    return verl_masked_sum(loss, mask) / mask.sum()   # no epsilon: NaN if all masked
  if mode == "token-sum":
    return verl_masked_sum(loss, mask)
  rows = []
  for i in range(b):
    n_i = mask[i].sum()
    if n_i == 0:
      continue
    s_i = sum(loss[i, j] * mask[i, j] for j in range(t) if mask[i, j])
    if mode == "seq-mean-token-mean":
      rows.append(s_i / (n_i + 1e-8))
    else:
      rows.append(s_i)
  k = len(rows)
  if k == 0:
    return float("nan")
  if mode in ("seq-mean-token-mean", "seq-mean-token-sum"):
    return sum(rows) / k
  if mode == "seq-mean-token-sum-norm":
    scale = t if loss_scale_factor is None else loss_scale_factor
    return sum(rows) / k / scale
  raise ValueError(mode)


# ---------------------------------------------------------------- policy losses
def verl_vanilla_token_loss(old, logp, adv, clip_low, clip_high, clip_c):
  """verl ``vanilla``: per-token loss matrix (dual clip always on)."""
  out = np.zeros_like(logp)
  for i in range(logp.shape[0]):
    for j in range(logp.shape[1]):
      lr = min(max(logp[i, j] - old[i, j], -20.0), 20.0)
      r = math.exp(lr)
      a = adv[i, j]
      l1 = -a * r
      l2 = -a * min(max(r, 1 - clip_low), 1 + clip_high)
      l = max(l1, l2)
      if a < 0:
        l = min(l, -a * clip_c)
      out[i, j] = l
  return out


def trl_dapo_loss(logp, old, mask, seq_adv, epsilon, epsilon_high, delta=None):
  """TRL 1.16 GRPOTrainer loss_type='dapo', one process, token IS, beta=0."""
  num, den = 0.0, 0.0
  for i in range(logp.shape[0]):
    for j in range(logp.shape[1]):
      c1 = math.exp(logp[i, j] - old[i, j])
      c2 = min(max(c1, 1 - epsilon), 1 + epsilon_high)
      if delta is not None:
        c1 = min(c1, delta)
      a = seq_adv[i]
      num += -min(c1 * a, c2 * a) * mask[i, j]
      den += mask[i, j]
  return num / max(den, 1.0)


def verl_gspo_token_loss(old, logp, adv, mask, clip_low, clip_high):
  """verl ``gspo`` per-token loss values (forward only)."""
  out = np.zeros_like(logp)
  for i in range(logp.shape[0]):
    n_i = mask[i].sum()
    seq = sum((logp[i, j] - old[i, j]) * mask[i, j] for j in range(logp.shape[1])) / max(n_i, 1)
    for j in range(logp.shape[1]):
      rho = math.exp(min(seq, 10.0))
      a = adv[i, j]
      out[i, j] = max(-a * rho, -a * min(max(rho, 1 - clip_low), 1 + clip_high))
  return out


# ---------------------------------------------------------------- advantages
def verl_grpo(scores, index, epsilon=1e-6, norm_by_std=True):
  groups = defaultdict(list)
  for i, g in enumerate(index):
    groups[g].append(scores[i])
  mean, std = {}, {}
  for g, vals in groups.items():
    if len(vals) == 1:
      mean[g], std[g] = 0.0, 1.0
    else:
      mean[g] = float(np.mean(vals))
      std[g] = float(np.std(vals, ddof=1))
  out = np.zeros(len(scores))
  for i, g in enumerate(index):
    out[i] = (scores[i] - mean[g]) / (std[g] + epsilon) if norm_by_std else scores[i] - mean[g]
  return out


def verl_rloo(scores, index):
  groups = defaultdict(list)
  for i, g in enumerate(index):
    groups[g].append(scores[i])
  out = np.zeros(len(scores))
  for i, g in enumerate(index):
    n = len(groups[g])
    if n == 1:
      out[i] = scores[i]
    else:
      out[i] = scores[i] * n / (n - 1) - np.mean(groups[g]) * n / (n - 1)
  return out


def trl_grpo_advantages(rewards, num_generations, scale_rewards="group", eps=1e-4):
  """TRL 1.16 inline advantage block (contiguous groups, one reward function)."""
  grouped = rewards.reshape(-1, num_generations)
  mean = np.repeat(grouped.mean(axis=1), num_generations)
  adv = rewards - mean
  if scale_rewards == "group":
    std = np.repeat(grouped.std(axis=1, ddof=1), num_generations)
  elif scale_rewards == "batch":
    std = np.full_like(rewards, rewards.std(ddof=1))
  else:
    return adv
  return adv / (std + eps)


def openrlhf_rloo(rewards, n):
  grouped = rewards.reshape(-1, n)
  base = (grouped.sum(axis=1, keepdims=True) - grouped) / (n - 1)
  return (grouped - base).reshape(-1)


def verl_reinforce_pp(token_rewards, mask, gamma):
  """Return-to-go with reset after masked tokens (verl <= 0.8; same as 0.9 for right padding)."""
  b, t = token_rewards.shape
  returns = np.zeros_like(token_rewards)
  running = np.zeros(b)
  for j in reversed(range(t)):
    running = token_rewards[:, j] + gamma * running
    returns[:, j] = running
    running = running * mask[:, j]
  adv = verl_masked_whiten(returns, mask) * mask
  return adv, returns


def verl_reinforce_pp_baseline(scores, mask, index):
  groups = defaultdict(list)
  for i, g in enumerate(index):
    groups[g].append(scores[i])
  centred = np.array([s - (0.0 if len(groups[g]) == 1 else np.mean(groups[g]))
                      for s, g in zip(scores, index)])
  tiled = centred[:, None] * mask
  return verl_masked_whiten(tiled, mask) * mask


def verl_gae(token_rewards, values, mask, gamma, lam):
  """verl 0.9.1 GAE: masked tokens carry the next value and the running advantage."""
  b, t = token_rewards.shape
  nextvalues = np.zeros(b)
  lastgaelam = np.zeros(b)
  adv = np.zeros_like(token_rewards)
  for j in reversed(range(t)):
    delta = token_rewards[:, j] + gamma * nextvalues - values[:, j]
    lastgaelam_ = delta + gamma * lam * lastgaelam
    nextvalues = values[:, j] * mask[:, j] + (1 - mask[:, j]) * nextvalues
    lastgaelam = lastgaelam_ * mask[:, j] + (1 - mask[:, j]) * lastgaelam
    adv[:, j] = lastgaelam_
  returns = adv + values
  return verl_masked_whiten(adv, mask), returns


# ---------------------------------------------------------------- KL
def verl_kl(logp, ref, kind):
  out = np.zeros_like(logp)
  for idx in np.ndindex(logp.shape):
    x = logp[idx] - ref[idx]
    if kind == "k1":
      out[idx] = x
    elif kind == "k2":
      out[idx] = 0.5 * x * x
    elif kind == "k3":
      d = min(max(ref[idx] - logp[idx], -20.0), 20.0)
      out[idx] = min(max(math.exp(d) - d - 1.0, -10.0), 10.0)
    else:
      raise ValueError(kind)
  return out


# ---------------------------------------------------------------- DPO
def _log_sigmoid(x):
  return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def trl_dpo(pc, pr, rc, rr, beta, loss_type, nc=None, nr=None):
  out = []
  for i in range(len(pc)):
    rho_c, rho_r = pc[i] - rc[i], pr[i] - rr[i]
    if loss_type == "sigmoid":
      out.append(-_log_sigmoid(beta * (rho_c - rho_r)))
    elif loss_type == "ipo":   # TRL normalises by completion token counts
      out.append((rho_c / nc[i] - rho_r / nr[i] - 1 / (2 * beta)) ** 2)
    else:
      raise ValueError(loss_type)
  return float(np.mean(out))


def openrlhf_dpo(pc, pr, rc, rr, beta, label_smoothing=0.0, ipo=False):
  out = []
  for i in range(len(pc)):
    logits = (pc[i] - pr[i]) - (rc[i] - rr[i])
    if ipo:
      out.append((logits - 1 / (2 * beta)) ** 2)
    else:
      out.append(-_log_sigmoid(beta * logits) * (1 - label_smoothing)
                 - _log_sigmoid(-beta * logits) * label_smoothing)
  return float(np.mean(out))

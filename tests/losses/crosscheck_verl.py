"""Manual cross-check of jaxrl_llm.losses against the real verl 0.9.1 (not collected by pytest).

verl is not a project dependency, so this is a developer script, run once by hand:

    pip install --target /tmp/verl_pkgs --no-deps verl==0.9.1 tensordict==0.10.0 omegaconf \
        antlr4-python3-runtime==4.9.3 codetiming orjson packaging cloudpickle pyvers importlib_metadata
    VERL_PATH=/tmp/verl_pkgs .venv/bin/python tests/losses/crosscheck_verl.py

`ray` is only touched by verl at import time, so it is replaced by a stub module.
Prints the max relative error of every quantity (values and d/d logprob) on a
batch with a fully masked row, a length-1 row, an observation-token hole, a
dual-clip token, |ref - lp| = 30 KL clamps and a non-contiguous singleton group.
"""
import os
import sys
import types

os.environ["VERL_FORCE_DEVICE"] = "cpu"
sys.path.insert(0, os.environ.get("VERL_PATH", "/tmp/verl_pkgs"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


class _Any:
  def __getattr__(self, k):
    if k.startswith("__"):
      raise AttributeError(k)
    return _Any()

  def __call__(self, *a, **k):
    return _Any()


def _ga(k):
  if k.startswith("__"):
    raise AttributeError(k)
  return _Any()


ray = types.ModuleType("ray")
ray.remote = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))
ray.__getattr__ = _ga
sys.modules["ray"] = ray
for _sub in ["ray.util", "ray.actor", "ray.util.placement_group", "ray.util.scheduling_strategies",
             "ray.experimental", "ray.experimental.state", "ray.experimental.state.api",
             "ray._private", "ray.runtime_env"]:
  _m = types.ModuleType(_sub)
  _m.__getattr__ = _ga
  sys.modules[_sub] = _m

from verl.trainer.ppo import core_algos as ca  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from verl.trainer.config import AlgoConfig  # noqa: E402
from verl.utils.torch_functional import entropy_from_logits  # noqa: E402
from verl.workers.config import ActorConfig  # noqa: E402

from jaxrl_llm import losses as L  # noqa: E402

MODES = ["token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum",
         "seq-mean-token-sum-norm"]


def actor_config(lo, hi):
  return ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio=lo,
                     clip_ratio_low=lo, clip_ratio_high=hi, clip_ratio_c=3.0)


def t(x):
  return torch.tensor(np.asarray(x), dtype=torch.float64)


def j(x):
  return jnp.asarray(x, jnp.float32)


worst = {}


def rec(name, ours, theirs, m=None):
  a, b = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
  if m is not None:
    a, b = a[m > 0], b[m > 0]
  worst[name] = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))


rng = np.random.default_rng(0)
B, T = 7, 6
old = rng.normal(-1.5, .5, (B, T))
lp = old + rng.normal(0, .6, (B, T))
lp[0, 1] = old[0, 1] + 1.6          # ratio ~5 with A < 0: dual clip
lp[1, 2] = old[1, 2] - 1.0
mask = np.ones((B, T))
mask[2, 3:] = 0
mask[3, 1:] = 0                     # length-1 row
mask[4] = 0                         # fully masked row
mask[5, 2] = 0                      # observation-token hole
seq_adv = rng.normal(size=B)
seq_adv[0] = -1.0
adv_tok = np.broadcast_to(seq_adv[:, None], (B, T)).copy()

# Aggregation and policy losses (value and d/d logprob), every aggregation mode.
loss_matrix = rng.normal(size=(B, T))
for mode in MODES:
  total, count = L.aggregate(j(loss_matrix), j(mask), mode)
  rec("agg " + mode, float(total) / float(count), float(ca.agg_loss(t(loss_matrix), t(mask), mode)))
  for name, ours, (lo, hi), kw in [
      ("vanilla", L.ppo_policy_loss, (0.2, 0.28), dict(dual_clip=3.0)),
      ("gspo", L.gspo_policy_loss, (3e-4, 4e-4), {}),
      ("cispo", L.cispo_policy_loss, (0.2, 0.28), {}),
  ]:
    lpt = t(lp).requires_grad_()
    theirs, _ = ca.get_policy_loss_fn(name)(
        old_log_prob=t(old), log_prob=lpt, advantages=t(adv_tok), response_mask=t(mask),
        loss_agg_mode=mode, config=actor_config(lo, hi))
    theirs.backward()
    f = lambda x, ours=ours, lo=lo, hi=hi, kw=kw: L.safe_mean(*ours(
        x, j(old), j(seq_adv), j(mask), clip_low=lo, clip_high=hi, agg_mode=mode, **kw)[:2])
    rec(f"{name} {mode}", f(j(lp)), theirs.item())
    rec(f"{name} grad {mode}", jax.grad(f)(j(lp)), lpt.grad.numpy(), mask)

# Outcome advantages: non-contiguous groups with a singleton (id 8).
index = np.array([3, 1, 3, 2, 1, 3, 8], dtype=object)
gid = jnp.array(index.astype(int))
scores = rng.normal(size=B)
token_scores = np.zeros((B, T))
token_scores[:, 0] = scores
ones = np.ones((B, T))
for norm in (True, False):
  a, _ = ca.compute_grpo_outcome_advantage(t(token_scores), t(ones), index,
                                           norm_adv_by_std_in_grpo=norm)
  ours = L.grpo_advantages(j(scores), group_ids=gid, std_scope="group" if norm else "none")
  rec(f"grpo norm={norm}", ours, a[:, 0].numpy())
a, _ = ca.compute_rloo_outcome_advantage(t(token_scores), t(ones), index)
rec("rloo", L.rloo_advantages(j(scores), group_ids=gid), a[:, 0].numpy())
lengths = np.array([1, 2, 3, 4, 5, 6, 6])
len_mask = (np.arange(T)[None] < lengths[:, None]).astype(float)
a, _ = ca.compute_opo_outcome_advantage(t(token_scores * len_mask), t(len_mask), index)
rec("opo", L.opo_advantages(j(scores), jnp.array(lengths), group_ids=gid), a[:, 0].numpy())
a, _ = ca.compute_gpg_outcome_advantage(t(token_scores), t(ones), index)
rec("gpg", L.gpg_advantages(j(scores), group_ids=gid), a[:, 0].numpy())
passk_index = np.array([0, 0, 0, 1, 1, 1, 1], dtype=object)
passk_scores = scores.copy()
passk_scores[3:5] = 5.0             # tie at the top of group 1
passk_tokens = np.zeros((B, T))
passk_tokens[:, 0] = passk_scores
a, _ = ca.compute_grpo_passk_outcome_advantage(t(passk_tokens), t(ones), passk_index,
                                               config=AlgoConfig())
rec("grpo_passk", L.grpo_passk_advantages(j(passk_scores), group_ids=jnp.array(
    passk_index.astype(int))), a[:, 0].numpy())

# Token-level estimators (mask with a hole: verl 0.9.1 skips observation tokens).
token_rewards = rng.normal(size=(B, T)) * mask
a, r = ca.compute_reinforce_plus_plus_outcome_advantage(t(token_rewards), t(mask),
                                                        config=AlgoConfig(gamma=0.9))
ga, gr = L.reinforce_plus_plus_advantages(j(token_rewards), j(mask), gamma=0.9)
rec("reinforce++ adv", ga, a.numpy(), mask)
rec("reinforce++ returns", gr, r.numpy(), mask)
a, _ = ca.compute_reinforce_plus_plus_baseline_outcome_advantage(t(token_scores * mask), t(mask),
                                                                 index)
ours = L.reinforce_plus_plus_baseline_advantages(j((token_scores * mask).sum(1)), j(mask),
                                                 group_ids=gid)
rec("reinforce++ baseline", ours, a.numpy(), mask)
values = rng.normal(size=(B, T))
a, r = ca.compute_gae_advantage_return(t(token_rewards), t(values), t(mask), 0.99, 0.95)
ga, gr = L.gae_advantages(j(token_rewards), j(values), j(mask), gamma=0.99, lam=0.95)
rec("gae adv", ga, a.numpy(), mask)
rec("gae returns", gr, r.numpy(), mask)

# KL estimators incl. |ref - lp| = 30 (clamps) and the straight-through '+' variants.
ref = lp + rng.normal(0, 2, (B, T))
ref[0, 0] = lp[0, 0] + 30
ref[1, 1] = lp[1, 1] - 30
for kind in ["kl", "abs", "mse", "low_var_kl", "k1", "k2", "k3", "k3+", "low_var_kl+"]:
  lpt = t(lp).requires_grad_()
  theirs = ca.kl_penalty(lpt, t(ref), kind)
  theirs.sum().backward()
  f = lambda x, kind=kind: L.kl_divergence(x, j(ref), kind)
  rec("kl " + kind, f(j(lp)), theirs.detach().numpy())
  rec("kl grad " + kind, jax.grad(lambda x: f(x).sum())(j(lp)), lpt.grad.numpy())

vpred = values + rng.normal(0, .8, (B, T))
returns = rng.normal(size=(B, T))
theirs, _ = ca.compute_value_loss(t(vpred), t(returns), t(values), t(mask), 0.5)
out = L.clipped_value_loss(j(vpred), j(values), j(returns), j(mask), clip=0.5)
rec("value loss", float(out.total) / float(out.count), theirs.item())
logits = rng.normal(size=(3, 4, 11)) * 3
rec("entropy", L.entropy_from_logits(j(logits)), entropy_from_logits(t(logits)).numpy())

for k, v in worst.items():
  print(f"{k:36s} max rel err {v:.2e}")
print("WORST", max(worst.values()))

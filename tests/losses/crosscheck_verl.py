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
import numpy as np, torch, jax, jax.numpy as jnp
from jaxrl_llm import losses as L
from verl.workers.config import ActorConfig
from verl.trainer.config import AlgoConfig
cfg = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1,
                  clip_ratio=0.2, clip_ratio_low=0.2, clip_ratio_high=0.28, clip_ratio_c=3.0)
rng = np.random.default_rng(0)
B, T = 7, 6
old = rng.normal(-1.5, .5, (B, T)); lp = old + rng.normal(0, .6, (B, T))
lp[0, 1] = old[0, 1] + 1.6; lp[1, 2] = old[1, 2] - 1.0
mask = np.ones((B, T)); mask[2, 3:] = 0; mask[3, 1:] = 0; mask[4] = 0; mask[5, 2] = 0  # hole
seq_adv = rng.normal(size=B); seq_adv[0] = -1.0
adv_tok = np.broadcast_to(seq_adv[:, None], (B, T)).copy()
t = lambda x: torch.tensor(np.asarray(x), dtype=torch.float64)
j = lambda x: jnp.asarray(x, jnp.float32)
worst = {}
def rec(name, a, b, m=None):
    a = np.asarray(a, np.float64); b = np.asarray(b, np.float64)
    if m is not None: a, b = a[m > 0], b[m > 0]
    worst[name] = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))
modes = ["token-mean", "token-sum", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"]
lm = rng.normal(size=(B, T))
for mode in modes:
    v = ca.agg_loss(t(lm), t(mask), mode)
    tot, cnt = L.aggregate(j(lm), j(mask), mode)
    rec("agg " + mode, float(tot) / float(cnt), float(v))
    fn = ca.get_policy_loss_fn("vanilla")
    lpt = t(lp).requires_grad_()
    loss, _ = fn(old_log_prob=t(old), log_prob=lpt, advantages=t(adv_tok), response_mask=t(mask), loss_agg_mode=mode, config=cfg)
    loss.backward()
    f = lambda x: L.safe_mean(*L.ppo_policy_loss(x, j(old), j(seq_adv), j(mask), clip_low=.2, clip_high=.28, dual_clip=3., agg_mode=mode)[:2])
    rec("ppo " + mode, f(j(lp)), loss.item()); rec("ppo grad " + mode, jax.grad(f)(j(lp)), lpt.grad.numpy(), mask)
    for gm, (lo, hi) in [("gspo", (3e-4, 4e-4)), ("cispo", (.2, .28))]:
        c2 = ActorConfig(strategy="fsdp", rollout_n=1, ppo_micro_batch_size_per_gpu=1, clip_ratio=lo, clip_ratio_low=lo, clip_ratio_high=hi, clip_ratio_c=3.0)
        lpt = t(lp).requires_grad_()
        loss, _ = ca.get_policy_loss_fn(gm)(old_log_prob=t(old), log_prob=lpt, advantages=t(adv_tok), response_mask=t(mask), loss_agg_mode=mode, config=c2)
        loss.backward()
        ours = L.gspo_policy_loss if gm == "gspo" else L.cispo_policy_loss
        f = lambda x: L.safe_mean(*ours(x, j(old), j(seq_adv), j(mask), clip_low=lo, clip_high=hi, agg_mode=mode)[:2])
        rec(f"{gm} {mode}", f(j(lp)), loss.item()); rec(f"{gm} grad {mode}", jax.grad(f)(j(lp)), lpt.grad.numpy(), mask)
# advantages
index = np.array([3, 1, 3, 2, 1, 3, 8], dtype=object)
scores = rng.normal(size=B); tl = np.zeros((B, T)); tl[:, 0] = scores
m1 = np.ones((B, T))
for norm in (True, False):
    a, _ = ca.compute_grpo_outcome_advantage(t(tl), t(m1), index, norm_adv_by_std_in_grpo=norm)
    rec(f"grpo norm={norm}", L.grpo_advantages(j(scores), group_ids=jnp.array(index.astype(int)), std_scope="group" if norm else "none"), a[:, 0].numpy())
a, _ = ca.compute_rloo_outcome_advantage(t(tl), t(m1), index); rec("rloo", L.rloo_advantages(j(scores), group_ids=jnp.array(index.astype(int))), a[:, 0].numpy())
lens = np.array([1, 2, 3, 4, 5, 6, 6]); mo = (np.arange(T)[None] < lens[:, None]).astype(float)
a, _ = ca.compute_opo_outcome_advantage(t(tl * mo), t(mo), index); rec("opo", L.opo_advantages(j(scores), jnp.array(lens), group_ids=jnp.array(index.astype(int))), a[:, 0].numpy())
a, _ = ca.compute_gpg_outcome_advantage(t(tl), t(m1), index); rec("gpg", L.gpg_advantages(j(scores), group_ids=jnp.array(index.astype(int))), a[:, 0].numpy())
idx2 = np.array([0, 0, 0, 1, 1, 1, 1], dtype=object); s2 = scores.copy(); s2[3:5] = 5.0; tl2 = np.zeros((B, T)); tl2[:, 0] = s2
a, _ = ca.compute_grpo_passk_outcome_advantage(t(tl2), t(m1), idx2, config=AlgoConfig())
rec("grpo_passk", L.grpo_passk_advantages(j(s2), group_ids=jnp.array(idx2.astype(int))), a[:, 0].numpy())
tr = rng.normal(size=(B, T)) * mask
a, r = ca.compute_reinforce_plus_plus_outcome_advantage(t(tr), t(mask), config=AlgoConfig(gamma=0.9))
ga, gr = L.reinforce_plus_plus_advantages(j(tr), j(mask), gamma=0.9); rec("rpp adv", ga, a.numpy(), mask); rec("rpp ret", gr, r.numpy(), mask)
a, _ = ca.compute_reinforce_plus_plus_baseline_outcome_advantage(t(tl * mask), t(mask), index)
rec("rpp baseline", L.reinforce_plus_plus_baseline_advantages(j((tl * mask).sum(1)), j(mask), group_ids=jnp.array(index.astype(int))), a.numpy(), mask)
vals = rng.normal(size=(B, T))
a, r = ca.compute_gae_advantage_return(t(tr), t(vals), t(mask), 0.99, 0.95)
ga, gr = L.gae_advantages(j(tr), j(vals), j(mask), gamma=0.99, lam=0.95); rec("gae adv", ga, a.numpy(), mask); rec("gae ret", gr, r.numpy(), mask)
# KL
ref = lp + rng.normal(0, 2, (B, T)); ref[0, 0] = lp[0, 0] + 30; ref[1, 1] = lp[1, 1] - 30
for kind in ["kl", "abs", "mse", "low_var_kl", "k1", "k2", "k3", "k3+", "low_var_kl+"]:
    lpt = t(lp).requires_grad_(); v = ca.kl_penalty(lpt, t(ref), kind); v.sum().backward()
    f = lambda x: L.kl_divergence(x, j(ref), kind)
    rec("kl " + kind, f(j(lp)), v.detach().numpy()); rec("kl grad " + kind, jax.grad(lambda x: f(x).sum())(j(lp)), lpt.grad.numpy())
vp = vals + rng.normal(0, .8, (B, T)); ret = rng.normal(size=(B, T))
v, _ = ca.compute_value_loss(t(vp), t(ret), t(vals), t(mask), 0.5)
o = L.clipped_value_loss(j(vp), j(vals), j(ret), j(mask), clip=0.5); rec("value loss", float(o.total) / float(o.count), v.item())
logits = rng.normal(size=(3, 4, 11)) * 3
from verl.utils.torch_functional import entropy_from_logits
rec("entropy", L.entropy_from_logits(j(logits)), entropy_from_logits(t(logits)).numpy())
for k, v in worst.items(): print(f"{k:34s} max rel err {v:.2e}")
print("WORST", max(worst.values()))

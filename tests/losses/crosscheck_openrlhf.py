"""Manual cross-check of jaxrl_llm.losses against the real OpenRLHF 0.11.2 (not collected by pytest).

    pip install --target /tmp/orlhf_pkgs --no-deps openrlhf==0.11.2
    ORLHF_PATH=/tmp/orlhf_pkgs .venv/bin/python tests/losses/crosscheck_openrlhf.py

Loads ``openrlhf/models/{loss,utils}.py`` as bare modules (skipping the package
``__init__``) with ``deepspeed`` stubbed (only used by ``set_z3_leaf_modules``).
Prints the max relative error of each quantity (values and d/d logprob).
"""
import importlib.util
import os
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from jaxrl_llm import losses as L  # noqa: E402

root = os.path.join(os.environ.get("ORLHF_PATH", "/tmp/orlhf_pkgs"), "openrlhf")
sys.modules["deepspeed"] = types.ModuleType("deepspeed")
for name in ("openrlhf", "openrlhf.models"):
  pkg = types.ModuleType(name)
  pkg.__path__ = [os.path.join(root, *name.split(".")[1:])]
  sys.modules[name] = pkg


def _load(name, path):
  spec = importlib.util.spec_from_file_location(name, path)
  mod = importlib.util.module_from_spec(spec)
  sys.modules[name] = mod
  spec.loader.exec_module(mod)
  return mod


utils = _load("openrlhf.models.utils", os.path.join(root, "models", "utils.py"))
loss_mod = _load("openrlhf.models.loss", os.path.join(root, "models", "loss.py"))

rng = np.random.default_rng(0)
B, T = 7, 6
old = rng.normal(-1.5, .5, (B, T))
lp = old + rng.normal(0, .6, (B, T))
lp[0, 1] = old[0, 1] + 1.6
lp[1, 2] = old[1, 2] - 1.0
mask = np.ones((B, T))
mask[2, 3:] = 0
mask[3, 1:] = 0
mask[4] = 0
seq_adv = rng.normal(size=B)
seq_adv[0] = -1.0
t = lambda x: torch.tensor(np.asarray(x), dtype=torch.float64)
j = lambda x: jnp.asarray(x, jnp.float32)
worst = {}


def rec(name, a, b, m=None):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  if m is not None:
    a, b = a[m > 0], b[m > 0]
  worst[name] = float(np.max(np.abs(a - b) / (np.abs(b) + 1e-6)))


adv_tok = t(np.broadcast_to(seq_adv[:, None], (B, T)).copy())
for kind, dual, token_level, ours, kw in [
    ("ppo", None, True, L.ppo_policy_loss, dict(clip_low=.2, clip_high=.28)),
    ("ppo", 3.0, True, L.ppo_policy_loss, dict(clip_low=.2, clip_high=.28, dual_clip=3.0)),
    ("ppo", 3.0, False, L.ppo_policy_loss, dict(clip_low=.2, clip_high=.28, dual_clip=3.0,
                                                 agg_mode="seq-mean-token-mean")),
    ("gspo", None, False, L.gspo_policy_loss, dict(clip_low=.2, clip_high=.28,
                                                    agg_mode="seq-mean-token-mean")),
]:
  pl = loss_mod.PolicyLoss(clip_eps_low=.2, clip_eps_high=.28, dual_clip=dual,
                           token_level_loss=token_level, policy_loss_type=kind)
  lpt = t(lp).requires_grad_()
  value = pl(lpt, t(old), adv_tok, action_mask=t(mask))[0]
  value.backward()
  f = lambda x: L.safe_mean(*ours(x, j(old), j(seq_adv), j(mask), **kw)[:2])
  name = f"{kind} dual={dual} token_level={token_level}"
  rec(name, f(j(lp)), value.item())
  rec(name + " grad", jax.grad(f)(j(lp)), lpt.grad.numpy(), mask)

vals = rng.normal(size=(B, T))
vp = vals + rng.normal(0, .8, (B, T))
ret = rng.normal(size=(B, T))
v = loss_mod.ValueLoss(0.5)(t(vp), t(vals), t(ret), action_mask=t(mask))
o = L.clipped_value_loss(j(vp), j(vals), j(ret), j(mask), clip=0.5)
rec("value loss", float(o.total) / float(o.count), v.item())

ref = lp + rng.normal(0, 2, (B, T))
# OpenRLHF clamps every estimator's value to [-10, 10] (verl and we clamp only k3): compare
# where that clamp is inactive.
unclamped = (np.abs(lp - ref) ** 2 / 2 < 10).astype(float)
for kind in ("k1", "k2", "k3"):
  lpt = t(lp).requires_grad_()
  kl = utils.compute_approx_kl(lpt, t(ref), kl_estimator=kind)
  kl.sum().backward()
  f = lambda x: L.kl_divergence(x, j(ref), kind)
  rec("approx_kl " + kind, f(j(lp)), kl.detach().numpy(), unclamped)
  rec("approx_kl grad " + kind, jax.grad(lambda x: f(x).sum())(j(lp)), lpt.grad.numpy(), unclamped)

pc, pr, rc, rr = (rng.normal(-20, 5, size=6) for _ in range(4))
for smoothing, ipo in [(0.0, False), (0.2, False), (0.0, True)]:
  pct = t(pc).requires_grad_()
  value = loss_mod.DPOLoss(0.1, smoothing, ipo)(pct, t(pr), t(rc), t(rr))[0]
  value.backward()
  f = lambda x: L.safe_mean(*L.dpo_loss(x, j(pr), j(rc), j(rr), beta=0.1,
                                         kind="ipo" if ipo else "sigmoid",
                                         label_smoothing=smoothing)[:2])
  rec(f"dpo smoothing={smoothing} ipo={ipo}", f(j(pc)), value.item())
  rec(f"dpo smoothing={smoothing} ipo={ipo} grad", jax.grad(f)(j(pc)), pct.grad.numpy())

for k, v in worst.items():
  print(f"{k:45s} max rel err {v:.2e}")
print("WORST", max(worst.values()))

"""Every objective under jax.jit, jax.vmap over a leading axis, and jax.grad.

All functions go through one combined function so the whole check costs a
handful of compilations.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses

B, T, V = 4, 3, 5


def _batch(seed):
  rng = np.random.default_rng(seed)
  f = lambda *s: jnp.asarray(rng.normal(size=s), jnp.float32)
  mask = np.ones((B, T), np.float32)
  mask[1, 2:] = 0
  mask[3] = 0                                   # fully masked row
  return {
      "logprobs": -jnp.abs(f(B, T)), "old": -jnp.abs(f(B, T)), "ref": -jnp.abs(f(B, T)),
      "sampler": -jnp.abs(f(B, T)), "values": f(B, T), "token_rewards": f(B, T),
      "scores": f(B), "mask": jnp.asarray(mask), "logits": f(B, T, V), "ref_logits": f(B, T, V),
      "group_ids": jnp.asarray(rng.integers(0, 2, size=B), jnp.int32),
      "pc": f(B), "pr": f(B), "rc": f(B), "rr": f(B),
  }


def _objectives(x):
  m, lp = x["mask"], x["logprobs"]
  gid = x["group_ids"]
  out = {}
  a = losses.grpo_advantages(x["scores"], group_ids=gid)
  out["adv_grpo"] = a
  out["adv_dr"] = losses.dr_grpo_advantages(x["scores"], group_ids=gid)
  out["adv_lite"] = losses.lite_ppo_advantages(x["scores"], group_size=2)
  out["adv_rloo"] = losses.rloo_advantages(x["scores"], group_ids=gid)
  out["adv_opo"] = losses.opo_advantages(x["scores"], m.sum(-1), group_ids=gid)
  out["adv_gpg"] = losses.gpg_advantages(x["scores"], group_ids=gid)
  out["adv_passk"] = losses.grpo_passk_advantages(x["scores"], group_ids=gid)
  out["adv_rpp"] = losses.reinforce_plus_plus_advantages(x["token_rewards"], m, gamma=0.9)[0]
  out["adv_rppb"] = losses.reinforce_plus_plus_baseline_advantages(x["scores"], m, group_ids=gid)
  out["adv_gae"] = losses.gae_advantages(x["token_rewards"], x["values"], m, gamma=0.9, lam=0.8)[0]
  w, _ = losses.truncated_importance_weights(x["old"], x["sampler"], m, level="sequence")
  pol = {
      "ppo": losses.ppo_policy_loss(lp, x["old"], a, m, clip_high=0.28, dual_clip=3.0,
                                    is_weights=w),
      "gspo": losses.gspo_policy_loss(lp, x["old"], a, m, clip_low=0.3, clip_high=0.3),
      "cispo": losses.cispo_policy_loss(lp, x["old"], out["adv_rpp"], m),
      "reinforce": losses.reinforce_loss(lp, x["old"], a, m, agg_mode="seq-mean-token-sum-norm"),
      "value": losses.clipped_value_loss(x["values"] + lp, x["values"], x["token_rewards"], m),
  }
  for name, o in pol.items():
    out[name] = losses.safe_mean(o.total, o.count)
    out[name + "_metrics"] = o.metrics
  for kind in ("k1", "abs", "k2", "k3", "k3+"):
    out["kl_" + kind] = losses.safe_mean(*losses.aggregate(
        losses.kl_divergence(lp, x["ref"], kind), m, "seq-mean-token-mean"))
  for kind in losses.divergences.F_DIVERGENCES:
    out["f_" + kind] = losses.masked_mean(losses.f_divergence(lp, x["ref"], kind), m)
  out["fkl_policy"] = losses.masked_mean(losses.forward_kl_estimate(lp, x["ref"]), m)
  out["kl_logits"] = losses.masked_mean(losses.kl_from_logits(x["logits"], x["ref_logits"]), m)
  out["entropy"] = losses.masked_mean(losses.entropy_from_logits(x["logits"], 0.7), m)
  out["dapo_keep"], out["dapo_dropped"], _ = losses.dynamic_sampling_filter(x["scores"],
                                                                            group_ids=gid)
  out["overlong"] = losses.overlong_penalty(m.sum(-1), max_length=3, cache_length=2)
  pref = [x["pc"] + lp[:, 0], x["pr"], x["rc"], x["rr"]]
  for kind in losses.preference.DPO_KINDS:
    out["dpo_" + kind] = losses.dpo_loss(*pref, beta=0.5, kind=kind, label_smoothing=0.1).total
  out["inpo"] = losses.inpo_loss(*pref, x["rc"], x["rr"], eta=0.5, tau=0.2).total
  return out


def _scalar(x):
  out = _objectives(x)
  return sum(v for k, v in out.items()
             if not k.startswith("dapo") and not k.endswith("metrics") and jnp.ndim(v) == 0)


def _assert_trees_close(a, b):
  def close(u, v):
    if u.dtype == jax.dtypes.float0:   # gradient "of" an integer input
      return
    np.testing.assert_allclose(u, v, rtol=2e-5, atol=1e-6)
  jax.tree.map(close, a, b)


@pytest.fixture(scope="module")
def batches():
  return _batch(0), _batch(1)


def test_jit_matches_eager_and_is_finite(batches):
  x0, _ = batches
  jitted = jax.jit(_objectives)(x0)
  _assert_trees_close(jitted, _objectives(x0))
  assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(jitted))


def test_vmap_over_leading_axis_matches_per_example(batches):
  x0, x1 = batches
  jitted = jax.jit(_objectives)
  stacked = jax.tree.map(lambda u, v: jnp.stack([u, v]), x0, x1)
  batched = jax.jit(jax.vmap(_objectives))(stacked)
  for i, x in enumerate((x0, x1)):
    _assert_trees_close(jax.tree.map(lambda v: v[i], batched), jitted(x))


def test_grad_is_finite_zero_on_masked_tokens_and_vmaps(batches):
  x0, x1 = batches
  grad_fn = jax.jit(jax.grad(_scalar, allow_int=True))
  g0 = grad_fn(x0)
  for name in ("logprobs", "logits", "pc", "values"):
    assert np.all(np.isfinite(g0[name])), name
  assert np.any(np.asarray(g0["logprobs"]) != 0)
  # logprobs enter the token losses only through the mask (lp[:, 0] of the fully
  # masked row 3 also feeds the DPO terms, so check the other masked positions).
  masked = np.asarray(x0["mask"]) == 0
  masked[3, 0] = False
  np.testing.assert_array_equal(np.asarray(g0["logprobs"])[masked], 0.0)
  stacked = jax.tree.map(lambda u, v: jnp.stack([u, v]), x0, x1)
  g_batched = jax.jit(jax.vmap(jax.grad(_scalar, allow_int=True)))(stacked)
  _assert_trees_close(jax.tree.map(lambda v: v[0], g_batched), g0)
  _assert_trees_close(jax.tree.map(lambda v: v[1], g_batched), grad_fn(x1))

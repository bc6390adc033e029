"""Step builders: hand/NumPy values of the first-step losses, exact micro-batch
accumulation, sharded == single-device, value head / GAE plumbing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import kernels_pallas
from jaxrl_llm import models, sharding, training

VOCAB = 16


@pytest.fixture(scope="module")
def setup():
  config = models.get_preset("tiny-llama", vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                             num_heads=2, num_kv_heads=2, head_dim=8, pad_token_id=0, bos_token_id=1, eos_token_id=2)
  params = models.init_params(config, jax.random.key(0))
  return config, params


def rl_batch(seed=0, b=8, p=4, n=5, group_size=2):
  rng = np.random.default_rng(seed)
  prompt_mask = np.ones((b, p), np.int32)
  prompt_mask[::3, :2] = 0  # some left padding
  prompt_tokens = np.where(prompt_mask, rng.integers(3, VOCAB, (b, p)), 0).astype(np.int32)
  lengths = rng.integers(1, n + 1, b)
  completion_mask = (np.arange(n)[None] < lengths[:, None]).astype(np.int32)
  completion_tokens = np.where(completion_mask, rng.integers(3, VOCAB, (b, n)), 0).astype(np.int32)
  rewards = rng.integers(0, 2, b).astype(np.float32)
  rewards[:2] = [1.0, 0.0]  # group 0 is informative whatever the seed
  return training.make_rollout_batch(
      prompt_tokens, prompt_mask, completion_tokens, completion_mask,
      rng.normal(-2.0, 0.1, (b, n)).astype(np.float32) * completion_mask, rewards,
      group_size=group_size)


def numpy_logprobs(config, params, batch):
  """Independent path: full logits from models.forward, log-softmax and gather in NumPy."""
  tokens = np.concatenate([batch.prompt_tokens, batch.completion_tokens], 1)
  mask = np.concatenate([batch.prompt_mask, batch.completion_mask], 1)
  logits = np.asarray(models.forward(config, params, tokens, mask), np.float64)
  logp = logits - logits.max(-1, keepdims=True)
  logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
  p = batch.prompt_tokens.shape[1]
  n = batch.completion_tokens.shape[1]
  out = np.zeros((tokens.shape[0], n))
  for i in range(tokens.shape[0]):
    for t in range(n):
      out[i, t] = logp[i, p - 1 + t, tokens[i, p + t]]
  return out


def test_completion_logprobs_match_dense_forward(setup):
  config, params = setup
  batch = rl_batch()
  got = training.completion_logprobs(config, params, batch.prompt_tokens, batch.prompt_mask,
                                     batch.completion_tokens, batch.completion_mask)
  np.testing.assert_allclose(np.asarray(got.logprobs), numpy_logprobs(config, params, batch),
                             atol=2e-5)


def test_sft_step_loss_is_masked_nll_and_accumulation_is_exact(setup):
  config, params = setup
  rng = np.random.default_rng(1)
  b, t = 4, 7
  tokens = rng.integers(3, VOCAB, (b, t)).astype(np.int32)
  attn = np.ones((b, t), np.int32)
  attn[0, :2] = 0
  loss_mask = np.zeros((b, t), np.int32)
  loss_mask[:, 4:] = 1
  loss_mask[1, 6] = 0  # rows count different numbers of tokens
  batch = {"tokens": tokens, "attention_mask": attn, "loss_mask": loss_mask}
  logits = np.asarray(models.forward(config, params, tokens, attn), np.float64)
  logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
  nll, count = 0.0, 0
  for i in range(b):
    for j in range(1, t):
      if loss_mask[i, j]:
        nll += logz[i, j - 1] - logits[i, j - 1, tokens[i, j]]
        count += 1
  opt = training.make_optimizer(1e-2, max_grad_norm=None)
  state = training.init_train_state(params, opt)
  s1, m1 = jax.jit(training.make_sft_step(config, opt))(state, batch)
  s2, m2 = jax.jit(training.make_sft_step(config, opt, num_micro_batches=2))(state, batch)
  np.testing.assert_allclose(float(m1["loss"]), nll / count, rtol=1e-5)
  np.testing.assert_allclose(float(m2["loss"]), nll / count, rtol=1e-5)
  assert int(m1["tokens"]) == count
  jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, atol=1e-6), s1.params, s2.params)
  assert int(s1.step) == 1


def test_sequence_logprobs_equal_models_token_logprobs_shifted(setup):
  config, params = setup
  batch = rl_batch(1)
  tokens = np.concatenate([batch.prompt_tokens, batch.completion_tokens], 1)
  mask = np.concatenate([batch.prompt_mask, batch.completion_mask], 1)
  seq = np.asarray(training.sequence_logprobs(config, params, tokens, mask,
                                              temperature=0.8).logprobs)
  tok = np.asarray(models.token_logprobs(config, params, tokens, mask, temperature=0.8).logprobs)
  both = (mask[:, 1:] > 0) & (mask[:, :-1] > 0)
  assert seq.shape == (tokens.shape[0], tokens.shape[1] - 1) and tok.shape == tokens.shape
  assert both.sum() > 0 and (~both).sum() > 0
  np.testing.assert_allclose(seq[both], tok[:, 1:][both], atol=1e-5)
  np.testing.assert_array_equal(tok[:, 1:][~both], 0.0)
  np.testing.assert_array_equal(tok[:, 0], 0.0)


def test_sft_batch_layout_and_errors():
  from jaxrl_llm.data import Example
  tok = models.CharTokenizer()
  examples = [Example(prompt="1+2=", answer="3", completion="3"),
              Example(prompt="9+9=", answer="18", completion="18")]
  pad, bos, eos = tok.pad_id, tok.bos_id, tok.eos_id
  row0 = [bos] + tok.encode("1+2=") + tok.encode("3") + [eos]             # 7 tokens
  row1 = [bos] + tok.encode("9+9=") + tok.encode("18=18") + [eos]         # 11 > 9
  assert len(row0) == 7 and len(row1) == 11
  with pytest.raises(ValueError, match="width=9 is shorter than example 1 \\(11 tokens\\)"):
    training.sft_batch(tok, examples, width=9, echo=[False, True])
  batch = training.sft_batch(tok, examples, width=11, echo=[False, True])
  np.testing.assert_array_equal(batch["tokens"], [[pad] * 4 + row0, row1])
  np.testing.assert_array_equal(batch["attention_mask"], [[0] * 4 + [1] * 7, [1] * 11])
  np.testing.assert_array_equal(batch["loss_mask"], [[0] * 9 + [1] * 2, [0] * 5 + [1] * 6])
  assert set(batch) == set(training.SFT_BATCH_KEYS)
  assert all(v.dtype == np.int32 for v in batch.values())


def grpo_advantages_numpy(rewards, g):
  out = np.zeros_like(rewards, np.float64)
  for s in range(0, len(rewards), g):
    r = rewards[s:s + g].astype(np.float64)
    out[s:s + g] = (r - r.mean()) / (r.std(ddof=1) + 1e-6)
  return out


def test_rl_first_step_loss_matches_numpy(setup, num_micro_batches=2):
  config, params = setup
  batch = rl_batch()
  g = 2
  opt = training.make_optimizer(1e-3, max_grad_norm=1.0)
  step = training.make_rl_step(config, opt, group_size=g, loss="ppo", advantage="grpo",
                               kl="k3", kl_coef=0.1, num_micro_batches=num_micro_batches)
  state = training.init_train_state(params, opt)
  prepared, pm = jax.jit(step.prepare)(state, batch, params)
  _, metrics = jax.jit(step.update)(state, prepared)
  # At the first step lp == lp_old == lp_ref: ratio 1, KL 0, loss = -sum A m / sum m.
  m = batch.completion_mask.astype(np.float64)
  adv = grpo_advantages_numpy(batch.rewards, g)
  expected = -(adv[:, None] * m).sum() / m.sum()
  np.testing.assert_allclose(float(metrics["loss"]), expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.asarray(prepared.advantages), adv[:, None] * m, atol=1e-5)
  assert abs(float(metrics["kl"])) < 1e-6 and float(metrics["clip_frac"]) == 0.0
  # Mismatch metric: mean(lp_sampler - lp_trainer) over the mask.
  lp = numpy_logprobs(config, params, batch)
  k1 = ((batch.sampler_logprobs - lp) * m).sum() / m.sum()
  np.testing.assert_allclose(float(pm["mismatch/mismatch_k1"]), k1, rtol=1e-4)


def test_rl_update_accumulation_matches_full_batch_after_two_updates(setup):
  """Second update (ratio != 1, clipping active) under 1 vs 4 micro-batches."""
  config, params = setup
  batch = rl_batch(3, group_size=4)
  opt = optax.sgd(0.5)  # plain SGD: Adam would amplify float noise in near-zero gradients
  outs = []
  for n in (1, 4):
    step = training.make_rl_step(config, opt, group_size=4, loss="ppo",
                                 loss_kwargs={"agg_mode": "seq-mean-token-mean"},
                                 advantage="rloo", entropy_coef=0.01, num_micro_batches=n)
    state = training.init_train_state(params, opt)
    prepared, _ = step.prepare(state, batch)
    update = jax.jit(step.update)
    state, _ = update(state, prepared)
    state, metrics = update(state, prepared)
    outs.append((state, metrics))
  assert float(outs[0][1]["ratio_max"]) != 1.0
  np.testing.assert_allclose(float(outs[0][1]["loss"]), float(outs[1][1]["loss"]), atol=1e-6)
  jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, atol=1e-6),
               outs[0][0].params, outs[1][0].params)


def test_ppo_gae_value_head_learns_the_return(setup):
  """With a zero value head, V = 0, so GAE(gamma=lam=1) returns are the terminal reward."""
  config, params = setup
  batch = rl_batch(5)
  opt = training.make_optimizer(1e-2, max_grad_norm=None)
  step = training.make_rl_step(config, opt, group_size=2, loss="ppo", advantage="gae",
                               advantage_kwargs={"whiten": False}, value_coef=0.5)
  vh = training.init_value_head(config.hidden_size)
  state = training.init_train_state(params, opt, vh)
  prepared, _ = step.prepare(state, batch)
  m = batch.completion_mask
  expected_returns = batch.rewards[:, None] * m
  np.testing.assert_allclose(np.asarray(prepared.returns), expected_returns, atol=1e-6)
  np.testing.assert_allclose(np.asarray(prepared.advantages), expected_returns, atol=1e-6)
  state, metrics = jax.jit(step.update)(state, prepared)
  # value loss at V=0: 0.5 * mean over tokens of R^2.
  np.testing.assert_allclose(float(metrics["value_loss"]),
                             0.5 * (expected_returns ** 2).sum() / m.sum(), rtol=1e-5)
  assert float(jnp.abs(state.value_params["w"]).sum()) > 0


def test_value_trunk_grad_false_keeps_the_value_loss_out_of_the_policy(setup):
  """SGD(1) updates: with a detached trunk the policy moves exactly as with value_coef=0;
  with a shared trunk it does not; the value head moves the same either way."""
  config, params = setup
  batch = rl_batch(6)
  opt = optax.sgd(1.0)
  vh = training.init_value_head(config.hidden_size)
  vh = {"w": jax.random.normal(jax.random.key(1), vh["w"].shape) * 0.5, "b": vh["b"] + 0.3}
  state = training.init_train_state(params, opt, vh)
  make = lambda **kw: training.make_rl_step(config, opt, group_size=2, loss="ppo",
                                            advantage="gae", **kw)
  prepared, _ = jax.jit(make().prepare)(state, batch)
  new = {name: jax.jit(make(**kw).update)(state, prepared)[0] for name, kw in (
      ("detached", dict(value_coef=0.5, value_trunk_grad=False)),
      ("shared", dict(value_coef=0.5, value_trunk_grad=True)),
      ("no_value_loss", dict(value_coef=0.0)))}
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])
  np.testing.assert_allclose(flat(new["detached"].params), flat(new["no_value_loss"].params),
                             rtol=1e-5, atol=1e-7)
  gap = np.abs(flat(new["shared"].params) - flat(new["no_value_loss"].params)).max()
  assert gap > 1e-4, gap
  np.testing.assert_allclose(flat(new["detached"].value_params), flat(new["shared"].value_params),
                             rtol=1e-5, atol=1e-7)
  assert np.abs(flat(new["detached"].value_params) - flat(vh)).max() > 1e-4


@pytest.mark.parametrize("vocab_parallel", [False, True])
def test_sharded_rl_step_equals_single_device(setup, vocab_parallel, monkeypatch):
  config, params = setup
  assert jax.device_count() >= 8, "tests/conftest.py should give 8 fake CPU devices"
  batch = rl_batch(7)
  # Plain SGD with lr 1: each step moves the params by exactly the gradient, so the
  # comparison below is a comparison of gradients. (Adam's first steps move every
  # weight by about lr whatever |g| is, which turns float reduction-order noise in
  # near-zero gradients into ~lr-sized differences: a rounding edge, not a check.)
  opt = optax.sgd(1.0)
  mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
  make = lambda m: training.make_rl_step(config, opt, group_size=2, loss="ppo",
                                         advantage="grpo", kl="k3", kl_coef=0.05,
                                         num_micro_batches=2, mesh=m)
  vocab_sharded_calls = []
  original = kernels_pallas.fused_logprobs_vocab_sharded
  monkeypatch.setattr(kernels_pallas, "fused_logprobs_vocab_sharded",
                      lambda *a, **k: vocab_sharded_calls.append(k) or original(*a, **k))
  step = make(None)

  def run(state, ref, b):
    prepared, _ = jax.jit(step.prepare)(state, b, ref)
    upd = jax.jit(step.update)
    state, _ = upd(state, prepared)
    state, metrics = upd(state, prepared)  # second update: ratio != 1
    return state, metrics

  single, m_single = run(training.init_train_state(params, opt), params, batch)
  # With the mesh, the head stays split over "tensor" (vocab-parallel log-probs).
  step = make(mesh if vocab_parallel else None)
  with jax.set_mesh(mesh):
    sp = sharding.shard_params(params, config, mesh)
    ss = training.init_train_state(sp, opt)
    sharded, m_sharded = run(ss, sp, sharding.shard_batch(batch, mesh))
  assert len(sharded.params["embedding"].sharding.device_set) == 8
  assert bool(vocab_sharded_calls) == vocab_parallel
  if vocab_parallel:
    assert all(k["vocab_axis"] == "tensor" and k["token_axes"] == ("data", "fsdp")
               for k in vocab_sharded_calls), vocab_sharded_calls
  np.testing.assert_allclose(float(m_single["loss"]), float(m_sharded["loss"]), atol=1e-5)
  moved = max(float(np.max(np.abs(np.asarray(a) - np.asarray(p0))))
              for a, p0 in zip(jax.tree.leaves(single.params), jax.tree.leaves(params)))
  assert moved > 1e-3, moved  # the gradients are far above the 1e-5 tolerance
  jax.tree.map(lambda a, c: np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=1e-5),
               single.params, sharded.params)


def test_bad_options_raise():
  config = models.get_preset("tiny-llama", vocab_size=VOCAB)
  opt = training.make_optimizer(1e-3)
  with pytest.raises(ValueError, match="unknown policy loss 'nope'"):
    training.make_rl_step(config, opt, group_size=2, loss="nope")
  with pytest.raises(ValueError, match="advantage estimator 'bogus'"):
    training.make_rl_step(config, opt, group_size=2, advantage="bogus")
  with pytest.raises(ValueError, match="kl_coef"):
    training.make_rl_step(config, opt, group_size=2, kl_coef=0.1)
  with pytest.raises(ValueError, match="not options of policy loss"):
    training.make_rl_step(config, opt, group_size=2, loss_kwargs={"clip_lo": 0.1})
  step = training.make_rl_step(config, opt, group_size=3)
  state = training.init_train_state(models.init_params(config, jax.random.key(0)), opt)
  with pytest.raises(ValueError, match="batch of 8 rows is not divisible by group_size=3"):
    step.prepare(state, rl_batch())
  with pytest.raises(ValueError, match="unknown advantage estimator 'bogus'; known: .*grpo"):
    training.make_rl_step(config, opt, group_size=2, advantage="bogus")
  with pytest.raises(ValueError, match=r"\['gama'\] are not options of advantage estimator "
                     r"'gae'; its options: gamma, lam, whiten"):
    training.make_rl_step(config, opt, group_size=2, advantage="gae",
                          advantage_kwargs={"gama": 0.9})
  with pytest.raises(ValueError, match="RolloutBatch.advantages is None; run prepare first"):
    training.make_rl_step(config, opt, group_size=2, single_update=True).update(
        state, rl_batch())


def test_logprob_gradient_matches_dense_log_softmax(setup):
  """The fused log-prob path's gradient under mixed-sign cotangents (as RL gives)
  equals autodiff through dense logits + log_softmax."""
  config, params = setup
  rng = np.random.default_rng(11)
  tokens = rng.integers(1, VOCAB, (3, 7)).astype(np.int32)
  mask = np.ones((3, 7), np.int32)
  mask[0, :2] = 0
  c = rng.normal(size=(3, 6)).astype(np.float32)

  def fused(p):
    return jnp.sum(c * training.sequence_logprobs(config, p, tokens, mask).logprobs)

  def dense(p):
    lp = jax.nn.log_softmax(models.forward(config, p, tokens, mask)[:, :-1], -1)
    return jnp.sum(c * jnp.take_along_axis(lp, tokens[:, 1:, None], -1)[..., 0])

  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-4),
               jax.grad(fused)(params), jax.grad(dense)(params))


@pytest.mark.parametrize("kl", [None, "k3"])
def test_single_update_skips_the_old_logprob_forward_and_equals_the_full_path(setup, kl):
  """single_update=True: prepare runs no trainer forward (only the reference's with a KL);
  one update from it equals the update from prepare's old log-probs (TIS on)."""
  config, params = setup
  batch = rl_batch(8)
  opt = training.make_optimizer(1e-3, max_grad_norm=1.0)
  kw = dict(group_size=2, loss="ppo", advantage="grpo", tis=dict(level="token", cap=2.0),
            entropy_coef=0.01, kl=kl, kl_coef=0.05 if kl else 0.0, num_micro_batches=2)
  state = training.init_train_state(params, opt)
  ref = params if kl else None
  calls = []
  real = training.rl.completion_logprobs

  def counting(*a, **k):
    calls.append(a[1] is ref)
    return real(*a, **k)

  full = training.make_rl_step(config, opt, **kw)
  fast = training.make_rl_step(config, opt, single_update=True, **kw)
  prepared_full, _ = full.prepare(state, batch, ref)
  training.rl.completion_logprobs = counting
  try:
    prepared_fast, pm = fast.prepare(state, batch, ref)
  finally:
    training.rl.completion_logprobs = real
  assert calls == ([True] if kl else [])  # the reference forward only
  assert prepared_fast.old_logprobs is None and prepared_full.old_logprobs is not None
  assert "mismatch/mismatch_k1" not in pm
  np.testing.assert_allclose(prepared_fast.advantages, prepared_full.advantages, atol=0)
  s_full, m_full = jax.jit(full.update)(state, prepared_full)
  s_fast, m_fast = jax.jit(fast.update)(state, prepared_fast)
  jax.tree.map(lambda a, c: np.testing.assert_allclose(a, c, atol=1e-6), s_full.params,
               s_fast.params)
  np.testing.assert_allclose(float(m_fast["loss"]), float(m_full["loss"]), atol=1e-6)
  assert "mismatch/mismatch_k1" in m_fast


def test_forced_tokens_get_zero_gradient(setup):
  """Tokens off loss_mask (forced prefixes) give no gradient: scrambling their advantages,
  old and reference log-probs leaves the update unchanged; on a loss token it does not."""
  config, params = setup
  base = rl_batch(9)
  loss_mask = np.asarray(base.completion_mask).copy()
  loss_mask[:, :2] = 0  # first two completion tokens forced in every row
  loss_mask[0, 2] = 1   # row 0 has a loss token right after its prefix
  batch = base.replace(loss_mask=loss_mask)
  opt = optax.sgd(1.0)  # params' change is -grad
  step = training.make_rl_step(config, opt, group_size=2, loss="ppo", advantage="grpo",
                               kl="k3", kl_coef=0.1, entropy_coef=0.01)
  state = training.init_train_state(params, opt)
  prepared, _ = step.prepare(state, batch, params)
  np.testing.assert_array_equal(np.asarray(prepared.advantages)[loss_mask == 0], 0.0)
  update = jax.jit(step.update)
  flat = lambda t: np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)])

  def grad_with(where):
    rng = np.random.default_rng(0)
    noise = lambda x: np.where(where, rng.normal(size=x.shape) * 3.0, np.asarray(x)).astype(
        np.float32)
    b = prepared.replace(advantages=noise(prepared.advantages),
                         old_logprobs=noise(prepared.old_logprobs),
                         ref_logprobs=noise(prepared.ref_logprobs))
    return flat(params) - flat(update(state, b)[0].params)

  g = grad_with(np.zeros_like(loss_mask, bool))
  forced = (loss_mask == 0) & (np.asarray(batch.completion_mask) > 0)
  assert forced.sum() > 4
  np.testing.assert_allclose(grad_with(forced), g, rtol=1e-6, atol=1e-9)
  one_loss_token = np.zeros_like(forced)
  one_loss_token[0, 2] = True
  assert np.abs(grad_with(one_loss_token) - g).max() > 1e-4
  # With every completion token in the loss the forced positions would have moved it.
  full, _ = step.prepare(state, base, params)
  assert np.abs(flat(params) - flat(update(state, full)[0].params) - g).max() > 1e-4


def shared_prompt_batch(seed=0, group_size=2, **kw):
  """`rl_batch` with every group's rows given the group's first prompt (a GRPO batch)."""
  batch = rl_batch(seed, group_size=group_size, **kw)
  first = lambda x: np.repeat(np.asarray(x)[::group_size], group_size, 0)
  return batch.replace(prompt_tokens=first(batch.prompt_tokens),
                       prompt_mask=first(batch.prompt_mask))


def test_completion_logprobs_with_shared_prompts_match_dense_forward(setup):
  config, params = setup
  batch = shared_prompt_batch(group_size=4)
  for g in (2, 4):
    got = jax.jit(lambda p, b, g=g: training.completion_logprobs(
        config, p, b.prompt_tokens, b.prompt_mask, b.completion_tokens, b.completion_mask,
        want_entropy=True, prompt_group_size=g))(params, batch)
    np.testing.assert_allclose(np.asarray(got.logprobs), numpy_logprobs(config, params, batch),
                               atol=2e-5)
  assert bool(training.prompts_shared(batch.prompt_tokens, batch.prompt_mask, 4))
  assert not bool(training.prompts_shared(batch.prompt_tokens, batch.prompt_mask, 8))
  assert not bool(training.prompts_shared(batch.prompt_tokens, batch.prompt_mask, 3))
  mask = np.asarray(batch.prompt_mask).copy()
  mask[1, -1] = 0  # same tokens, another mask: not shared
  assert not bool(training.prompts_shared(batch.prompt_tokens, mask, 2))
  with pytest.raises(ValueError, match="prompt_group_size must be None or a positive int"):
    training.completion_logprobs(config, params, batch.prompt_tokens, batch.prompt_mask,
                                 batch.completion_tokens, batch.completion_mask,
                                 prompt_group_size=0)


@pytest.mark.parametrize("single_update,kl", [(True, None), (False, "k3")])
def test_shared_prompt_forward_update_equals_the_ordinary_one(setup, single_update, kl):
  """share_prompt_forward=True: same prepared fields, loss and new parameters as the
  ordinary forward (micro-batches of whole groups, TIS, entropy, KL to a reference)."""
  config, params = setup
  batch = shared_prompt_batch(3)
  opt = training.make_optimizer(1e-3, max_grad_norm=1.0)
  kw = dict(group_size=2, loss="ppo", advantage="grpo", tis=dict(level="token", cap=2.0),
            entropy_coef=0.01, kl=kl, kl_coef=0.05 if kl else 0.0, num_micro_batches=2,
            single_update=single_update)
  ref = jax.tree.map(lambda x: x * 0.9, params) if kl else None
  out = {}
  for share in (False, True):
    step = training.make_rl_step(config, opt, share_prompt_forward=share, **kw)
    state = training.init_train_state(jax.tree.map(jnp.copy, params), opt)
    prepared, _ = jax.jit(step.prepare)(state, batch, ref)
    out[share] = (prepared,) + tuple(jax.jit(step.update)(state, prepared))
  (p0, s0, m0), (p1, s1, m1) = out[False], out[True]
  for field in ("old_logprobs", "ref_logprobs", "is_weights"):
    if getattr(p0, field) is not None:
      np.testing.assert_allclose(getattr(p1, field), getattr(p0, field), atol=2e-5)
  np.testing.assert_allclose(float(m1["loss"]), float(m0["loss"]), rtol=1e-5, atol=1e-7)
  moved = jax.tree.map(lambda a, b: float(jnp.abs(a - b).max()), s0.params, params)
  assert max(jax.tree.leaves(moved)) > 1e-4  # the step did move the parameters
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), s1.params, s0.params)
  assert float(m1["prompts_unshared"]) == 0.0 and "prompts_unshared" not in m0
  training.raise_if_prompts_unshared({k: float(v) for k, v in m1.items()})


def test_shared_prompt_forward_leaves_the_state_alone_when_groups_differ(setup):
  config, params = setup
  batch = rl_batch(4)  # every row its own prompt
  opt = training.make_optimizer(1e-3)
  step = training.make_rl_step(config, opt, group_size=2, single_update=True,
                               share_prompt_forward=True)
  state = training.init_train_state(params, opt)
  prepared, _ = step.prepare(state, batch)
  new_state, m = jax.jit(step.update)(state, prepared)
  assert float(m["prompts_unshared"]) == 1.0
  jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), new_state.params, state.params)
  assert int(new_state.step) == int(state.step)
  with pytest.raises(ValueError, match="rows of a group carry different prompts"):
    training.raise_if_prompts_unshared({k: float(v) for k, v in m.items()})


def test_sharded_shared_prompt_step_equals_the_single_device_ordinary_one(setup):
  """share_prompt_forward on a (data, fsdp, tensor) = (2, 2, 2) mesh with the vocabulary
  split: the same loss and SGD step (i.e. gradient) as the ordinary single-device step."""
  config, params = setup
  batch = shared_prompt_batch(7)
  opt = optax.sgd(1.0)  # the step is the gradient (see the test above)
  mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
  kw = dict(group_size=2, loss="ppo", advantage="grpo", kl="k3", kl_coef=0.05,
            num_micro_batches=2)

  def run(step, state, ref, b):
    prepared, _ = jax.jit(step.prepare)(state, b, ref)
    return jax.jit(step.update)(state, prepared)

  single, m_single = run(training.make_rl_step(config, opt, **kw),
                         training.init_train_state(params, opt), params, batch)
  with jax.set_mesh(mesh):
    sp = sharding.shard_params(params, config, mesh)
    sharded, m_sharded = run(
        training.make_rl_step(config, opt, mesh=mesh, share_prompt_forward=True, **kw),
        training.init_train_state(sp, opt), sp, sharding.shard_batch(batch, mesh))
  assert float(m_sharded["prompts_unshared"]) == 0.0
  np.testing.assert_allclose(float(m_single["loss"]), float(m_sharded["loss"]), atol=1e-5)
  jax.tree.map(lambda a, c: np.testing.assert_allclose(np.asarray(a), np.asarray(c), atol=1e-5),
               single.params, sharded.params)

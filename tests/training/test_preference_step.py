"""The preference step: batch layout, each registered loss wired to the right rows
(loss at a step == an independent NumPy transcription on log-probs from
``models.token_logprobs``), micro-batches == one batch, LoRA with the frozen base as
reference, KTO's reference point without gradient, named errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl_llm import models, training
from jaxrl_llm.data import preference as pdata
from jaxrl_llm.models import lora
from jaxrl_llm.training import preference as tp

TOK = models.CharTokenizer()
WIDTH = 12
PAIRS = [pdata.PreferencePair("1+2=", "3", "4"), pdata.PreferencePair("5+5=", "10", "9"),
         pdata.PreferencePair("7+1=", "8", "18"), pdata.PreferencePair("2+2=", "4", "5")]


@pytest.fixture(scope="module")
def model():
  config = models.get_preset("tiny-llama", vocab_size=TOK.vocab_size, hidden_size=16,
                             intermediate_size=32, num_heads=2, num_kv_heads=2, head_dim=8,
                             num_layers=2, pad_token_id=TOK.pad_id, bos_token_id=TOK.bos_id,
                             eos_token_id=TOK.eos_id)
  return config, models.init_params(config, jax.random.key(0))


def _seq_logps_independent(config, params, rows):
  """Summed response log-probs via models.token_logprobs (aligned with the tokens)."""
  out = models.token_logprobs(config, params, jnp.asarray(rows["tokens"]),
                              jnp.asarray(rows["attention_mask"]))
  return np.sum(np.asarray(out.logprobs, np.float64) * rows["loss_mask"], axis=1)


def _side(batch, side):
  return {k: batch[f"{side}_{k}"] for k in tp.ROW_KEYS}


def test_preference_batch_layout():
  b = tp.preference_batch(TOK, PAIRS[:2], WIDTH)
  assert set(b) == set(tp.PAIRED_KEYS)
  # Row 1 chosen: BOS 5 + 5 = (5 tokens) then 1 0 EOS (3), left-padded to 12; loss on "10" + EOS.
  want = [TOK.pad_id] * 4 + TOK.encode("5+5=", add_bos=True) + TOK.encode("10", add_eos=True)
  np.testing.assert_array_equal(b["chosen_tokens"][1], want)
  np.testing.assert_array_equal(b["chosen_loss_mask"][1], [0] * 9 + [1, 1, 1])
  np.testing.assert_array_equal(b["rejected_loss_mask"][1], [0] * 10 + [1, 1])
  np.testing.assert_array_equal(b["chosen_attention_mask"][1], [0] * 4 + [1] * 8)
  np.testing.assert_array_equal(tp.response_lengths(jnp.asarray(b["chosen_loss_mask"])), [2, 3])
  with pytest.raises(ValueError, match="width=7 is shorter than row 1"):
    tp.preference_batch(TOK, PAIRS[:2], 7)


def test_unpaired_batch_pairs_prompts_with_other_responses():
  responses = pdata.unpair(PAIRS[:2])  # c0 r0 c1 r1 (prompts p0 p0 p1 p1)
  assert [r.label for r in responses] == [True, False, True, False]
  # Nearest earlier row with another prompt: row 0 -> 3, 1 -> 3, 2 -> 1, 3 -> 1.
  assert tp.mismatched_rows([r.prompt for r in responses]) == [3, 3, 1, 1]
  assert tp.mismatched_rows(["a", "a"]) == [1, 0]
  b = tp.unpaired_batch(TOK, responses, WIDTH)
  np.testing.assert_array_equal(b["labels"], [1, 0, 1, 0])
  want = [TOK.pad_id] * 5 + TOK.encode("1+2=", add_bos=True) + TOK.encode("9", add_eos=True)
  np.testing.assert_array_equal(b["kl_tokens"][0], want)  # prompt 0 with response 3 ("9")


def _numpy_loss(name, pc, pr, rc, rr, nc, nr, **o):
  """Independent transcriptions of the per-pair losses (mean over pairs)."""
  ls = lambda x: -np.log1p(np.exp(-x))  # log sigma
  if name == "dpo":
    return np.mean(-ls(o["beta"] * ((pc - rc) - (pr - rr))))
  if name == "ipo":
    return np.mean(((pc - rc) / nc - (pr - rr) / nr - 1 / (2 * o["beta"])) ** 2)
  if name == "simpo":
    return np.mean(-ls(o["beta"] * (pc / nc - pr / nr) - o["gamma"]))
  if name == "orpo":
    mc, mr = pc / nc, pr / nr
    lo = lambda m: m - np.log1p(-np.exp(m))
    return np.mean(-mc - o["lam"] * ls(lo(mc) - lo(mr)))
  raise KeyError(name)


@pytest.mark.parametrize("name,opts", [("dpo", {"beta": 0.5}), ("ipo", {"beta": 0.5}),
                                       ("simpo", {"beta": 2.0, "gamma": 0.3}),
                                       ("orpo", {"lam": 0.2})])
def test_paired_losses_match_numpy_on_the_right_rows(model, name, opts):
  config, params = model
  # A reference different from the policy, so that rho != 0.
  ref = models.init_params(config, jax.random.key(7))
  batch = tp.preference_batch(TOK, PAIRS, WIDTH)
  opt = optax.sgd(0.0)
  state = training.init_train_state(params, opt)
  steps = tp.make_preference_step(config, opt, loss=name, loss_kwargs=opts)
  _, m = jax.jit(steps.update)(state, batch, ref)
  c, r = _side(batch, "chosen"), _side(batch, "rejected")
  want = _numpy_loss(name, _seq_logps_independent(config, params, c),
                     _seq_logps_independent(config, params, r),
                     _seq_logps_independent(config, ref, c),
                     _seq_logps_independent(config, ref, r),
                     c["loss_mask"].sum(1), r["loss_mask"].sum(1), **opts)
  np.testing.assert_allclose(float(m["loss"]), want, rtol=2e-5)


def test_dpo_at_the_reference_is_log2_and_micro_batches_equal_one_batch(model):
  config, params = model
  batch = tp.preference_batch(TOK, PAIRS, WIDTH)
  opt = optax.adam(1e-2)
  ref = jax.tree.map(jnp.copy, params)
  out = []
  for n in (1, 2):
    steps = tp.make_preference_step(config, opt, loss="dpo", loss_kwargs={"beta": 0.1},
                                    num_micro_batches=n)
    state, m = jax.jit(steps.update)(training.init_train_state(params, opt), batch, ref)
    out.append((state, m))
  assert float(out[0][1]["loss"]) == pytest.approx(math.log(2.0), abs=1e-6)
  np.testing.assert_allclose(out[0][1]["grad_norm"], out[1][1]["grad_norm"], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6),
               out[0][0].params, out[1][0].params)
  assert float(out[0][1]["tokens"]) == 2 + 3 + 2 + 2 + 2 + 3 + 2 + 2


def test_dpo_with_lora_uses_the_frozen_base_and_raises_the_margin(model):
  config, params = model
  lp = lora.wrap(lora.LoraConfig(rank=2, alpha=4.0, targets=("q", "v", "up")), params,
                 jax.random.key(1))
  batch = tp.preference_batch(TOK, PAIRS, WIDTH)
  opt = optax.adam(1e-1)
  state = training.init_train_state(lp, opt)
  update = jax.jit(tp.make_preference_step(config, opt, loss="dpo",
                                           loss_kwargs={"beta": 0.5}).update)
  history = []
  for _ in range(8):
    state, m = update(state, batch)  # no ref_params: the base is the reference
    history.append((float(m["loss"]), float(m["reward_margin"])))
  assert history[0][0] == pytest.approx(math.log(2.0), abs=1e-6)  # B = 0: policy == base
  for x, y in zip(jax.tree.leaves(state.params.base), jax.tree.leaves(params)):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # Measured (adam 0.1, 8 steps): loss 0.693 -> 0.610, margin 0 -> 0.177 (each value before
  # that step's update).
  assert history[-1][0] < history[0][0] - 0.05 and history[-1][1] > 0.1, history


def test_kto_step_reference_point_and_gradient(model):
  config, params = model
  ref = models.init_params(config, jax.random.key(7))
  batch = tp.unpaired_batch(TOK, pdata.unpair(PAIRS), WIDTH)
  opt = optax.sgd(0.0)
  steps = tp.make_preference_step(config, opt, loss="kto", loss_kwargs={"beta": 0.5})
  _, m = jax.jit(steps.update)(training.init_train_state(params, opt), batch, ref)
  rows = {k: batch[k] for k in tp.ROW_KEYS}
  kl_rows = {k: batch[f"kl_{k}"] for k in tp.ROW_KEYS}
  rho = _seq_logps_independent(config, params, rows) - _seq_logps_independent(config, ref, rows)
  z0 = max(0.0, np.mean(_seq_logps_independent(config, params, kl_rows)
                        - _seq_logps_independent(config, ref, kl_rows)))
  sig = lambda x: 1 / (1 + np.exp(-x))
  lab = batch["labels"].astype(bool)
  want = np.mean(np.where(lab, 1 - sig(0.5 * (rho - z0)), 1 - sig(0.5 * (z0 - rho))))
  np.testing.assert_allclose(float(m["loss"]), want, rtol=2e-5)
  np.testing.assert_allclose(float(m["kl"]), z0, rtol=2e-5, atol=1e-6)
  # Precomputed reference log-probs give the same step.
  pre = dict(batch, **steps.reference_logps(ref, batch))
  _, m2 = jax.jit(steps.update)(training.init_train_state(params, opt), pre)
  np.testing.assert_allclose(float(m2["loss"]), float(m["loss"]), rtol=1e-6)


def test_inpo_step_uses_precomputed_reference_and_previous(model):
  config, params = model
  ref = models.init_params(config, jax.random.key(7))
  batch = tp.preference_batch(TOK, PAIRS, WIDTH)
  opt = optax.sgd(0.0)
  eta, tau = 0.5, 0.25
  steps = tp.make_preference_step(config, opt, loss="inpo", loss_kwargs={"eta": eta, "tau": tau})
  batch = dict(batch, **steps.reference_logps(ref, batch), **steps.previous_logps(params, batch))
  _, m = jax.jit(steps.update)(training.init_train_state(params, opt), batch)
  # At pi = pi_t: h = (tau/eta) (log-ratio of pi_t minus that of pi_ref), L = (h - 1/(2 eta))^2.
  c, r = _side(batch, "chosen"), _side(batch, "rejected")
  pol = _seq_logps_independent(config, params, c) - _seq_logps_independent(config, params, r)
  rf = _seq_logps_independent(config, ref, c) - _seq_logps_independent(config, ref, r)
  h = pol - (tau / eta) * rf - ((eta - tau) / eta) * pol
  np.testing.assert_allclose(float(m["loss"]), np.mean((h - 1 / (2 * eta)) ** 2), rtol=2e-5)


def test_named_errors(model):
  config, params = model
  opt = optax.sgd(0.1)
  state = training.init_train_state(params, opt)
  batch = tp.preference_batch(TOK, PAIRS, WIDTH)
  with pytest.raises(ValueError, match="needs a reference model"):
    tp.make_preference_step(config, opt, loss="dpo").update(state, batch)
  with pytest.raises(ValueError, match="prev_chosen_logps"):
    tp.make_preference_step(config, opt, loss="inpo").update(state, batch, params)
  with pytest.raises(ValueError, match="missing .*'labels'"):
    tp.make_preference_step(config, opt, loss="kto").update(state, batch, params)
  with pytest.raises(ValueError, match="not options of preference loss 'orpo'"):
    tp.make_preference_step(config, opt, loss="orpo", loss_kwargs={"beta": 0.1})
  with pytest.raises(ValueError, match="unknown preference loss 'cpo'; known:"):
    tp.make_preference_step(config, opt, loss="cpo")


def test_select_pairs_skips_ties():
  # Prompt 0: rewards 0 1 0 1 -> winner row 1, loser row 0; prompt 1 all tie; prompt 2:
  # 0.5 0 1 1 -> winner 10 (first max), loser 9.
  winners, losers, tied = tp.select_pairs([0, 1, 0, 1, 1, 1, 1, 1, 0.5, 0, 1, 1], 4)
  np.testing.assert_array_equal(winners, [1, 10])
  np.testing.assert_array_equal(losers, [0, 9])
  np.testing.assert_array_equal(tied, [False, True, False])
  with pytest.raises(ValueError, match="group_size=1"):
    tp.select_pairs([0, 1], 1)


def test_paired_batch_from_ids_matches_the_text_path():
  prompt_ids = [TOK.encode(p.prompt, add_bos=True) for p in PAIRS]
  ids = lambda side: [TOK.encode(getattr(p, side), add_eos=True) for p in PAIRS]
  from_ids = tp.paired_batch_from_ids(prompt_ids, ids("chosen"), ids("rejected"), TOK.pad_id,
                                      WIDTH)
  from_text = tp.preference_batch(TOK, PAIRS, WIDTH)
  for k in tp.PAIRED_KEYS:
    np.testing.assert_array_equal(from_ids[k], from_text[k])

"""The 'process_reward' batch augmenter on a hand-built batch (character tokenizer: step
ends -> token indices, Clip / Delta rewards at step-end tokens, the outcome at the last
token), the 'calibration_metrics' augmenter and the 'rlcr_tabc' prompt transform."""

from typing import NamedTuple

import numpy as np
import pytest

from jaxrl_llm import data, models, rewards, training
from jaxrl_llm.training import process_reward, rollout

TEXTS = ["3+5=8\n8*2=16", "3+5=9\n5*2=10"]   # steps (1, 1) and (0, 1) for numbers 3, 5, 2
EX = data.Example("[3,5,2]->16:", "16", metadata={"numbers": (3, 5, 2), "target": 16})


class _Rollouts(NamedTuple):
  completions: list
  examples: list


def _batch(tok, n=14):
  ids = [tok.encode(TEXTS[0], add_eos=True), tok.encode(TEXTS[1])]   # 13 and 12 tokens
  tokens = np.zeros((2, n), np.int32)
  mask = np.zeros((2, n), bool)
  for i, x in enumerate(ids):
    tokens[i, :len(x)] = x
    mask[i, :len(x)] = True
  return training.make_rollout_batch(
      np.ones((2, 3), np.int32), np.ones((2, 3), np.int32), tokens, mask,
      np.zeros((2, n), np.float32), np.array([1.0, 0.0], np.float32), group_size=2)


def _token_rewards(**options):
  tok = models.CharTokenizer()
  out, metrics = process_reward.process_reward_augment(
      _batch(tok), _Rollouts(TEXTS, [EX]), tokenizer=tok, key=None, step=0, **options)
  return np.asarray(out.extras["token_rewards"]), metrics, out


def _row(entries, n=14):
  r = np.zeros(n, np.float32)
  for t, v in entries.items():
    r[t] += v
  return r


def test_char_end_to_token():
  tok = models.CharTokenizer()
  row = tok.encode(TEXTS[0])
  assert process_reward.char_end_to_token(tok, row, 5) == 4     # "3+5=8" ends on its "8"
  assert process_reward.char_end_to_token(tok, row, 12) == 11


def test_raw_step_rewards_by_hand():
  # Steps end at characters 5 and 12 -> tokens 4 and 11; outcome on the last mask token
  # (row 0: the EOS at 12; row 1: token 11).
  tr, m, out = _token_rewards(shaping="none")
  np.testing.assert_allclose(tr[0], _row({4: 1.0, 11: 1.0, 12: 1.0}))
  np.testing.assert_allclose(tr[1], _row({4: 0.0, 11: 1.0 + 0.0}))
  assert m["process_steps_mean"] == 2.0 and m["process_step_score_mean"] == 0.75
  np.testing.assert_array_equal(np.asarray(out.rewards), [1.0, 0.0])   # rewards untouched


def test_clip_delta_and_coefficients_by_hand():
  # clip (eta 0.5): row 0 [0, 0]; row 1 [-0.5, 0]
  tr, _, _ = _token_rewards(shaping="clip", eta=0.5)
  np.testing.assert_allclose(tr[0], _row({12: 1.0}))
  np.testing.assert_allclose(tr[1], _row({4: -0.5}))
  # delta: row 0 [1 - 1, 0]; row 1 [0 - 1, 0]
  tr, m, _ = _token_rewards(shaping="delta", step_coef=2.0, outcome_coef=0.5)
  np.testing.assert_allclose(tr[0], _row({12: 0.5}))
  np.testing.assert_allclose(tr[1], _row({4: -2.0}))
  assert m["process_shaped_sum_mean"] == pytest.approx(-0.5)   # (0 + -1) / 2 before step_coef
  # clip_delta: c row 1 = [-0.5, 0] -> [-0.5, 0]
  tr, _, _ = _token_rewards(shaping="clip_delta", eta=0.5)
  np.testing.assert_allclose(tr[1], _row({4: -0.5}))
  with pytest.raises(ValueError, match="unknown shaping"):
    _token_rewards(shaping="sum")
  assert rollout.BATCH_AUGMENTERS["process_reward"].provides == ("token_rewards",)


def test_calibration_metrics_augmenter_and_prompt_transform():
  ex = data.Example("12+34=", "46")
  texts = ["<think>a</think><answer>46</answer><analysis>b</analysis><confidence>0.8"
           "</confidence>", "46"]
  batch = _batch(models.CharTokenizer())
  out, m = rollout.BATCH_AUGMENTERS["calibration_metrics"].fn(
      batch, _Rollouts(texts, [ex]), tokenizer=None, key=None, step=0)
  assert out is batch
  assert m == pytest.approx({"rlcr_format_frac": 0.5, "rlcr_answer_accuracy": 0.5,
                             "rlcr_confidence_mean": 0.4, "rlcr_brier": (0.04 + 1.0) / 2})
  plan = rollout.get_prompt_transform("rlcr_tabc")([ex])
  assert plan.prompts == [rewards.TABC_INSTRUCTION + "12+34="] and plan.prefixes is None
  models.CharTokenizer().encode(plan.prompts[0])   # the instruction is in the char alphabet


def test_prepare_feeds_token_rewards_to_gae_token():
  """make_rl_step's prepare passes extras['token_rewards'] to the estimator: with the
  zero-initialised value head (V = 0), gamma = lam = 1 and no whitening, the advantage is
  the masked return-to-go of the token rewards."""
  import jax
  import optax
  from test_steps import VOCAB, rl_batch
  config = models.get_preset("tiny-llama", vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                             num_heads=2, num_kv_heads=2, head_dim=8, pad_token_id=0,
                             bos_token_id=1, eos_token_id=2)
  params = models.init_params(config, jax.random.key(0))
  batch = rl_batch(b=4, n=5)
  mask = np.asarray(batch.loss_mask).astype(np.float32)
  tok = (np.arange(20, dtype=np.float32).reshape(4, 5) / 10 - 1.0) * mask
  step = training.make_rl_step(config, optax.sgd(0.0), group_size=2, advantage="gae_token",
                               advantage_kwargs={"whiten": False})
  state = training.init_train_state(params, optax.sgd(0.0),
                                    training.init_value_head(config.hidden_size))
  prepared, _ = jax.jit(step.prepare)(state, batch.replace(extras={"token_rewards": tok}))
  rtg = np.flip(np.cumsum(np.flip(tok, 1), 1), 1) * mask
  np.testing.assert_allclose(np.asarray(prepared.advantages), rtg, atol=1e-5)
  with pytest.raises(ValueError, match="process_reward"):
    jax.jit(step.prepare)(state, batch)

"""SEELE's data-level pieces (training/seele.py): the 3PL model and its inverse by hand,
the least-squares fit on planted parameters (noiseless and noisy; scipy's TRF as an
independent cross-check when installed), margin pooling, the degenerate-fit fallback, and
the 'seele' rollout method on a tiny model (hint = forced prefix of the reference solution,
out of loss_mask; round 2's hint from the fit on round 1; the stored rate resumes)."""

import dataclasses
import json
import math

import jax
import numpy as np
import pytest

from jaxrl_llm import models
from jaxrl_llm.data.arithmetic import ArithmeticTask
from jaxrl_llm.data.countdown import CountdownTask
from jaxrl_llm.training import rollout, seele
from jaxrl_llm.training.seele import ThreePL


def test_three_pl_and_inverse_by_hand():
  phi = ThreePL(k=10.0, mu=-0.5, b=0.2)
  # f(0.5) = 0.2 + 0.8 * sigmoid(0) = 0.6; f(0.6) = 0.2 + 0.8 / (1 + e^-1) = 0.7848469
  np.testing.assert_allclose(seele.three_pl([0.5, 0.6], phi), [0.6, 0.7848469], rtol=1e-6)
  assert seele.three_pl_inverse(0.6, phi) == pytest.approx(0.5, abs=1e-12)
  # a* = 0.5: p = 0.5 - 0.1 * log(0.8 / 0.3 - 1) = 0.5 - 0.1 * log(5/3) = 0.4489174
  assert seele.three_pl_inverse(0.5, phi) == pytest.approx(0.5 - 0.1 * math.log(5 / 3), 1e-12)
  assert seele.three_pl_inverse(0.5, phi) == pytest.approx(0.4489174, abs=1e-7)
  assert seele.three_pl_inverse(0.2, phi) == 0.0    # a* <= b: no hint needed
  assert seele.three_pl_inverse(0.1, phi) == 0.0
  assert seele.three_pl_inverse(1.0, phi) == 1.0    # unreachable
  # Clipped: midpoint at p = -0.5 -> the formula gives -0.5, clipped to 0; and 1.5 -> 1.
  assert seele.three_pl_inverse(0.5, ThreePL(10.0, 0.5, 0.0)) == 0.0
  assert seele.three_pl_inverse(0.5, ThreePL(10.0, -1.5, 0.0)) == 1.0
  with pytest.raises(ValueError, match="k > 0"):
    seele.three_pl_inverse(0.5, ThreePL(0.0, -0.5, 0.0))


@pytest.mark.parametrize("phi", [ThreePL(10.0, -0.5, 0.1), ThreePL(4.0, -0.3, 0.0),
                                 ThreePL(25.0, -0.8, 0.3)])
def test_inverse_is_the_inverse(phi):
  for target in np.linspace(phi.b + 0.02, 0.97, 9):
    p = seele.three_pl_inverse(float(target), phi)
    if 0.0 < p < 1.0:
      assert float(seele.three_pl(p, phi)) == pytest.approx(target, abs=1e-10)


@pytest.mark.parametrize("phi", [ThreePL(10.0, -0.5, 0.1), ThreePL(4.0, -0.3, 0.0),
                                 ThreePL(25.0, -0.8, 0.3)])
def test_fit_recovers_planted_parameters_noiseless(phi):
  p = np.linspace(0.0, 1.0, 9)
  fit = seele.fit_three_pl(p, seele.three_pl(p, phi))
  assert not fit.degenerate and fit.sse < 1e-12
  np.testing.assert_allclose(fit.phi, phi, rtol=1e-3, atol=1e-4)


def test_fit_noisy_points_is_close_and_not_worse_than_scipy():
  phi = ThreePL(10.0, -0.5, 0.1)
  rng = np.random.default_rng(0)
  p = np.linspace(0.0, 1.0, 21)
  a = seele.three_pl(p, phi) + rng.normal(0.0, 0.02, p.shape)
  fit = seele.fit_three_pl(p, a)
  assert abs(fit.phi.k - 10.0) < 1.5 and abs(fit.phi.mu + 0.5) < 0.03
  assert abs(fit.phi.b - 0.1) < 0.03
  optimize = pytest.importorskip("scipy.optimize")
  res = optimize.least_squares(
      lambda t: t[2] + (1 - t[2]) / (1 + np.exp(-t[0] * (p + t[1]))) - a, x0=[5.0, -0.4, 0.0],
      bounds=([0.1, -2.0, 0.0], [200.0, 1.0, 0.999]), method="trf")
  assert fit.sse <= float(res.fun @ res.fun) + 1e-9


def test_batched_fits_equal_one_by_one():
  rng = np.random.default_rng(1)
  pairs = [(list(rng.uniform(0, 1, k)), list(rng.integers(0, 5, k) / 4)) for k in (1, 2, 3, 4)]
  pairs += [([0.3, 0.3], [0.0, 1.0]), ([0.0, 1.0, 0.5], [0.5, 0.5, 0.5])]  # degenerate ones
  batched = seele.next_hint_rates(pairs, target=0.5)
  assert batched == [seele.next_hint_rate(r, a, target=0.5) for r, a in pairs]
  assert batched[-1] == (0.0, True)


def test_pool_pairs_means_and_margins():
  ps, acc = seele.pool_pairs([0.5, 0.5, 0.8], [0.25, 0.75, 1.0])
  np.testing.assert_allclose(ps, [0.0, 0.5, 0.8, 1.0])
  np.testing.assert_allclose(acc, [0.0, 0.5, 1.0, 1.0])
  # p = 0 and p = 1 evaluated: their measured accuracies, no margin points.
  ps, acc = seele.pool_pairs([1.0, 0.0, 0.4], [0.5, 0.25, 0.0])
  np.testing.assert_allclose(ps, [0.0, 0.4, 1.0])
  np.testing.assert_allclose(acc, [0.25, 0.0, 0.5])


def test_degenerate_fits_and_fallback():
  assert seele.fit_three_pl([0.3, 0.3], [0.0, 1.0]).degenerate  # one distinct rate
  # Flat data at both ends evaluated (accuracy 0.5 everywhere): flat fit -> interpolation;
  # the lowest rate already reaches a* = 0.5 -> 0.
  assert seele.next_hint_rate([0.0, 1.0, 0.5], [0.5, 0.5, 0.5]) == (0.0, True)
  # Interpolation by hand: a = 0.3 at 0.4, 0.9 at 1 -> 0.4 + 0.6 * (0.2 / 0.6) = 0.6
  assert seele.interpolate_rate([0.0, 0.4, 1.0], [0.0, 0.3, 0.9], 0.5) == pytest.approx(0.6)
  # Non-monotone pairs are monotonised (running max): [0, .6, .6, 1] -> 0.2 * 0.5 / 0.6
  assert seele.interpolate_rate([0.0, 0.2, 0.5, 1.0], [0.0, 0.6, 0.3, 1.0], 0.5) == (
      pytest.approx(0.2 * 0.5 / 0.6))
  assert seele.interpolate_rate([0.0, 1.0], [0.0, 0.4], 0.5) == 1.0


def test_next_rate_direction_and_lengths():
  # One round at p = 0.8 plus the margins: 100% -> less hint, 0% -> more, 50% -> stays.
  up, _ = seele.next_hint_rate([0.8], [0.0])
  down, _ = seele.next_hint_rate([0.8], [1.0])
  same, fell_back = seele.next_hint_rate([0.8], [0.5])
  assert down < 0.8 < up and same == pytest.approx(0.8, abs=1e-6) and not fell_back
  assert seele.cold_start_rate(5) == 0.8 and seele.cold_start_rate(1) == 0.0
  assert seele.cold_start_rate(0) == 0.0
  assert seele.hint_length(0.5, 5) == 3 and seele.hint_length(0.49, 5) == 2  # half up
  assert seele.hint_length(1.2, 5) == 5 and seele.hint_length(-0.1, 5) == 0


def test_hint_text_in_tokens_and_chars():
  tok = models.CharTokenizer()
  units = seele._solution_units(tok, "4+2+2", "tokens")
  assert seele._hint(tok, units, 3, "tokens", cap=9) == ("4+2", 3)
  assert seele._hint(tok, units, 3, "tokens", cap=2) == ("4+", 2)
  assert seele._hint(tok, units, 0, "tokens", cap=9) == ("", 0)
  assert seele._hint(tok, "4+2+2", 4, "chars", cap=9) == ("4+2+", 4)
  assert seele._hint(tok, "4+2+2", 4, "chars", cap=3) == ("4+2", 3)


# ---- the rollout method -------------------------------------------------------------------


def _tiny():
  tok = models.CharTokenizer()
  config = dataclasses.replace(models.get_preset("tiny-llama"), vocab_size=tok.vocab_size)
  return tok, config, models.init_params(config, jax.random.key(0))


def _take(src, pos, n):
  return src[pos:pos + n], pos + n


def _parity_reward(text, example):
  """A deterministic reward with about half the texts correct."""
  del example
  return float(sum(map(ord, text)) % 2 == 0)


def test_seele_rollouts_hints_rounds_and_state():
  tok, config, params = _tiny()
  # Shapes as tests/training/test_rollout_methods.py (2 prompts x 2 samples, 4 new tokens),
  # so the tiny sampler's compilation is shared; answers of 1-3 digits are the solutions.
  examples = ArithmeticTask(digits=2).examples(seed=0, start=0, count=2)
  m, n, b, width = 2, 2, 2, 4
  opts = dict(num_prompts=b, group_size=m * n, max_new_tokens=width, next_examples=_take)
  ctx = rollout.RolloutContext(config, params, tok, _parity_reward, 0, opts)
  method = rollout.get_rollout_method("seele")
  state = method.initial_state(examples)
  assert state == {"hint_rate": {}}
  ro, state = method.fn(ctx, examples, 0, jax.random.key(1), state, rounds=m)
  bt = ro.batch
  forced = np.asarray(bt.completion_mask) & ~np.asarray(bt.loss_mask)
  tokens = np.asarray(bt.completion_tokens)
  assert tokens.shape == (b * m * n, width) and ro.position == b
  np.testing.assert_array_equal(np.asarray(bt.group_ids), np.repeat(np.arange(b), m * n))
  rewards = np.asarray(ro.task_rewards).reshape(b, m, n)
  for j, ex in enumerate(examples):
    y = tok.encode(ex.completion)
    rows = slice(j * m * n, (j + 1) * m * n)
    lengths = forced[rows].sum(1).reshape(m, n)
    assert (lengths == lengths[:, :1]).all()   # one hint per round
    # Round 1: cold start (|y| - 1) / |y| -> l = |y| - 1 tokens of y, forced, out of loss_mask.
    assert lengths[0, 0] == len(y) - 1
    np.testing.assert_array_equal(tokens[rows][:n, :len(y) - 1], np.tile(y[:-1], (n, 1)))
    assert all(t.startswith(ex.completion[:-1]) for t in ro.completions[rows][:n])
    # Round 2: the fit on round 1's pair (and the margins).
    acc1 = (rewards[j, 0] >= 1).mean()
    p2, _ = seele.next_hint_rate([(len(y) - 1) / len(y)], [acc1])
    assert lengths[1, 0] == seele.hint_length(p2, len(y))
    # Stored: the fit on both rounds' realised rates and accuracies.
    stored, _ = seele.next_hint_rate([lengths[0, 0] / len(y), lengths[1, 0] / len(y)],
                                     [acc1, (rewards[j, 1] >= 1).mean()])
    assert state["hint_rate"][ex.prompt] == pytest.approx(stored)
    # Prompts: the example's own, one per row.
    assert tok.decode(np.asarray(bt.prompt_tokens)[j * m * n]).endswith(ex.prompt)
  acc = (rewards >= 1).mean(axis=2)  # [b, m]
  assert ro.metrics["accuracy_round1"] == pytest.approx(acc[:, 0].mean())
  assert ro.metrics["accuracy_round2"] == pytest.approx(acc[:, 1].mean())
  assert ro.metrics["accuracy_gap"] == pytest.approx(np.abs(acc - 0.5).mean())
  assert ro.metrics["hint_tokens"] == pytest.approx(forced.sum() / forced.shape[0])
  assert json.loads(json.dumps(state)) == state
  # The next step starts each problem from its stored rate.
  ro2, _ = method.fn(ctx, examples, 0, jax.random.key(2), state, rounds=m)
  forced2 = np.asarray(ro2.batch.completion_mask) & ~np.asarray(ro2.batch.loss_mask)
  for j, ex in enumerate(examples):
    y_len = len(tok.encode(ex.completion))
    assert forced2[j * m * n].sum() == seele.hint_length(state["hint_rate"][ex.prompt], y_len)


def test_seele_rollouts_cut_hint_and_errors():
  tok, config, params = _tiny()
  examples = CountdownTask(num_numbers=3, max_number=10, max_target=100,
                           operators="+-*").examples(seed=0, start=0, count=2)
  opts = dict(num_prompts=2, group_size=2, max_new_tokens=4, next_examples=_take)
  ctx = rollout.RolloutContext(config, params, tok, _parity_reward, 0, opts)
  fn = rollout.get_rollout_method("seele").fn
  ro, _ = fn(ctx, examples, 0, jax.random.key(1), {}, rounds=1)
  forced = np.asarray(ro.batch.completion_mask) & ~np.asarray(ro.batch.loss_mask)
  # Cold start |y| - 1 >= 4 tokens, cut to max_new_tokens - 1 = 3: one token is generated.
  assert all(len(ex.completion) - 1 >= 4 for ex in examples)
  np.testing.assert_array_equal(forced.sum(1), [3, 3, 3, 3])
  with pytest.raises(ValueError, match="rl.group_size=2 must be rl.rollout_method_kwargs.rounds=3"):
    fn(ctx, examples, 0, jax.random.key(1), {}, rounds=3)
  with pytest.raises(ValueError, match="length_unit"):
    fn(ctx, examples, 0, jax.random.key(1), {}, length_unit="steps")
  bad = [dataclasses.replace(examples[0], completion="")]
  with pytest.raises(ValueError, match="Example.completion"):
    seele.check_seele_source(_ListSource(bad))


class _ListSource:
  def __init__(self, examples):
    self._examples = examples

  def examples(self, seed, start, count):
    del seed
    return self._examples[start:start + count]

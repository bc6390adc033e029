"""The 'prof' rollout method on scripted rollouts (collect_rollouts replaced): rule-based
step scores -> r_pro -> the kept rows and the logged fractions, by hand."""

import jax
import numpy as np
import pytest

from jaxrl_llm import data, training
from jaxrl_llm.training import prof, rollout

EX = data.Example("[3,5,2]->16:", "16", metadata={"numbers": (3, 5, 2), "target": 16})
# steps (scores), H, task reward, r_pro with lam 0.5, h_lambda 8:
TEXTS = ["3+5=8\n8*2=16",              # (1, 1)     H 2  correct    1
         "5*2=10\n10+3=13\n13+3=16",   # (1, 1, 0)  H 3  incorrect  -2/3
         "16",                         # ()         H 0  correct    (0 - 0.5) * 1 = -0.5
         "3+5=9\n9"]                   # (0,)       H 1  incorrect  -(0 - 0.5) = 0.5
TASK = np.array([1.0, 0.0, 1.0, 0.0], np.float32)


def _fake_collect(seen):
  def collect(config, params, tokenizer, source, position, reward_fn, key, **opts):
    seen.update(opts)
    b, n = 4, 3
    batch = training.make_rollout_batch(
        np.ones((b, 2), np.int32), np.ones((b, 2), np.int32),
        np.arange(b * n, dtype=np.int32).reshape(b, n), np.ones((b, n), bool),
        np.zeros((b, n), np.float32), TASK, group_size=opts["group_size"])
    metrics = {"accuracy": 0.5, "reward_mean": 0.5, "generated_tokens": 12.0,
               "prompts_sampled": 1.0}
    return rollout.Rollouts(batch, list(TEXTS), TASK, metrics, position, [EX])
  return collect


@pytest.mark.parametrize("variant", ["both", "pos"])
def test_prof_rollouts_by_hand(monkeypatch, variant):
  seen = {}
  monkeypatch.setattr(rollout, "collect_rollouts", _fake_collect(seen))
  ctx = rollout.RolloutContext(None, None, None, None, 0, {"group_size": 2, "num_prompts": 1,
                                                            "max_new_tokens": 3})
  ro, state = prof.prof_rollouts(ctx, None, data.DataPosition(0, 4), jax.random.key(0), {},
                                 num_samples=4, variant=variant, lam=0.5, h_lambda=8)
  assert seen["group_size"] == 4 and state == {}   # sampled n = 4 per prompt
  # k+ = k- = 1: G+ keeps row 0 (r_pro 1 > -0.5); BOTH keeps row 3 (0.5 > -2/3) of G-.
  kept_tokens = np.asarray(ro.batch.completion_tokens)
  assert kept_tokens.shape == (2, 3)
  np.testing.assert_array_equal(kept_tokens[0], [0, 1, 2])          # row 0
  neg_row = 3 if variant == "both" else int(kept_tokens[1, 0]) // 3
  assert neg_row in (1, 3)
  np.testing.assert_array_equal(kept_tokens[1], np.arange(3) + 3 * neg_row)
  assert ro.completions == [TEXTS[0], TEXTS[neg_row]]
  np.testing.assert_array_equal(ro.task_rewards, [1.0, 0.0])
  np.testing.assert_array_equal(np.asarray(ro.batch.group_ids), [0, 0])
  m = ro.metrics
  assert m["prof_kept_frac"] == 0.5 and m["prof_kept_correct_frac"] == 0.5
  assert m["prof_pos_kept_frac"] == 0.5 and m["prof_neg_kept_frac"] == 0.5
  assert m["prof_steps_mean"] == 1.5                                  # (2 + 3 + 0 + 1) / 4
  assert m["prof_step_score_mean"] == pytest.approx((1 + 2 / 3 + 0 + 0) / 4)
  assert m["accuracy"] == 0.5 and m["prof_sampled_accuracy"] == 0.5
  if variant == "both":
    assert m["prof_r_pro_kept_mean"] == pytest.approx((1 + 0.5) / 2)
    assert m["prof_r_pro_dropped_mean"] == pytest.approx((-2 / 3 - 0.5) / 2)

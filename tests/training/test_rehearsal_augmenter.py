"""The 'rehearsal' batch augmenter on a hand-built batch: rows, widths, groups, extras."""

import os
import types

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses
from jaxrl_llm.data import rehearsal as rehearsal_data
from jaxrl_llm.training import make_rollout_batch, rollout
from jaxrl_llm.training.rehearsal import rehearsal_augmenter

PAD = 0


def _file(tmp_path):
  # 3 stored rows, prompt width 4 (wider than the RL batch's 2), completion width 2 (< 3).
  rs = rehearsal_data.RehearsalSet(
      prompt_tokens=np.array([[0, 11, 12, 13], [21, 22, 23, 24], [0, 0, 31, 32]], np.int32),
      prompt_mask=np.array([[0, 1, 1, 1], [1, 1, 1, 1], [0, 0, 1, 1]], bool),
      completion_tokens=np.array([[5, 6], [7, 0], [8, 9]], np.int32),
      completion_mask=np.array([[1, 1], [1, 0], [1, 1]], bool),
      base_logprobs=np.array([[-0.1, -0.2], [-0.3, 0.0], [-0.4, -0.5]], np.float32),
      prompts=np.array(["a", "b", "c"]))
  return rehearsal_data.save_rehearsal(os.path.join(tmp_path, "r.npz"), rs)


def _rl_batch():
  # 2 groups of G = 2 rows, prompt width 2, completion width 3.
  b = make_rollout_batch(jnp.array([[1, 2]] * 4, jnp.int32), jnp.ones((4, 2), jnp.int32),
                         jnp.full((4, 3), 3, jnp.int32), jnp.ones((4, 3), bool),
                         jnp.full((4, 3), -1.0), jnp.array([1.0, 0.0, 0.0, 1.0]), group_size=2)
  return b, types.SimpleNamespace(examples=["ex0", "ex1"])


def test_rehearsal_rows_appended(tmp_path):
  path = _file(tmp_path)
  batch, ro = _rl_batch()
  tok = types.SimpleNamespace(pad_id=PAD)
  out, m = rehearsal_augmenter(batch, ro, tokenizer=tok, key=None, step=1, path=path,
                               rehearsal_rows=2)
  # step 1, 2 rows: file rows (2, 3) % 3 = 2, 0.
  assert out.num_rows == 6 and m["rehearsal_start"] == 2.0 and m["rehearsal_file_rows"] == 3.0
  np.testing.assert_array_equal(out.prompt_tokens, [[0, 0, 1, 2]] * 4
                                + [[0, 0, 31, 32], [0, 11, 12, 13]])
  np.testing.assert_array_equal(out.prompt_mask[:4], [[0, 0, 1, 1]] * 4)
  np.testing.assert_array_equal(out.completion_tokens[4:], [[8, 9, PAD], [5, 6, PAD]])
  np.testing.assert_array_equal(out.loss_mask[4:], [[1, 1, 0], [1, 1, 0]])
  np.testing.assert_array_equal(out.group_ids, [0, 0, 1, 1, 2, 2])
  np.testing.assert_array_equal(out.is_off_policy, [0, 0, 0, 0, 1, 1])
  np.testing.assert_array_equal(out.extras["is_rehearsal"], [0, 0, 0, 0, 1, 1])
  np.testing.assert_allclose(out.extras["base_logprobs"][4:], [[-0.4, -0.5, 0], [-0.1, -0.2, 0]])
  np.testing.assert_allclose(out.extras["base_logprobs"][:4], 0.0)
  np.testing.assert_allclose(out.rewards, [1, 0, 0, 1, 1, 1])
  assert m["rehearsal_truncated_frac"] == 0.0
  # Equal rewards in the rehearsal group: GRPO advantages are 0 there.
  adv = losses.grpo_advantages(out.rewards, group_ids=out.group_ids)
  np.testing.assert_allclose(np.asarray(adv)[4:], 0.0, atol=1e-6)


def test_rehearsal_augmenter_checks(tmp_path):
  path = _file(tmp_path)
  batch, ro = _rl_batch()
  tok = types.SimpleNamespace(pad_id=PAD)
  with pytest.raises(ValueError, match="multiple of the group size 2"):
    rehearsal_augmenter(batch, ro, tokenizer=tok, key=None, step=0, path=path, rehearsal_rows=3)
  with pytest.raises(ValueError, match="path"):
    rehearsal_augmenter(batch, ro, tokenizer=tok, key=None, step=0, rehearsal_rows=2)
  assert rollout.get_batch_augmenter("rehearsal").provides == ("is_rehearsal", "base_logprobs")


def test_bootstrap_ci_hand():
  import sys
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
  from experiments.dph_rl_claim import bootstrap_ci
  mean, lo, hi = bootstrap_ci([0.1, 0.2, 0.6])
  assert abs(mean - 0.3) < 1e-12 and 0.1 <= lo <= mean <= hi <= 0.6
  assert bootstrap_ci([0.5, 0.5, 0.5]) == (0.5, 0.5, 0.5)

"""PEAR through experiments/sft.run: its weight metrics are logged; with the block
switched off SFT is bit-identical to a config without the block."""

import json

import jax
import numpy as np
import pytest

import _helpers  # tests/experiments is on sys.path (pytest rootdir-less import)
from configs import pear_arithmetic  # noqa: E402
from experiments import sft  # noqa: E402
from jaxrl_llm import models


def _lines(workdir):
  with open(workdir / "metrics.jsonl") as f:
    return [json.loads(l) for l in f]


def test_pear_sft_logs_weight_metrics(tmp_path):
  c = _helpers.tiny_sft_config(tmp_path / "w", steps=20, checkpoint_every=10, export_hf=False,
                               batch_size=4)
  c.pear = pear_arithmetic.pear_block(True)
  sft.run(c)
  train = [l for l in _lines(tmp_path / "w") if "train/loss" in l]
  assert len(train) == 20
  for key in ("train/loss", "train/nll", "train/pear_weight_mean", "train/pear_weight_max",
              "train/pear_delta_clip_frac", "train/pear_log_weight_clip_frac"):
    values = [l[key] for l in train]
    assert np.all(np.isfinite(values)), key
  # Step 1: the policy is pi_beta itself, so every delta is 0 and G_t = gamma^(T-t) <= 1.
  first = train[0]
  assert first["train/pear_delta_clip_frac"] == 0.0
  assert 0.99 < first["train/pear_weight_mean"] <= 1.0
  assert first["train/pear_weight_max"] == pytest.approx(1.0)
  # Later the policy moves away from pi_beta: some log-ratios leave [-0.08, 0.3].
  assert max(l["train/pear_delta_clip_frac"] for l in train) > 0.0


def test_pear_off_is_bit_identical_to_plain_sft(tmp_path):
  plain = _helpers.tiny_sft_config(tmp_path / "plain", steps=3)
  off = _helpers.tiny_sft_config(tmp_path / "off", steps=3)
  off.pear = pear_arithmetic.pear_block(False)
  off.pear.mode = "block"  # ignored when disabled
  sft.run(plain)
  sft.run(off)
  strip = lambda ls: [{k: v for k, v in l.items() if not k.startswith("perf/")} for l in ls]
  assert strip(_lines(tmp_path / "plain")) == strip(_lines(tmp_path / "off"))
  assert not any("train/pear_weight_mean" in l for l in _lines(tmp_path / "off"))
  _, p1 = models.load_hf(str(tmp_path / "plain" / "hf"))
  _, p2 = models.load_hf(str(tmp_path / "off" / "hf"))
  for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
    np.testing.assert_array_equal(a, b)


def test_bad_pear_option_fails_at_start(tmp_path):
  c = _helpers.tiny_sft_config(tmp_path / "bad")
  c.pear = pear_arithmetic.pear_block(True)
  c.pear.gamma = 1.5
  with pytest.raises(ValueError, match="gamma"):
    sft.run(c)
  c.pear.gamma = 0.999
  c.pear.behavior = "sampler"
  with pytest.raises(ValueError, match="pear.behavior"):
    sft.run(c)


def test_behavior_logprobs_from_the_data_fill_the_completion_columns():
  from jaxrl_llm import data
  from jaxrl_llm.training import sft as sft_lib
  tok = models.CharTokenizer()
  ex = [data.Example("1+2=", "3", "3", metadata={"behavior_logprobs": [-0.5, -0.25]}),
        data.Example("10+2=", "12", "12", metadata={"behavior_logprobs": [-1.0, -2.0, -3.0]})]
  batch = sft_lib.sft_batch(tok, ex, 10)
  lp = sft_lib.behavior_logprobs_from_examples(ex, batch)
  # completion + EOS are the last tokens: their log-probs are the last columns of [B, T-1]
  np.testing.assert_array_equal(lp[0], [0] * 7 + [-0.5, -0.25])
  np.testing.assert_array_equal(lp[1], [0] * 6 + [-1.0, -2.0, -3.0])
  np.testing.assert_array_equal(lp != 0, batch["loss_mask"][:, 1:] > 0)
  with pytest.raises(ValueError, match="2 values for 3 completion tokens"):
    sft_lib.behavior_logprobs_from_examples([ex[0], data.Example("10+2=", "12", "12", metadata={
        "behavior_logprobs": [-1.0, -2.0]})], batch)
  with pytest.raises(ValueError, match="behavior_logprobs"):
    sft_lib.behavior_logprobs_from_examples([data.Example("1+2=", "3", "3")], batch)

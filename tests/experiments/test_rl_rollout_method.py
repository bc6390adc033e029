"""experiments/rl.py with rl.rollout_method: unknown names and options fail at start naming
the field, and the method's state is written into each checkpoint's metadata."""

import json
import os

import pytest

import _helpers
from experiments import rl


def test_unknown_rollout_method_and_option_are_named(tmp_path):
  with pytest.raises(ValueError, match="rl.rollout_method: unknown rollout method 'nope'"):
    rl.validate(_helpers.tiny_rl_config(tmp_path, **{"rl.rollout_method": "nope"}))
  c = _helpers.tiny_rl_config(tmp_path, **{"rl.rollout_method": "standard"})
  c.rl.rollout_method_kwargs = {"hint_rate": 0.5}
  with pytest.raises(ValueError, match=r"\['hint_rate'\] are not options of rl.rollout_method"):
    rl.validate(c)


def test_method_state_is_saved_in_checkpoint_metadata(tmp_path):
  c = _helpers.tiny_rl_config(tmp_path, steps=1)
  rl.run(c)
  ckpt = os.path.join(str(tmp_path), "checkpoints")
  metas = [os.path.join(root, f) for root, _, files in os.walk(ckpt) for f in files
           if f == "metadata" or f.endswith(".json")]
  found = []
  for path in metas:
    try:
      found.append(json.load(open(path)))
    except (ValueError, UnicodeDecodeError):
      continue
  assert any("rollout_state" in json.dumps(m) for m in found), metas

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


def test_prompt_transform_options_are_checked_and_reach_the_rollouts(tmp_path, monkeypatch):
  c = _helpers.tiny_rl_config(tmp_path, **{"rl.prompt_transform": "rlcr_tabc"})
  c.rl.prompt_transform_kwargs = {"instructions": "x"}
  with pytest.raises(ValueError, match=r"\['instructions'\] are not options of "
                                       r"rl.prompt_transform 'rlcr_tabc'"):
    rl.validate(c)
  c.rl.prompt_transform_kwargs = {"instruction": "Say it."}
  rl.validate(c)
  seen = []
  real = rl.rollout.collect_rollouts

  def spy(*args, **kwargs):
    seen.append(kwargs.get("prompt_transform_kwargs"))
    return real(*args, **kwargs)

  monkeypatch.setattr(rl.rollout, "collect_rollouts", spy)
  c.steps = 1
  rl.run(c)
  assert seen == [{"instruction": "Say it."}]

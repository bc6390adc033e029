"""training.setup.open_run on a used workdir: refuse (saying how to resume or
overwrite), overwrite = start fresh, resume = continue; checkpoint.committed_steps."""

import os

import jax.numpy as jnp
import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxrl_llm.training import setup
from jaxrl_llm.training.checkpoint import committed_steps


def _config(workdir, **overrides):
  c = ConfigDict({"workdir": str(workdir), "seed": 3, "resume": False, "overwrite": False,
                  "tensorboard": False, "checkpoint_every": 1, "keep_checkpoints": 5,
                  "async_checkpointing": False})
  c.update(overrides)
  return c


def _state(value):
  return {"w": jnp.full((3,), value, jnp.float32)}


def _first_run(workdir, steps=(1, 2)):
  start, state, position, writer, ckpt = setup.open_run(_config(workdir), _state(0.0))
  assert start == 0 and tuple(position) == (3, 0)
  for s in steps:
    writer.write(s, {"train/loss": float(s)})
    ckpt.save(s, _state(float(s)), {"data_position": [3, 10 * s], "step": s, "seed": 3})
  ckpt.close()
  writer.close()


def _metric_steps(workdir):
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  import json
  with open(path) as f:
    return [json.loads(l)["step"] for l in f if l.strip()]


def test_committed_steps_lists_step_directories_only(tmp_path):
  assert committed_steps(str(tmp_path / "missing")) == []
  for name in ("10", "2", "3.orbax-checkpoint-tmp-123", "notes"):
    (tmp_path / name).mkdir()
  (tmp_path / "7").write_text("a file, not a checkpoint")
  assert committed_steps(str(tmp_path)) == [2, 10]


def test_used_workdir_is_refused_with_a_message_that_says_how_to_resume(tmp_path):
  _first_run(tmp_path)
  with pytest.raises(ValueError, match=r"steps \[1, 2\].*--config.resume=True.*"
                     r"--config.overwrite=True"):
    setup.open_run(_config(tmp_path), _state(0.0))
  assert committed_steps(str(tmp_path / "checkpoints")) == [1, 2]  # nothing was deleted


def test_metrics_without_checkpoint_also_count_as_a_used_workdir(tmp_path):
  (tmp_path / "metrics.jsonl").write_text('{"step": 1, "train/loss": 1.0}\n')
  with pytest.raises(ValueError, match="metrics.jsonl but no committed checkpoint"):
    setup.open_run(_config(tmp_path), _state(0.0))


def test_overwrite_starts_fresh_and_the_same_steps_can_be_saved_again(tmp_path):
  _first_run(tmp_path)
  (tmp_path / "tb").mkdir()
  start, state, position, writer, ckpt = setup.open_run(_config(tmp_path, overwrite=True),
                                                        _state(-1.0))
  assert start == 0 and tuple(position) == (3, 0)
  np.testing.assert_array_equal(state["w"], [-1.0, -1.0, -1.0])
  assert committed_steps(str(tmp_path / "checkpoints")) == []
  assert _metric_steps(tmp_path) == [] and not (tmp_path / "tb").exists()
  # Step 1 existed in the old run: saving it again must not raise StepAlreadyExistsError.
  writer.write(1, {"train/loss": 5.0})
  ckpt.save(1, _state(5.0), {"data_position": [3, 7], "step": 1, "seed": 3})
  ckpt.close()
  writer.close()
  assert committed_steps(str(tmp_path / "checkpoints")) == [1]
  assert _metric_steps(tmp_path) == [1]


def test_resume_continues_the_used_workdir(tmp_path):
  _first_run(tmp_path, steps=(1, 2, 3))
  # resume wins over overwrite: nothing is deleted.
  start, state, position, writer, ckpt = setup.open_run(
      _config(tmp_path, resume=True, overwrite=True), _state(0.0))
  ckpt.close()
  writer.close()
  assert start == 3 and tuple(position) == (3, 30)
  np.testing.assert_array_equal(state["w"], [3.0, 3.0, 3.0])
  assert _metric_steps(tmp_path) == [1, 2, 3]


def test_resume_without_a_committed_checkpoint_is_a_named_error(tmp_path):
  (tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-99").mkdir(parents=True)
  with pytest.raises(ValueError, match="resume=True but .* holds no committed checkpoint"):
    setup.open_run(_config(tmp_path, resume=True), _state(0.0))

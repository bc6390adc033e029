"""MetricWriter backends: TensorBoard event files read back by hand (TFRecord framing with
CRC-32C, Event protos), the missing-writer warning, and W&B through a stand-in module."""

import glob
import json
import os
import struct
import sys
import types

import numpy as np
import pytest
from ml_collections import ConfigDict

from jaxrl_llm.training import metrics as metrics_lib
from jaxrl_llm.training import setup


def _crc32c(data: bytes) -> int:
  """CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF."""
  crc = 0xFFFFFFFF
  for byte in data:
    crc ^= byte
    for _ in range(8):
      crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
  return crc ^ 0xFFFFFFFF


def _masked(crc: int) -> int:
  """TFRecord's masked CRC: rotate right by 15, add 0xa282ead8 (mod 2^32)."""
  return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _read_events(path):
  """Event protos of one TFRecord file: [len u64][crc(len) u32][data][crc(data) u32]..."""
  from tensorboardX.proto import event_pb2
  events = []
  with open(path, "rb") as f:
    raw = f.read()
  pos = 0
  while pos < len(raw):
    header = raw[pos:pos + 8]
    (length,) = struct.unpack("<Q", header)
    (length_crc,) = struct.unpack("<I", raw[pos + 8:pos + 12])
    assert length_crc == _masked(_crc32c(header))
    data = raw[pos + 12:pos + 12 + length]
    (data_crc,) = struct.unpack("<I", raw[pos + 12 + length:pos + 16 + length])
    assert data_crc == _masked(_crc32c(data))
    events.append(event_pb2.Event.FromString(data))
    pos += 16 + length
  return events


def _scalars(events):
  return [(e.step, v.tag, v.simple_value) for e in events if e.HasField("summary")
          for v in e.summary.value]


def test_crc32c_transcription_matches_the_standard_check_value():
  assert _crc32c(b"123456789") == 0xE3069283  # RFC 3720 / iSCSI check value


def test_tensorboard_event_file_round_trip(tmp_path):
  w = metrics_lib.MetricWriter(str(tmp_path), tensorboard=True)
  assert w.backends == ("jsonl", "tensorboard")
  for step in (1, 2, 3):
    w.write(step, {"train/loss": 1.0 / step, "train/reward_mean": 0.25 * step})
  w.close()
  files = glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
  assert len(files) == 1
  events = _read_events(files[0])
  assert events[0].file_version == "brain.Event:2"
  got = _scalars(events)
  expected = [(s, tag, np.float32(v)) for s in (1, 2, 3)
              for tag, v in (("train/loss", 1.0 / s), ("train/reward_mean", 0.25 * s))]
  assert [(s, t) for s, t, _ in got] == [(s, t) for s, t, _ in expected]
  np.testing.assert_array_equal([v for *_, v in got], [v for *_, v in expected])
  # JSONL is still written beside it.
  assert [r["step"] for r in metrics_lib.read_metrics(w.path)] == [1, 2, 3]


def test_resume_purges_the_rewritten_tensorboard_steps(tmp_path):
  w = metrics_lib.MetricWriter(str(tmp_path), tensorboard=True)
  for step in (1, 2, 3, 4):
    w.write(step, {"train/loss": float(step)})
  w.close()
  w = metrics_lib.MetricWriter(str(tmp_path), tensorboard=True)
  w.truncate_after(2)  # resume from the step-2 checkpoint
  w.write(3, {"train/loss": 30.0})
  w.close()
  files = sorted(glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*")),
                 key=lambda f: _read_events(f)[0].wall_time)
  resumed = _read_events(files[-1])
  from tensorboardX.proto import event_pb2
  purge = [e for e in resumed if e.HasField("session_log")]
  # TensorBoard hides events with step >= a START session log's step (the purge step).
  assert purge and purge[0].session_log.status == event_pb2.SessionLog.START
  assert purge[0].step == 3
  assert _scalars(resumed) == [(3, "train/loss", 30.0)]
  assert [r["step"] for r in metrics_lib.read_metrics(w.path)] == [1, 2, 3]


def test_missing_tensorboard_writer_warns_at_start(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboardX", None)  # import raises ImportError
  with pytest.warns(metrics_lib.MetricWriterWarning, match=r"tensorboard=True.*tensorboardX"):
    w = metrics_lib.MetricWriter(str(tmp_path), tensorboard=True)
  assert w.backends == ("jsonl",)
  w.write(1, {"a": 1.0})
  w.close()
  assert metrics_lib.read_metrics(w.path) == [{"step": 1, "a": 1.0}]
  assert not os.path.exists(tmp_path / "tb")


def test_open_run_says_when_tensorboard_is_missing(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorboardX", None)
  c = ConfigDict({"workdir": str(tmp_path), "seed": 0, "resume": False, "overwrite": False,
                  "tensorboard": True, "checkpoint_every": 1, "keep_checkpoints": 1,
                  "async_checkpointing": False})
  with pytest.warns(metrics_lib.MetricWriterWarning, match="metrics.jsonl only"):
    _, _, _, writer, ckpt = setup.open_run(c, {"w": np.zeros(2, np.float32)})
  ckpt.close()
  writer.close()


def test_wandb_requested_but_missing_is_a_named_error(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "wandb", None)
  with pytest.raises(metrics_lib.MetricBackendError, match="pip install wandb"):
    metrics_lib.MetricWriter(str(tmp_path), tensorboard=False, wandb=True)


def test_bad_wandb_mode_is_named(tmp_path):
  with pytest.raises(ValueError, match="wandb_mode"):
    metrics_lib.MetricWriter(str(tmp_path), tensorboard=False, wandb_mode="sometimes")


def _fake_wandb(calls):
  """A stand-in for the wandb package recording init / log / finish (no network, no install)."""

  class Run:
    def log(self, data, step):
      calls.append(("log", dict(data), step))

    def finish(self):
      calls.append(("finish",))

  def init(**kwargs):
    calls.append(("init", kwargs))
    return Run()

  ids = iter(["run-a", "run-b"])
  return types.SimpleNamespace(init=init, util=types.SimpleNamespace(generate_id=lambda: next(ids)))


def test_wandb_run_gets_the_metrics_and_a_resume_keeps_its_id(tmp_path, monkeypatch):
  calls = []
  monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(calls))
  config = ConfigDict({"seed": 3, "optim": {"learning_rate": 0.1}})
  w = metrics_lib.MetricWriter(str(tmp_path), tensorboard=False, wandb=True, wandb_project="p",
                               wandb_mode="offline", run_config=config)
  assert w.backends == ("jsonl", "wandb")
  w.write(7, {"train/loss": np.float32(0.5)})
  w.close()
  init = calls[0][1]
  assert (init["project"], init["dir"], init["mode"], init["id"], init["resume"]) == (
      "p", str(tmp_path), "offline", "run-a", "allow")
  assert init["config"] == {"seed": 3, "optim": {"learning_rate": 0.1}}
  assert calls[1:] == [("log", {"train/loss": 0.5}, 7), ("finish",)]
  # A second writer on the same workdir (a resumed run) continues the same W&B run.
  metrics_lib.MetricWriter(str(tmp_path), tensorboard=False, wandb=True).close()
  assert calls[3][1]["id"] == "run-a"
  assert json.dumps(sorted(os.listdir(tmp_path))) == json.dumps(["metrics.jsonl", "wandb_run_id"])

"""Schedule values by hand, gradient clipping, finiteness checks, metrics file handling."""

import json
import math

import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxrl_llm.training import make_optimizer, make_schedule
from jaxrl_llm.training import metrics as metrics_lib


def test_warmup_cosine_schedule_hand_values():
  lr, warm, total, end = 1e-3, 10, 110, 0.1
  s = make_schedule(lr, warmup_steps=warm, total_steps=total, end_factor=end)
  assert float(s(0)) == 0.0
  np.testing.assert_allclose(float(s(5)), lr * 5 / 10, rtol=1e-6)
  np.testing.assert_allclose(float(s(10)), lr, rtol=1e-6)
  # halfway through the cosine: end + (lr - end) * (1 + cos(pi/2)) / 2
  np.testing.assert_allclose(float(s(60)), lr * end + (lr - lr * end) * 0.5, rtol=1e-5)
  np.testing.assert_allclose(float(s(110)), lr * end, rtol=1e-5)


def test_optimizer_clips_global_norm_before_adam():
  # With clipping, Adam's first update is -lr * g_c / (|g_c| + eps) elementwise = -lr * sign(g).
  opt = make_optimizer(0.1, warmup_steps=0, total_steps=10, end_factor=1.0, max_grad_norm=1.0)
  params = {"w": jnp.zeros(2)}
  state = opt.init(params)
  updates, _ = opt.update({"w": jnp.array([30.0, -40.0])}, state, params)
  np.testing.assert_allclose(np.asarray(updates["w"]), [-0.1, 0.1], rtol=1e-5)
  clip = optax.clip_by_global_norm(1.0)
  clipped, _ = clip.update({"w": jnp.array([30.0, -40.0])}, clip.init(params))
  np.testing.assert_allclose(np.asarray(clipped["w"]), [0.6, -0.8], rtol=1e-6)
  with pytest.raises(ValueError, match="learning_rate"):
    make_optimizer(0.0)


def test_check_finite_names_step_and_metric():
  metrics_lib.check_finite({"loss": 1.0, "grad_norm": 2.0, "kl": math.nan}, 3)  # kl not checked
  with pytest.raises(metrics_lib.NonFiniteError, match=r"non-finite grad_norm=inf at step 7"):
    metrics_lib.check_finite({"loss": 1.0, "grad_norm": math.inf}, 7)
  with pytest.raises(FloatingPointError, match=r"non-finite train/loss=nan at step 2"):
    metrics_lib.check_finite({"train/loss": math.nan}, 2)


def test_metric_writer_truncates_on_resume_and_plots(tmp_path):
  w = metrics_lib.MetricWriter(str(tmp_path), tensorboard=False)
  for step in range(1, 6):
    w.write(step, {"train/reward_mean": step / 10, "perf/tokens_per_s": 1.0})
  w.write(5, {"eval/accuracy": 0.5})
  w.truncate_after(3)
  w.write(4, {"train/reward_mean": 0.9})
  records = metrics_lib.read_metrics(w.path)
  assert [r["step"] for r in records] == [1, 2, 3, 4]
  assert records[-1]["train/reward_mean"] == 0.9
  out = metrics_lib.plot_rewards(w.path, str(tmp_path / "c.png"))
  with open(out, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"

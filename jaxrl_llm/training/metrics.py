"""Re-exports ``jaxrl_llm.runs.metrics`` (the metric writer of every loop, offline included)."""

from jaxrl_llm.runs.metrics import (WANDB_ID_FILE, WANDB_MODES, MetricBackendError,
                                    MetricWriter, MetricWriterWarning, NonFiniteError,
                                    check_finite, plot_rewards, read_metrics, to_floats)

__all__ = ["WANDB_ID_FILE", "WANDB_MODES", "MetricBackendError", "MetricWriter",
           "MetricWriterWarning", "NonFiniteError", "check_finite", "plot_rewards",
           "read_metrics", "to_floats"]

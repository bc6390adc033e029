"""Optimiser: AdamW with linear warmup + cosine decay and global-norm gradient clipping."""

import optax


def make_schedule(learning_rate: float, *, warmup_steps: int = 0, total_steps: int = 1,
                  end_factor: float = 0.1) -> optax.Schedule:
  """``lr_t = lr * t / W`` for ``t < W``, then cosine from ``lr`` to ``end_factor * lr`` at ``total_steps``.

  Loshchilov & Hutter 2017, "SGDR: Stochastic Gradient Descent with Warm Restarts".
  """
  if learning_rate <= 0:
    raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
  if warmup_steps < 0 or total_steps < 1:
    raise ValueError(f"need warmup_steps >= 0 and total_steps >= 1, got {warmup_steps}, "
                     f"{total_steps}")
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0 if warmup_steps else learning_rate, peak_value=learning_rate,
      warmup_steps=warmup_steps, decay_steps=max(total_steps, warmup_steps + 1),
      end_value=end_factor * learning_rate)


def make_optimizer(learning_rate: float, *, warmup_steps: int = 0, total_steps: int = 1,
                   end_factor: float = 0.1, weight_decay: float = 0.0, b1: float = 0.9,
                   b2: float = 0.999, eps: float = 1e-8,
                   max_grad_norm: float | None = 1.0) -> optax.GradientTransformation:
  """``clip_by_global_norm(max_grad_norm)`` then AdamW (Loshchilov & Hutter 2019) on the schedule."""
  if max_grad_norm is not None and max_grad_norm <= 0:
    raise ValueError(f"max_grad_norm must be > 0 or None, got {max_grad_norm}")
  schedule = make_schedule(learning_rate, warmup_steps=warmup_steps, total_steps=total_steps,
                           end_factor=end_factor)
  parts = [] if max_grad_norm is None else [optax.clip_by_global_norm(max_grad_norm)]
  parts.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay))
  return optax.chain(*parts)

"""Divergences between the policy and a reference: per-token KL estimators,
exact KL and entropy from logits, and f-divergences by generator function.

Per-token estimators take gathered log-probs of the sampled tokens, ``[B, T]``
(or any shape; they are elementwise), and return per-token values to be masked
and aggregated by the caller (:func:`jaxrl_llm.losses.aggregate`).
"""

import types

import jax
import jax.numpy as jnp

from jaxrl_llm.losses import _checks

sg = jax.lax.stop_gradient

KL_KINDS = ("k1", "kl", "abs", "k2", "mse", "k3", "low_var_kl")
_ALIASES = types.MappingProxyType({"kl": "k1", "mse": "k2", "low_var_kl": "k3"})


def _k1(lp, ref):
  return lp - ref


def _abs(lp, ref):
  return jnp.abs(lp - ref)


def _k2(lp, ref):
  return 0.5 * jnp.square(lp - ref)


def _k3(lp, ref):
  d = jnp.clip(ref - lp, -20.0, 20.0)
  return jnp.clip(jnp.exp(d) - d - 1.0, -10.0, 10.0)


_ESTIMATORS = types.MappingProxyType({"k1": _k1, "abs": _abs, "k2": _k2, "k3": _k3})


def kl_divergence(logprobs: jax.Array, ref_logprobs: jax.Array, kind: str = "k3") -> jax.Array:
  """Per-token estimate of ``KL(pi || pi_ref)`` from tokens sampled from ``pi``.

  Schulman 2020, "Approximating KL Divergence" (http://joschu.net/blog/kl-approx.html),
  with ``x = lp - lp_ref``:

  * ``k1`` (``kl``): ``x``                               unbiased, high variance
  * ``abs``: ``|x|``
  * ``k2`` (``mse``): ``x^2 / 2``                        biased, low variance
  * ``k3`` (``low_var_kl``): ``e^{d} - d - 1`` with ``d = clip(-x, ±20)``, the result
    clipped to ``[-10, 10]`` (verl 0.9.1's clamps; the clamps zero the gradient)
  * suffix ``+`` (e.g. ``k3+``): straight-through, the value of the base
    estimator with the gradient of ``k2``, ``x * grad lp`` (verl 0.9.1), which is
    an unbiased gradient of ``KL(pi || pi_ref)`` for on-policy samples.

  Matches verl's ``kl_penalty`` for these names. TRL's k3 is unclamped;
  OpenRLHF additionally clamps k1/k2 to ``[-10, 10]``.
  """
  base, straight_through = (kind[:-1], True) if kind.endswith("+") else (kind, False)
  _checks.check_choice(base, KL_KINDS, "KL kind (optionally with a '+' suffix)")
  if jnp.shape(logprobs) != jnp.shape(ref_logprobs):
    raise ValueError(f"logprobs {jnp.shape(logprobs)} and ref_logprobs "
                     f"{jnp.shape(ref_logprobs)} must have the same shape")
  fn = _ESTIMATORS[_ALIASES.get(base, base)]
  value = fn(logprobs, ref_logprobs)
  if not straight_through:
    return value
  grad_path = _k2(logprobs, ref_logprobs)
  return sg(value) + grad_path - sg(grad_path)


def kl_from_logits(logits: jax.Array, ref_logits: jax.Array) -> jax.Array:
  """Exact per-position ``KL(p || q) = sum_v p_v (log p_v - log q_v)`` over the vocabulary.

  ``p = softmax(logits)``, ``q = softmax(ref_logits)``, both ``[..., V]``;
  returns ``[...]``. Divide logits by the sampling temperature first if needed.
  """
  if logits.shape != ref_logits.shape:
    raise ValueError(f"logits {logits.shape} and ref_logits {ref_logits.shape} must match")
  logp = jax.nn.log_softmax(logits, axis=-1)
  logq = jax.nn.log_softmax(ref_logits, axis=-1)
  return jnp.sum(jnp.exp(logp) * (logp - logq), axis=-1)


def entropy_from_logits(logits: jax.Array, temperature: float = 1.0) -> jax.Array:
  """Per-position entropy ``H = logsumexp(z) - sum_v softmax(z)_v z_v``, ``z = logits / T``.

  Same formula as verl's ``entropy_from_logits``; returns ``[...]`` for ``[..., V]``.
  """
  if temperature <= 0:
    raise ValueError(f"temperature must be positive, got {temperature}")
  z = logits / temperature
  return jax.nn.logsumexp(z, axis=-1) - jnp.sum(jax.nn.softmax(z, axis=-1) * z, axis=-1)


def forward_kl_estimate(logprobs: jax.Array, ref_logprobs: jax.Array, *,
                        samples_from: str = "policy", log_ratio_clamp: float = 20.0) -> jax.Array:
  """Per-token estimate of the forward ``KL(pi_ref || pi)``.

  * ``samples_from="policy"`` (tokens from ``pi``), ``u = pi_ref / pi``:
    ``u log u - u + 1`` (``E_pi[u log u] = KL(pi_ref || pi)``; the ``- u + 1``
    control variate has mean 0). Used by RAPO (arXiv 2510.03865).
  * ``samples_from="reference"`` (tokens from ``pi_ref``, e.g. DPH-RL's rehearsal
    data), ``u = pi / pi_ref``: ``u - log u - 1`` (k3 with the roles swapped;
    DPH-RL, arXiv 2509.07430).

  The log-ratio is clamped to ``±log_ratio_clamp`` before ``exp``.
  """
  _checks.check_choice(samples_from, ("policy", "reference"), "samples_from")
  if samples_from == "policy":
    log_u = jnp.clip(ref_logprobs - logprobs, -log_ratio_clamp, log_ratio_clamp)
    u = jnp.exp(log_u)
    return u * log_u - u + 1.0
  log_u = jnp.clip(logprobs - ref_logprobs, -log_ratio_clamp, log_ratio_clamp)
  return jnp.exp(log_u) - log_u - 1.0


F_DIVERGENCES = ("forward_kl", "reverse_kl", "js", "chi2", "tv", "alpha")


def f_generator(kind: str, alpha: float = 0.2):
  """Generator ``f(u)`` (convex, ``f(1) = 0``) of ``D_f`` such that ``D = E_q[f(p / q)]``.

  Used on rehearsal tokens sampled from ``q = pi_0`` with ``u = pi_theta / pi_0``
  (DPH-RL: Li et al. 2025, "The Choice of Divergence: A Neglected Key to
  Mitigating Diversity Collapse in RLVR", arXiv 2509.07430). Each generator
  carries the affine term ``c (u - 1)`` (mean 0 under ``q``) that makes it
  non-negative, as DPH-RL's low-variance forms:

  * ``forward_kl``  ``KL(pi_0 || pi_theta)``:  ``u - 1 - log u``
  * ``reverse_kl``  ``KL(pi_theta || pi_0)``:  ``u log u - u + 1``
  * ``js``          ``2 JS(pi_theta, pi_0)``:  ``u log u - (u + 1) log((u + 1) / 2)``
                    (DPH-RL's form, twice the usual Jensen-Shannon divergence)
  * ``chi2``        Pearson ``chi^2(pi_theta || pi_0)``: ``(u - 1)^2``
  * ``tv``          total variation: ``|u - 1| / 2``
  * ``alpha``       alpha-divergence: ``(u^{1-a} - (1-a) u - a) / (a (a - 1))``, ``a = alpha``
  """
  _checks.check_choice(kind, F_DIVERGENCES, "f-divergence kind")
  if kind == "alpha" and alpha in (0.0, 1.0):
    raise ValueError(f"alpha must not be 0 or 1 (use forward_kl/reverse_kl), got {alpha}")
  return {
      "forward_kl": lambda u, log_u: u - 1.0 - log_u,
      "reverse_kl": lambda u, log_u: u * log_u - u + 1.0,
      "js": lambda u, log_u: u * log_u - (u + 1.0) * jnp.log((u + 1.0) / 2.0),
      "chi2": lambda u, log_u: jnp.square(u - 1.0),
      "tv": lambda u, log_u: 0.5 * jnp.abs(u - 1.0),
      "alpha": lambda u, log_u: (jnp.exp((1.0 - alpha) * log_u) - (1.0 - alpha) * u - alpha)
                                / (alpha * (alpha - 1.0)),
  }[kind]


def f_divergence(logprobs: jax.Array, sample_logprobs: jax.Array, kind: str, *,
                 alpha: float = 0.2, log_ratio_clamp: float = 20.0) -> jax.Array:
  """Per-token ``f(u)``, ``u = exp(clip(lp - lp_q, ±C))``, on tokens sampled from ``q``.

  ``logprobs`` are the trained policy's, ``sample_logprobs`` those of the
  distribution the tokens were drawn from (DPH-RL: the initial policy). Its
  token mean estimates ``D_f`` (see :func:`f_generator`).
  """
  if jnp.shape(logprobs) != jnp.shape(sample_logprobs):
    raise ValueError(f"logprobs {jnp.shape(logprobs)} and sample_logprobs "
                     f"{jnp.shape(sample_logprobs)} must have the same shape")
  f = f_generator(kind, alpha)
  log_u = jnp.clip(logprobs - sample_logprobs, -log_ratio_clamp, log_ratio_clamp)
  return f(jnp.exp(log_u), log_u)

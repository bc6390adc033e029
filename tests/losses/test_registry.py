import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses


def test_registries_return_the_public_functions():
  assert losses.get_policy_loss("ppo") is losses.ppo_policy_loss
  assert losses.get_policy_loss("gspo") is losses.gspo_policy_loss
  assert losses.get_policy_loss("cispo") is losses.cispo_policy_loss
  assert losses.get_advantage_estimator("grpo").fn is losses.registry.grpo_estimator
  assert losses.get_advantage_estimator("gae").uses_values
  assert losses.get_reward_shaping("overlong") is losses.overlong_shaping
  lp, rf = jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])
  np.testing.assert_allclose(losses.get_kl("k2")(lp, rf), [0.5, 0.0])
  np.testing.assert_allclose(losses.get_kl("low_var_kl+")(lp, rf),
                             losses.kl_divergence(lp, rf, "k3"))


@pytest.mark.parametrize("getter, name, known", [
    (losses.get_policy_loss, "ppo2", "gspo"),
    (losses.get_advantage_estimator, "grpo2", "rloo"),
    (losses.get_kl, "k5", "low_var_kl"),
    (losses.get_reward_shaping, "longish", "overlong"),
])
def test_unknown_name_lists_known_names(getter, name, known):
  with pytest.raises(ValueError, match=known) as info:
    getter(name)
  assert name in str(info.value)


def test_losses_do_not_import_models():
  # DESIGN.md layering: losses/ takes arrays, never a model.
  import ast
  import pathlib
  root = pathlib.Path(losses.__file__).parent
  for path in root.glob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
      names = []
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.module:
        names = [node.module]
      for name in names:
        assert not name.startswith(("jaxrl_llm.models", "jaxrl_llm.training")), (path, name)


PLAIN_POLICY_LOSSES = sorted(k for k, v in losses.registry.POLICY_LOSSES.items() if not v.inputs)


@pytest.mark.parametrize("name", PLAIN_POLICY_LOSSES)
def test_policy_losses_share_one_call_signature(name):
  """Losses without extra inputs are called with the four arrays alone (the ones with
  inputs, e.g. PACS or ROVER, are tested with them in their own files)."""
  lp = jnp.log(jnp.array([[0.5, 0.25], [0.5, 0.5]]))
  out = losses.get_policy_loss(name)(lp, lp, jnp.array([1.0, -1.0]), jnp.ones((2, 2)))
  assert isinstance(out, losses.LossOutput)
  # On-policy (ratio 1) every objective reduces to mean(-A * ratio) or mean(-A * lp).
  if name not in ("ppo", "vanilla", "gspo", "reinforce", "gpg", "cispo"):
    return  # other objectives' on-policy values are checked in their own tests
  if name in ("reinforce", "gpg", "cispo"):
    expected = -np.mean(np.array([[1.0], [-1.0]]) * np.asarray(lp))
  else:
    expected = 0.0   # -A * 1 averaged over A = +1, -1 rows of equal length
  np.testing.assert_allclose(losses.safe_mean(out.total, out.count), expected, atol=1e-6)


# Rows 0-3 and 4-7 are two groups (ids 3 and 1: any integers); row lengths 2, 3, 1, 3, 3, 1, 2, 3.
_MASK = np.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1],
                  [1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]], np.float32)
_REWARDS = np.array([1., 0., 0., 1., 1., 0.25, 0., 0.5], np.float32)
_IDS = np.array([3, 3, 3, 3, 1, 1, 1, 1], np.int32)


@pytest.mark.parametrize("name", sorted(losses.registry.ADVANTAGE_ESTIMATORS))
def test_advantage_estimators_share_one_protocol(name):
  est = losses.get_advantage_estimator(name)
  values = jnp.asarray(np.linspace(-0.5, 0.5, 24, dtype=np.float32).reshape(8, 3))
  # Token-level estimators read token rewards (here: each reward on its last token).
  token = (losses.registry.terminal_rewards(jnp.asarray(_REWARDS), jnp.asarray(_MASK))
           if "token_rewards" in est.extras else None)
  out = est(losses.AdvantageInputs(jnp.asarray(_REWARDS), jnp.asarray(_MASK), jnp.asarray(_IDS),
                                   values if est.uses_values else None, token_rewards=token))
  assert isinstance(out, losses.AdvantageOutput)
  assert out.advantages.shape == (8, 3) and isinstance(out.metrics, dict)
  np.testing.assert_array_equal(np.asarray(out.advantages)[_MASK == 0], 0.0)
  assert (out.returns is not None) == (name in ("gae", "reinforce_plus_plus", "gae_token",
                                                "reinforce_plus_plus_token"))
  assert np.abs(np.asarray(out.advantages)).sum() > 0


def test_outcome_adapters_broadcast_by_hand():
  inputs = losses.AdvantageInputs(jnp.asarray(_REWARDS), jnp.asarray(_MASK), jnp.asarray(_IDS))
  # RLOO by hand: group 3 (1,0,0,1): s_i - mean of the other 3 -> 2/3, -2/3, -2/3, 2/3;
  # group 1 (1,.25,0,.5): 1 - .75/3, .25 - 1.5/3, 0 - 1.75/3, .5 - 1.25/3.
  rloo = np.array([2 / 3, -2 / 3, -2 / 3, 2 / 3, 0.75, -0.25, -1.75 / 3, 0.5 - 1.25 / 3])
  got = losses.get_advantage_estimator("rloo")(inputs).advantages
  np.testing.assert_allclose(got, rloo[:, None] * _MASK, rtol=1e-6, atol=1e-7)
  # OPO by hand, group 3: lengths 2,3,1,3 -> baseline (2 + 3) / 9; group 1: lengths 3,1,2,3
  # -> (3 + .25 + 1.5) / 9.
  b = np.array([5 / 9] * 4 + [4.75 / 9] * 4)
  got = losses.get_advantage_estimator("opo")(inputs).advantages
  np.testing.assert_allclose(got, (_REWARDS - b)[:, None] * _MASK, rtol=1e-6, atol=1e-7)
  # GAE with V = 0, gamma = lam = 1, no whitening: the terminal reward on every masked token.
  gae = losses.get_advantage_estimator("gae")(
      inputs._replace(values=jnp.zeros((8, 3))), whiten=False)
  np.testing.assert_allclose(gae.advantages, _REWARDS[:, None] * _MASK, atol=1e-7)
  np.testing.assert_allclose(gae.returns, _REWARDS[:, None] * _MASK, atol=1e-7)


def test_gae_without_values_is_a_named_error():
  inputs = losses.AdvantageInputs(jnp.asarray(_REWARDS), jnp.asarray(_MASK), jnp.asarray(_IDS))
  with pytest.raises(ValueError, match="'gae' needs AdvantageInputs.values"):
    losses.get_advantage_estimator("gae")(inputs)


def test_unknown_options_list_the_known_ones():
  est = losses.get_advantage_estimator("grpo")
  with pytest.raises(ValueError, match=r"\['std'\] are not options of grpo; its options: "
                                       r"std_scope, eps"):
    losses.check_options(est.fn, {"std": "group"}, "grpo", skip=1)


def test_overlong_shaping_by_hand():
  # N = 4 (max_length defaults to the width), cache 2: lengths 1, 3, 4 -> 0, -0.5, -1.
  mask = jnp.asarray([[1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
  shaped, metrics = losses.get_reward_shaping("overlong")(jnp.ones(3), mask, cache_length=2)
  np.testing.assert_allclose(shaped, [1.0, 0.5, 0.0])
  np.testing.assert_allclose(metrics["overlong_penalty_mean"], -0.5)
  same, m = losses.get_reward_shaping("none")(jnp.ones(3), mask)
  np.testing.assert_array_equal(same, 1.0)
  assert not m


def test_policy_loss_rows_name_only_known_inputs():
  for name, row in losses.registry.POLICY_LOSSES.items():
    assert isinstance(row, losses.PolicyLoss), name
    assert set(row.inputs) <= set(losses.POLICY_INPUTS), name
  with pytest.raises(ValueError, match="unknown inputs"):
    losses.registry._check_policy_rows({"x": losses.PolicyLoss(lambda *a: None, ("nope",))})
  with pytest.raises(ValueError, match="known: .*ppo"):
    losses.get_policy_loss_entry("no_such_loss")

import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm import losses


def test_registries_return_the_public_functions():
  assert losses.get_policy_loss("ppo") is losses.ppo_policy_loss
  assert losses.get_policy_loss("gspo") is losses.gspo_policy_loss
  assert losses.get_policy_loss("cispo") is losses.cispo_policy_loss
  assert losses.get_advantage_estimator("grpo") is losses.grpo_advantages
  assert losses.get_advantage_estimator("gae") is losses.gae_advantages
  lp, rf = jnp.array([0.0, 1.0]), jnp.array([1.0, 1.0])
  np.testing.assert_allclose(losses.get_kl("k2")(lp, rf), [0.5, 0.0])
  np.testing.assert_allclose(losses.get_kl("low_var_kl+")(lp, rf),
                             losses.kl_divergence(lp, rf, "k3"))


@pytest.mark.parametrize("getter, name, known", [
    (losses.get_policy_loss, "ppo2", "gspo"),
    (losses.get_advantage_estimator, "grpo2", "rloo"),
    (losses.get_kl, "k5", "low_var_kl"),
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


@pytest.mark.parametrize("name", sorted(losses.registry.POLICY_LOSSES))
def test_policy_losses_share_one_call_signature(name):
  lp = jnp.log(jnp.array([[0.5, 0.25], [0.5, 0.5]]))
  out = losses.get_policy_loss(name)(lp, lp, jnp.array([1.0, -1.0]), jnp.ones((2, 2)))
  assert isinstance(out, losses.LossOutput)
  # On-policy (ratio 1) every objective reduces to mean(-A * ratio) or mean(-A * lp).
  if name in ("reinforce", "gpg", "cispo"):
    expected = -np.mean(np.array([[1.0], [-1.0]]) * np.asarray(lp))
  else:
    expected = 0.0   # -A * 1 averaged over A = +1, -1 rows of equal length
  np.testing.assert_allclose(losses.safe_mean(out.total, out.count), expected, atol=1e-6)

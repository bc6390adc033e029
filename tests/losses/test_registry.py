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

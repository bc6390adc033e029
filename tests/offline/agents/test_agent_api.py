"""The shared agent API, one test set for every registered agent (DESIGN.md
"Offline agents: one API for all"): init / update / update_n / act, under jit,
a scanned update_n equal to repeated updates, and bad batches named.

A new agent is picked up from the registry; if it trains on something other
than `Transitions`, add its batch builder to `BATCH_BUILDERS`; if its `act`
needs more than (state, observations, key), add them to `ACT_KWARGS`.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxrl_llm.offline import agents
from jaxrl_llm.offline.agents import api
from jaxrl_llm.offline.imitation import ExpertMixedBatch
from jaxrl_llm.offline.types import Transitions

from _agent_batches import ACT_DIM, BATCH, HIDDEN, OBS_DIM, make_batch as transitions


def with_future_goals(seed, n=BATCH):
  """Transitions whose `goals` are future states (TD-JEPA's task sampling)."""
  batch = transitions(seed, n)
  return batch._replace(goals=jnp.roll(batch.next_observations, -2, axis=0))


# Agents whose batches are not plain Transitions.
BATCH_BUILDERS = {
    "recoil": lambda seed: ExpertMixedBatch(expert=transitions(seed, 6),
                                            mixed=transitions(seed + 50, 10)),
    "td_jepa": with_future_goals,
}
CONFIG_OVERRIDES = {
    "iql": dict(actor_lr=1e-2), "riql": dict(num_critics=3),
    "td_jepa": dict(encoder_hidden_dims=(8,), embed_dims=(), phi_dim=4, psi_dim=3),
}
# Extra arguments of `act`: TD-JEPA acts for a task z inferred from rewards.
ACT_KWARGS = {
    "td_jepa": lambda agent, state, batch: dict(
        task=agent.infer_task(state, batch.next_observations, batch.rewards)),
}


def act_kwargs(name, agent, state, batch):
  return ACT_KWARGS[name](agent, state, batch) if name in ACT_KWARGS else {}


def make_batch(name, seed):
  return BATCH_BUILDERS.get(name, transitions)(seed)


def first_transitions(batch):
  """The Transitions part whose fields a bad-batch test corrupts, and its name."""
  if isinstance(batch, Transitions):
    return batch, "batch"
  return batch.expert, "batch.expert"


def observations_of(batch):
  return first_transitions(batch)[0].observations


def _np(tree):
  return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x)) if jnp.issubdtype(
      x.dtype, jax.dtypes.prng_key) else np.asarray(x), tree)


@pytest.fixture(scope="module", params=agents.names())
def case(request):
  """(name, agent, batch, initial state, state after one update, its metrics)."""
  name = request.param
  agent = agents.get(name)
  config = agent.get_config()
  config.hidden_dims = HIDDEN
  config.update(CONFIG_OVERRIDES.get(name, {}))
  batch = make_batch(name, 0)
  state = agent.init(jax.random.key(1), batch, config)
  new_state, metrics = agent.update(state, batch)
  return name, agent, batch, state, new_state, metrics


def test_registry_lists_every_agent():
  assert set(agents.names()) >= {"bc", "iql", "riql", "fdvl", "recoil", "td_jepa"}
  with pytest.raises(ValueError) as err:
    agents.get("cql")
  message = str(err.value)
  assert "unknown agent 'cql'" in message
  for name in agents.names():
    assert name in message


def test_init_and_update(case):
  _, agent, _, state, new_state, metrics = case
  assert isinstance(state, api.AgentState) and isinstance(new_state, api.AgentState)
  assert int(state.step) == 0 and int(new_state.step) == 1
  old, new = _np(state.params), _np(new_state.params)
  assert jax.tree.map(np.shape, old) == jax.tree.map(np.shape, new)
  for network in old:  # every network took a step
    changed = jax.tree.leaves(jax.tree.map(lambda a, b: not np.array_equal(a, b),
                                           old[network], new[network]))
    assert any(changed), network
  assert "actor_loss" in metrics  # the training loop reports it
  for key, value in metrics.items():
    assert np.shape(value) == () and np.isfinite(value), key
  assert not np.array_equal(_np(state.rng), _np(new_state.rng))


def test_update_under_an_outer_jit(case):
  _, agent, batch, state, new_state, metrics = case
  jitted_state, jitted_metrics = jax.jit(agent.update)(state, batch)
  for a, b in zip(jax.tree.leaves(_np(jitted_state)), jax.tree.leaves(_np(new_state))):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
  for key in metrics:
    np.testing.assert_allclose(jitted_metrics[key], metrics[key], rtol=1e-6, atol=1e-7)


def test_update_n_equals_repeated_update(case):
  name, agent, _, state, _, _ = case
  batches = [make_batch(name, s) for s in (11, 12, 13)]
  seq, seq_metrics = state, []
  for b in batches:
    seq, m = agent.update(seq, b)
    seq_metrics.append(m)
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *batches)
  scanned, metrics = agent.update_n(state, stacked)
  assert int(scanned.step) == 3
  assert jax.tree.structure(scanned) == jax.tree.structure(seq)
  for a, b in zip(jax.tree.leaves(_np(scanned)), jax.tree.leaves(_np(seq))):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=1e-5)
  for key in metrics:
    assert np.shape(metrics[key]) == (3,), key
    np.testing.assert_allclose(metrics[key], [m[key] for m in seq_metrics],
                               rtol=2e-4, atol=1e-5)


def test_act_shapes_range_determinism_and_jit(case):
  name, agent, batch, _, state, _ = case
  obs = observations_of(batch)[:5]
  kw = act_kwargs(name, agent, state, batch)
  k1, k2 = jax.random.key(5), jax.random.key(6)
  det1 = agent.act(state, obs, k1, deterministic=True, **kw)
  det2 = agent.act(state, obs, k2, deterministic=True, **kw)
  assert det1.shape == (5, ACT_DIM)
  np.testing.assert_array_equal(det1, det2)
  s1 = agent.act(state, obs, k1, deterministic=False, **kw)
  s1b = agent.act(state, obs, k1, deterministic=False, **kw)
  s2 = agent.act(state, obs, k2, deterministic=False, **kw)
  np.testing.assert_array_equal(s1, s1b)
  assert not np.array_equal(s1, s2)
  for a in (det1, s1, s2):
    assert np.all(np.abs(np.asarray(a)) <= 1.0)
  single = agent.act(state, obs[0], k1, deterministic=True, **kw)
  assert single.shape == (ACT_DIM,)
  np.testing.assert_allclose(single, det1[0], rtol=1e-6)
  jitted = jax.jit(lambda s, o, k: agent.act(s, o, k, deterministic=False, **kw))
  np.testing.assert_allclose(jitted(state, obs, k1), s1, rtol=1e-6)


def test_bad_batch_names_the_field(case):
  name, agent, batch, state, _, _ = case
  part, prefix = first_transitions(batch)
  broken = part._replace(next_observations=part.next_observations[:, :-1])
  bad = broken if isinstance(batch, Transitions) else batch._replace(expert=broken)
  match = f"{prefix}.next_observations must have the shape of {prefix}.observations"
  with pytest.raises(ValueError, match=match):
    agent.update(state, bad)
  with pytest.raises(ValueError, match=match):
    agent.init(jax.random.key(0), bad, agent.get_config())
  stacked = jax.tree.map(lambda *xs: jnp.stack(xs), bad, bad)
  with pytest.raises(ValueError, match=match):
    agent.update_n(state, stacked)
  dropped = part._replace(actions=None)
  bad = dropped if isinstance(batch, Transitions) else batch._replace(expert=dropped)
  with pytest.raises(ValueError, match=f"{prefix}.actions must have shape"):
    agent.update(state, bad)
  with pytest.raises(ValueError, match="batch"):
    agent.update(state, {"observations": observations_of(batch)})

"""f-DVL: dual-V offline RL (Sikchi, Zheng, Zhang, Niekum, "Dual RL: Unification
and New Methods for Reinforcement and Imitation Learning", ICLR 2024).

IQL's pipeline (V → actor → Q → target, twin critics Q1, Q2 with Polyak targets
Q̄) with the expectile V loss replaced by the dual-V loss and Huber Q loss:

  V:      L_V = E_{(s,a)~μ}[ λ f*_p(x) − (1 − λ) x ],  x = min(Q̄1, Q̄2)(s, a) − V(s)
          f*_p(x) = max(x + x²/4, 0)  (Pearson χ²),  max(x, 0)  (total variation),
          or the Gumbel loss exp(−M)(e^z − z − 1), z = min(x/λ, c)  (reverse KL = XQL)
          μ = the data, or ½(data + the same states with a ~ U(−1, 1)^d)
          ("smoothing", `sample_random_times` = 1)
  actor:  L_π = −E[ min(exp(β (min Q̄(s, a) − V'(s))), 100) · log π(a|s) ]   (AWR)
  Q:      L_Q = Σ_i E[ H_20(Q_i(s, a) − r − γ (1 − d) V'(s')) ]              (Huber, δ = 20)
  target: Q̄ ← (1 − ρ) Q̄ + ρ Q

V' is the value net after this step's V update(s). The value net has
LayerNorm (`value_layer_norm`, on in every configuration of the reference
code; the critic has none). λ is the reference code's `--temp`; β its config
`temperature` (an inverse temperature, as in IQL).

`get_config(domain)` returns the settings of the paper's reference runs; see
`DOMAIN_SETTINGS` for their source and what is uncertain.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from jaxrl_llm.offline import networks
from jaxrl_llm.offline.agents import api
from jaxrl_llm.offline.agents import common
from jaxrl_llm.offline.agents import losses
from jaxrl_llm.offline.types import Transitions

# Per-domain settings of the official f-DVL runs (hari-sikchi/DVL, offline/README.md
# commands and the IQL-derived configs they load; ../shared/reference/offline_rl_anchors.md
# §4.1). The paper's own tables could not be re-read here, so these are the code's values:
#   locomotion: --f=chi-square --temp=1 --max_clip=5 --sample_random_times=1, τ 0.7, β 3
#   antmaze:    --f=total-variation --temp=0.8 --max_clip=5, β 10, no lr decay,
#               value dropout 0.5
#   kitchen / adroit: --f=reverse-KL --temp=8 --sample_random_times=1, β 0.5, actor
#               dropout 0.1 (no --max_clip given: the flag default 7)
# Uncertain, hence options: whether value dropout is active in the V loss's forward
# pass (here it is, and only there); `max_clip` only acts on the reverse-KL branch.
DOMAIN_SETTINGS = {
    "locomotion": dict(divergence="chi-square", dual_temperature=1.0, max_clip=5.0,
                       sample_random_times=1, temperature=3.0, actor_dropout_rate=0.0,
                       value_dropout_rate=0.0, cosine_decay=True),
    "antmaze": dict(divergence="total-variation", dual_temperature=0.8, max_clip=5.0,
                    sample_random_times=0, temperature=10.0, actor_dropout_rate=0.0,
                    value_dropout_rate=0.5, cosine_decay=False),
    "kitchen": dict(divergence="reverse-kl", dual_temperature=8.0, max_clip=7.0,
                    sample_random_times=1, temperature=0.5, actor_dropout_rate=0.1,
                    value_dropout_rate=0.0, cosine_decay=True),
    "adroit": dict(divergence="reverse-kl", dual_temperature=8.0, max_clip=7.0,
                   sample_random_times=1, temperature=0.5, actor_dropout_rate=0.1,
                   value_dropout_rate=0.0, cosine_decay=True),
}


def get_config(domain: str = "locomotion") -> ml_collections.ConfigDict:
  """f-DVL hyperparameters; `domain` picks the reference runs' f, λ, β, smoothing.

  The reference code trains with batch 1024 (its `--batch_size` default); the
  batch size belongs to the experiment config (configs/offline/fdvl_*.py).
  """
  domain = domain or "locomotion"
  if domain not in DOMAIN_SETTINGS:
    raise ValueError(
        f"unknown f-DVL domain {domain!r}; known: {sorted(DOMAIN_SETTINGS)}")
  config = ml_collections.ConfigDict()
  config.actor_type = "gaussian"
  config.hidden_dims = (256, 256)
  config.actor_lr = 3e-4
  config.critic_lr = 3e-4
  config.value_lr = 3e-4
  config.discount = 0.99
  config.target_update_rate = 0.005
  config.max_weight = 100.0
  config.max_steps = 1_000_000  # cosine-decay horizon of the actor lr
  config.log_std_min = -5.0
  config.log_std_max = 2.0
  config.act_noise_std = 0.1
  config.value_layer_norm = True
  config.huber_delta = 20.0  # Q loss: standard Huber, ½x² inside |x| ≤ δ
  config.num_value_updates = 1  # V steps per update (the code's --num_v_updates)
  # Gaussian noise N(0, σ²) clipped to ±0.5 on the data actions of the V loss
  # (the code's --noise / --noise_std; off by default, 0 = off).
  config.value_action_noise_std = 0.0
  config.update(DOMAIN_SETTINGS[domain])
  return config


class ValueNet(nn.Module):
  """V(s) = MLP(s) → scalar with optional LayerNorm and dropout after each hidden layer.

  Without dropout it has the parameters and outputs of `networks.ValueNet`.
  """

  hidden_dims: Sequence[int]
  layer_norm: bool = True
  dropout_rate: float = 0.0

  @nn.compact
  def __call__(self, observations: jax.Array, training: bool = False) -> jax.Array:
    mlp = networks.MLP((*self.hidden_dims, 1), layer_norm=self.layer_norm,
                       dropout_rate=self.dropout_rate)
    return jnp.squeeze(mlp(observations, training), -1)


def _check_config(cfg) -> None:
  if str(cfg.divergence).lower() not in losses.DUAL_DIVERGENCES:
    raise ValueError(f"config.divergence must be one of {losses.DUAL_DIVERGENCES}, "
                     f"got {cfg.divergence!r}")
  if cfg.sample_random_times < 0:
    raise ValueError(
        f"config.sample_random_times must be >= 0, got {cfg.sample_random_times}")
  if cfg.num_value_updates < 1:
    raise ValueError(f"config.num_value_updates must be >= 1, got {cfg.num_value_updates}")
  if cfg.dual_temperature <= 0:
    raise ValueError(f"config.dual_temperature (λ) must be positive, got {cfg.dual_temperature}")
  losses.huber_loss_standard(jnp.zeros(()), cfg.huber_delta)  # validates δ


def _networks(cfg):
  """actor, twin critic (with a Polyak target) and LayerNorm value net, with their optimisers."""
  actor_tx = common.adam(cfg.actor_lr, cfg.max_steps if cfg.cosine_decay else None)
  return {
      "actor": api.Network(common.make_actor(cfg), actor_tx),
      "critic": api.Network(networks.EnsembleCritic(tuple(cfg.hidden_dims), num_critics=2),
                            common.adam(cfg.critic_lr, None),
                            init_inputs=("observations", "actions"), target=True),
      "value": api.Network(ValueNet(tuple(cfg.hidden_dims), layer_norm=cfg.value_layer_norm,
                                    dropout_rate=cfg.value_dropout_rate),
                           common.adam(cfg.value_lr, None)),
  }


def value_loss_inputs(key: jax.Array, observations: jax.Array, actions: jax.Array,
                      sample_random_times: int, action_noise_std: float = 0.0):
  """The (s, a) pairs of the V loss: the data, plus "smoothing" pairs.

  With n = `sample_random_times` > 0, the batch is followed by each state
  repeated n times with a ~ U(−1, 1)^d, so the loss averages over
  ½(ρ + Unif) for n = 1 (f-DVL's smoothing). With `action_noise_std` > 0 the
  data actions get clip(N(0, σ²), ±0.5) noise, clipped to [−1, 1].
  Returns (observations [(1+n)B, ds], actions [(1+n)B, da]).
  """
  noise_key, uniform_key = jax.random.split(key)
  if action_noise_std > 0:
    noise = jnp.clip(action_noise_std * jax.random.normal(noise_key, actions.shape,
                                                          actions.dtype), -0.5, 0.5)
    actions = jnp.clip(actions + noise, -1.0, 1.0)
  if sample_random_times > 0:
    size = sample_random_times * actions.shape[0]
    random_actions = jax.random.uniform(uniform_key, (size, actions.shape[1]),
                                        actions.dtype, -1.0, 1.0)
    observations = jnp.concatenate(
        [observations, jnp.repeat(observations, sample_random_times, axis=0)], 0)
    actions = jnp.concatenate([actions, random_actions], 0)
  return observations, actions


def _update_step(state: api.AgentState, batch: Transitions, nets, key):
  cfg = state.config
  value = nets["value"].module
  obs, actions = batch.observations, batch.actions
  num_data = obs.shape[0]
  smooth_key, value_key, actor_key = jax.random.split(key, 3)

  # V: the dual-V loss on Q̄_min − V over the data (and the smoothing pairs).
  v_obs, v_actions = value_loss_inputs(smooth_key, obs, actions, cfg.sample_random_times,
                                       cfg.value_action_noise_std)
  v_target_q = jnp.min(api.apply_network(state, nets, "critic", v_obs, v_actions,
                                         target=True), 0)
  for dropout_key in jax.random.split(value_key, cfg.num_value_updates):

    def value_loss_fn(params, dropout_key=dropout_key):
      v = value.apply(params, v_obs, training=True, rngs={"dropout": dropout_key})
      return jnp.mean(losses.dual_value_loss(v_target_q - v, cfg.divergence,
                                             cfg.dual_temperature, cfg.max_clip)), v

    state, value_loss, v = api.gradient_step(state, nets, "value", value_loss_fn)

  # Actor: AWR with the freshly updated V and the target critic, on the data only.
  target_q = v_target_q[:num_data] if cfg.value_action_noise_std == 0 else jnp.min(
      api.apply_network(state, nets, "critic", obs, actions, target=True), 0)
  advantages = target_q - value.apply(state.params["value"], obs)
  weights = losses.awr_weights(advantages, cfg.temperature, cfg.max_weight)

  def actor_loss_fn(params):
    return common.weighted_actor_loss(nets["actor"].module, cfg.actor_type, params, obs,
                                      actions, weights, actor_key)

  state, actor_loss, actor_metrics = api.gradient_step(state, nets, "actor", actor_loss_fn)

  # Q: Huber(δ) regression of both heads onto r + γ m V'(s'), summed over heads.
  next_v = value.apply(state.params["value"], batch.next_observations)
  targets = losses.td_target(batch.rewards, common.td_masks(batch), next_v, cfg.discount)

  def critic_loss_fn(params):
    q = nets["critic"].module.apply(params, obs, actions)
    per_head = losses.huber_loss_standard(q - targets[None], cfg.huber_delta)
    return jnp.mean(jnp.sum(per_head, 0)), q

  state, critic_loss, q = api.gradient_step(state, nets, "critic", critic_loss_fn)
  state = api.update_targets(state, cfg.target_update_rate)

  metrics = {
      "value_loss": value_loss, "actor_loss": actor_loss,
      "critic_loss": critic_loss, "v": jnp.mean(v[:num_data]), "q": jnp.mean(q),
      "advantage": jnp.mean(advantages), "awr_weight": jnp.mean(weights),
      **actor_metrics,
  }
  return state, metrics


def _prepare(cfg, example_batch):
  del example_batch
  _check_config(cfg)
  return {}


_AGENT = api.make_agent(name="f-DVL", get_config=get_config, networks=_networks,
                        update_step=_update_step, prepare=_prepare)
init, update, update_n, act = _AGENT.init, _AGENT.update, _AGENT.update_n, _AGENT.act


def q_values(state: api.AgentState, observations: jax.Array,
             actions: jax.Array) -> jax.Array:
  """Online twin-critic values Q_k(s, a), [2, N]. Differentiable in (s, a)."""
  return api.apply_network(state, _networks(state.config), "critic", observations, actions)


def values(state: api.AgentState, observations: jax.Array) -> jax.Array:
  """State values V(s), [N] (dropout off): the dual-V estimate of max_a Q(s, a)."""
  return api.apply_network(state, _networks(state.config), "value", observations)

"""The training set as an offline loop sees it: load → corrupt → clip actions → scale rewards.

Part of the offline agents' loops (DESIGN.md layering: beside ``training``), because
adversarial corruption first trains the critic it attacks. Reads an experiment
config (configs/offline/base.py): ``dataset_format``, ``dataset_path``,
``minari_datasets_path``, ``synthetic``, ``seed``, ``corruption``,
``clip_actions``, ``reward_scaling``, ``batch_size``, ``steps_per_call``.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, Tuple

import jax
import numpy as np
import tqdm

from jaxrl_llm.offline import agents
from jaxrl_llm.offline import corruption as corruption_lib
from jaxrl_llm.offline import datasets
from jaxrl_llm.offline.types import Transitions

CORRUPTION_MODES = ("random", "adversarial")


def load_dataset(config) -> Transitions:
  """The training set as NumPy-backed Transitions, before corruption/scaling
  (``datasets.load`` on the config's dataset fields)."""
  return datasets.load(config.dataset_format, config.dataset_path,
                       minari_datasets_path=config.get("minari_datasets_path") or None,
                       synthetic=config.get("synthetic"), seed=config.seed)


def clean_and_scale(config, data: Transitions) -> Transitions:
  """Action clipping (when configured) and the configured reward scaling."""
  if config.clip_actions:
    data = datasets.clip_actions(data)
  return datasets.scale_rewards(data, config.reward_scaling)


def preprocess(config, data: Transitions, progress_bar: bool = False
               ) -> Tuple[Transitions, Dict[str, np.ndarray], dict]:
  """Corruption (seeded by ``corruption.seed``) → action clipping → reward scaling.

  Returns ``(data, masks, info)``: ``masks`` maps each corrupted field to its
  boolean [N] mask, ``info`` describes the attacked critic for adversarial
  corruption (RIQL, Yang et al. 2023; formulas in ``offline/corruption.py``).
  """
  masks, info = {}, {}
  corruption = config.corruption
  if corruption.fields:
    if corruption.mode not in CORRUPTION_MODES:
      raise ValueError(
          f"unknown config.corruption.mode {corruption.mode!r}; known: 'random', 'adversarial'")
    attack = {}
    if corruption.mode == "adversarial" and set(corruption.fields) - {"rewards"}:
      q_fn, policy_fn, info = train_attack_critic(config, data, progress_bar)
      attack = dict(q_fn=q_fn, policy_fn=policy_fn, steps=corruption.attack_grad_steps,
                    step_size=corruption.attack_step_size)
    data, masks = corruption_lib.corrupt_dataset(
        jax.random.key(corruption.seed), data, tuple(corruption.fields),
        corruption.mode, rate=corruption.rate, scale=corruption.scale, **attack)
  return clean_and_scale(config, data), masks, info


def train_attack_critic(config, clean_data: Transitions, progress_bar: bool = False
                        ) -> Tuple[Callable, Callable, dict]:
  """The critic that adversarial corruption attacks, trained on the clean data.

  RIQL attacks a pretrained EDAC ensemble; here ``corruption.attack_agent`` (an
  agent with ``q_values``, IQL by default) is trained for ``corruption.attack_steps``
  on the clean, preprocessed data, seeded by ``corruption.seed``. Returns
  ``(q_fn(obs, act) -> [K, N], policy_fn(obs) -> act, info)``; the policy (the
  agent's deterministic action) is what the dynamics attack evaluates at s'.
  """
  corruption = config.corruption
  agent = agents.get(corruption.attack_agent)
  if not hasattr(agent, "q_values"):
    with_critic = [n for n in agents.names() if hasattr(agents.get(n), "q_values")]
    raise ValueError(
        f"config.corruption.attack_agent {corruption.attack_agent!r} has no critic to attack; "
        f"use one of {with_critic}")
  steps, chunk = corruption.attack_steps, min(config.steps_per_call, corruption.attack_steps)
  if steps <= 0 or steps % chunk:
    raise ValueError(
        f"config.corruption.attack_steps ({steps}) must be a positive multiple of "
        f"config.steps_per_call ({config.steps_per_call}) for adversarial corruption")
  agent_config = agent.get_config()
  agent_config.hidden_dims = tuple(corruption.attack_hidden_dims)
  if "max_steps" in agent_config:
    agent_config.max_steps = steps
  data = jax.device_put(datasets.validate_transitions(
      clean_and_scale(config, clean_data), "attack-critic training data"))
  key, init_key = jax.random.split(jax.random.fold_in(jax.random.key(corruption.seed), 1))
  state = agent.init(init_key, data, agent_config)
  sample = jax.jit(lambda k: datasets.sample_batches(k, data, config.batch_size, chunk))
  start = time.perf_counter()
  metrics = {}
  for _ in tqdm.trange(steps // chunk, desc=f"attack critic ({corruption.attack_agent})",
                       disable=not progress_bar, mininterval=1.0):
    key, batch_key = jax.random.split(key)
    state, metrics = agent.update_n(state, sample(batch_key))
  metrics = {k: float(np.mean(v)) for k, v in jax.device_get(metrics).items()}
  info = {"attack_agent": corruption.attack_agent, "attack_steps": steps,
          "attack_wall_s": time.perf_counter() - start,
          "attack_critic_loss": metrics.get("critic_loss", float("nan"))}
  act_key = jax.random.key(0)  # unused: deterministic actions

  def q_fn(observations, actions):
    return agent.q_values(state, observations, actions)

  def policy_fn(observations):
    return agent.act(state, observations, act_key, deterministic=True)

  return q_fn, policy_fn, info

"""Make D4RL-style offline datasets locally (no network) and save them as Minari datasets.

    python -m jaxrl_llm.offline.generation.make_datasets --env Hopper-v5 \
        --out /data/minari --sac-steps 300000 --dataset-steps 1000000 --seed 0
    python -m jaxrl_llm.offline.generation.make_datasets --tiny --out /tmp/minari   # seconds

Protocol (Fu et al., "D4RL: Datasets for Deep Data-Driven RL", 2020, Sec. 5):

* a SAC agent is trained online; its actor is evaluated and snapshotted every `eval_every`
  steps, and every transition it sees is kept (the replay buffer);
* `expert`: the best-evaluated snapshot; `medium`: the first snapshot whose evaluation
  return reaches `medium_fraction` (1/3) of the expert's;
* `random`: uniform random actions; `medium` / `expert`: `dataset_steps` transitions
  sampled *stochastically* from those actors; `medium-replay`: the replay buffer up to the
  medium snapshot; `medium-expert`: medium + expert concatenated;
* `terminals` = gymnasium `terminated`, `timeouts` = `truncated` (plus the cut at the end
  of a collection).

Dataset ids: `<namespace>/<env>/<kind>-v0` (e.g. `jaxrl/hopper/medium-replay-v0`) under
`--out` (a `MINARI_DATASETS_PATH`). `reference_scores.json` next to them records the
measured returns of every behaviour policy, the locally measured random/expert reference
returns (also stored as Minari `ref_min_score`/`ref_max_score`), the D4RL v2 reference
constants for comparison, the SAC learning curve, seeds and package versions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxrl_llm.offline.datasets import D4RL_REF_SCORES, save_minari_dataset
from jaxrl_llm.offline.evaluation import evaluate_policy
from jaxrl_llm.offline.generation.sac import SACConfig, sac_act, train_sac

__all__ = ["DATASET_KINDS", "collect_episodes", "buffer_to_episodes", "select_checkpoints",
           "make_datasets", "main"]

DATASET_KINDS = ("random", "medium", "expert", "medium-replay", "medium-expert")

Policy = Callable[[np.ndarray, np.random.Generator], np.ndarray]  # single obs -> env action


def collect_episodes(policy: Policy, env_id: str, num_steps: int, seed: int,
                     env_kwargs: Optional[dict] = None) -> List[Dict[str, np.ndarray]]:
  """Rolls `policy` for exactly `num_steps` env steps; returns Minari-style episodes.

  Each episode has `observations` [T+1], `actions`, `rewards`, `terminations`,
  `truncations` [T] and `complete` (False for the final episode when it was cut at
  `num_steps`; it is then marked truncated).
  Episode i is reset with seed `seed + i`.
  """
  import gymnasium as gym

  env = gym.make(env_id, **(env_kwargs or {}))
  env.action_space.seed(seed)
  rng = np.random.default_rng(seed)
  episodes = []
  steps = 0
  while steps < num_steps:
    obs, _ = env.reset(seed=seed + len(episodes))
    ep = dict(observations=[obs], actions=[], rewards=[], terminations=[], truncations=[])
    done = False
    while not done and steps < num_steps:
      action = policy(obs, rng)
      obs, r, terminated, truncated, _ = env.step(action)
      steps += 1
      done = terminated or truncated
      truncated = truncated or (steps == num_steps and not terminated)
      for k, v in (("observations", obs), ("actions", action), ("rewards", r),
                   ("terminations", terminated), ("truncations", truncated)):
        ep[k].append(v)
    episode = {k: np.asarray(v, bool if k in ("terminations", "truncations") else np.float32)
               for k, v in ep.items()}
    episode["complete"] = bool(done)  # False when cut by `num_steps`
    episodes.append(episode)
  env.close()
  return episodes


def buffer_to_episodes(buffer: Dict[str, np.ndarray]) -> List[Dict[str, np.ndarray]]:
  """Splits a replay-buffer prefix (flat transitions in order) into Minari-style episodes.

  Episodes end at terminals or timeouts; an unfinished last episode is kept with neither
  flag set (loaders then mark it as a truncation).
  """
  ends = np.flatnonzero((buffer["terminals"] > 0) | (buffer["timeouts"] > 0))
  n = buffer["rewards"].shape[0]
  bounds = list(ends + 1)
  if not bounds or bounds[-1] != n:
    bounds.append(n)
  episodes, start = [], 0
  for stop in bounds:
    if stop <= start:
      continue
    sl = slice(start, stop)
    episodes.append(dict(
        observations=np.concatenate([buffer["observations"][sl], buffer["next_observations"][stop - 1:stop]]),
        actions=buffer["actions"][sl], rewards=buffer["rewards"][sl],
        terminations=buffer["terminals"][sl] > 0, truncations=buffer["timeouts"][sl] > 0,
        complete=bool(buffer["terminals"][stop - 1] > 0 or buffer["timeouts"][stop - 1] > 0)))
    start = stop
  return episodes


def select_checkpoints(checkpoints: Sequence[Dict[str, Any]], medium_fraction: float = 1.0 / 3.0):
  """`(medium, expert)`: expert = best eval return (latest on ties); medium = the first
  snapshot whose eval return >= `medium_fraction` x expert's (D4RL's definition).

  Returns are shifted by the worst snapshot's return when it is negative, so the fraction is
  taken of the improvement over the worst policy.
  """
  if not checkpoints:
    raise ValueError("select_checkpoints: `checkpoints` is empty.")
  rets = np.array([c["eval_return"] for c in checkpoints])
  expert_i = int(len(rets) - 1 - np.argmax(rets[::-1]))
  base = min(0.0, float(rets.min()))
  threshold = base + medium_fraction * (rets[expert_i] - base)
  medium_i = int(np.flatnonzero(rets >= threshold)[0])
  return checkpoints[medium_i], checkpoints[expert_i]


def _episode_returns(episodes) -> List[float]:
  return [float(e["rewards"].sum()) for e in episodes]


def _versions() -> Dict[str, str]:
  out = {}
  for name in ("gymnasium", "mujoco", "minari", "jax", "numpy"):
    try:
      out[name] = __import__(name).__version__
    except Exception:  # noqa: BLE001 - a missing optional package is just not recorded
      pass
  return out


def make_datasets(env_id: str, out_dir: str, *, namespace: str = "jaxrl", sac_steps: int = 300_000,
                  dataset_steps: int = 1_000_000, seed: int = 0, kinds: Sequence[str] = DATASET_KINDS,
                  sac_config: SACConfig = SACConfig(), warmup_steps: int = 5000, update_every: int = 50,
                  eval_every: int = 10_000, eval_episodes: int = 5, ref_episodes: int = 10,
                  medium_fraction: float = 1.0 / 3.0, env_kwargs: Optional[dict] = None,
                  log: Callable[[str], None] = print) -> Dict[str, Any]:
  """Trains SAC, builds the requested D4RL-style datasets and saves them as Minari datasets.

  Returns the summary written to `<out_dir>/<namespace>/<env>/reference_scores.json`.
  """
  unknown = [k for k in kinds if k not in DATASET_KINDS]
  if unknown:
    raise ValueError(f"Unknown dataset kind(s) {unknown}; known: {list(DATASET_KINDS)}.")
  import gymnasium as gym
  from flax import serialization

  env_name = env_id.split("-v")[0].lower()
  base_dir = os.path.join(out_dir, namespace, env_name)
  os.makedirs(base_dir, exist_ok=True)
  t0 = time.time()
  needs_sac = any(k != "random" for k in kinds)
  summary: Dict[str, Any] = dict(env_id=env_id, seed=seed, sac_steps=sac_steps, dataset_steps=dataset_steps,
                                 medium_fraction=medium_fraction, versions=_versions(), datasets={},
                                 d4rl_reference=dict(zip(("random", "expert"), D4RL_REF_SCORES.get(env_name, (None, None)))))

  env = gym.make(env_id, **(env_kwargs or {}))
  space = env.action_space
  env.close()
  random_policy = lambda obs, rng: rng.uniform(space.low, space.high).astype(np.float32)
  uniform_act = lambda o, k: np.asarray(jax.random.uniform(k, (o.shape[0],) + space.shape,
                                                           minval=space.low, maxval=space.high))
  random_eval = evaluate_policy(uniform_act, env_id, ref_episodes, seed=seed + 20_000, env_kwargs=env_kwargs)
  ref_min = float(random_eval["return_mean"])
  summary["local_reference"] = dict(random=ref_min, random_std=float(random_eval["returns"].std()))

  episodes_by_kind: Dict[str, list] = {}
  if needs_sac:
    log(f"[make_datasets] training SAC on {env_id} for {sac_steps} steps")
    run = train_sac(env_id, sac_steps, seed=seed, config=sac_config, warmup_steps=warmup_steps,
                    update_every=update_every, eval_every=eval_every, eval_episodes=eval_episodes,
                    env_kwargs=env_kwargs, log_fn=lambda m: log("[sac] " + json.dumps(m)))
    medium_ckpt, expert_ckpt = select_checkpoints(run["checkpoints"], medium_fraction)
    summary["sac_curve"] = [dict(step=c["step"], eval_return=c["eval_return"], eval_std=c["eval_std"])
                            for c in run["checkpoints"]]
    summary["medium_checkpoint"] = dict(step=medium_ckpt["step"], eval_return=medium_ckpt["eval_return"])
    summary["expert_checkpoint"] = dict(step=expert_ckpt["step"], eval_return=expert_ckpt["eval_return"])
    act_dim, hidden = run["act_dim"], sac_config.hidden_dims
    to_env = run["action_to_env"]
    act_jit = jax.jit(lambda p, o, k: sac_act(p, o, k, hidden_dims=hidden, act_dim=act_dim))
    for name, ckpt in (("medium", medium_ckpt), ("expert", expert_ckpt)):
      with open(os.path.join(base_dir, f"sac_actor_{name}.msgpack"), "wb") as f:
        f.write(serialization.to_bytes(ckpt["actor_params"]))

    def stochastic_policy(params):
      def policy(obs, rng):
        k = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
        return to_env(np.asarray(act_jit(params, jnp.asarray(obs[None], jnp.float32), k))[0])
      return policy

    # Expert reference: deterministic evaluation of the expert snapshot over `ref_episodes`.
    det = jax.jit(lambda p, o: sac_act(p, o, None, hidden_dims=hidden, act_dim=act_dim, deterministic=True))
    expert_eval = evaluate_policy(lambda o, k: to_env(np.asarray(det(expert_ckpt["actor_params"], jnp.asarray(o, jnp.float32)))),
                                  env_id, ref_episodes, seed=seed + 30_000, env_kwargs=env_kwargs)
    summary["local_reference"].update(expert=float(expert_eval["return_mean"]),
                                      expert_std=float(expert_eval["returns"].std()))
    if "medium" in kinds or "medium-expert" in kinds:
      episodes_by_kind["medium"] = collect_episodes(stochastic_policy(medium_ckpt["actor_params"]), env_id,
                                                    dataset_steps, seed + 1, env_kwargs)
    if "expert" in kinds or "medium-expert" in kinds:
      episodes_by_kind["expert"] = collect_episodes(stochastic_policy(expert_ckpt["actor_params"]), env_id,
                                                    dataset_steps, seed + 2, env_kwargs)
    if "medium-replay" in kinds:
      episodes_by_kind["medium-replay"] = buffer_to_episodes(run["buffer"].prefix(medium_ckpt["buffer_size"]))
    if "medium-expert" in kinds:
      episodes_by_kind["medium-expert"] = episodes_by_kind["medium"] + episodes_by_kind["expert"]
  if "random" in kinds:
    episodes_by_kind["random"] = collect_episodes(random_policy, env_id, dataset_steps, seed + 3, env_kwargs)

  ref_max = summary["local_reference"].get("expert")
  for kind in kinds:
    eps = episodes_by_kind[kind]
    dataset_id = f"{namespace}/{env_name}/{kind}-v0"
    complete = [e for e in eps if e["complete"]]
    rets = _episode_returns(complete or eps)
    save_minari_dataset(dataset_id, eps, env_id, out_dir, algorithm_name=f"jaxrl_llm SAC ({kind})",
                        ref_min_score=ref_min, ref_max_score=ref_max if ref_max is not None else ref_min + 1.0,
                        env_kwargs=env_kwargs)
    summary["datasets"][kind] = dict(dataset_id=dataset_id, transitions=int(sum(len(e["rewards"]) for e in eps)),
                                     episodes=len(eps), behaviour_return_mean=float(np.mean(rets)),
                                     behaviour_return_std=float(np.std(rets)))
    log(f"[make_datasets] saved {dataset_id}: {summary['datasets'][kind]}")
  summary["elapsed_s"] = time.time() - t0
  with open(os.path.join(base_dir, "reference_scores.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


def tiny_kwargs() -> Dict[str, Any]:
  """Settings of the `--tiny` fixture mode: a few hundred SAC steps, 100-step episodes."""
  return dict(sac_steps=600, dataset_steps=300, sac_config=SACConfig(hidden_dims=(32, 32), batch_size=64),
              warmup_steps=200, update_every=50, eval_every=200, eval_episodes=2, ref_episodes=2,
              env_kwargs=dict(max_episode_steps=100))


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--env", default="Hopper-v5")
  p.add_argument("--out", required=True, help="Minari datasets root (MINARI_DATASETS_PATH)")
  p.add_argument("--namespace", default="jaxrl")
  p.add_argument("--kinds", default=",".join(DATASET_KINDS))
  p.add_argument("--sac-steps", type=int, default=300_000)
  p.add_argument("--dataset-steps", type=int, default=1_000_000)
  p.add_argument("--eval-every", type=int, default=10_000)
  p.add_argument("--eval-episodes", type=int, default=5)
  p.add_argument("--warmup-steps", type=int, default=5000)
  p.add_argument("--init-alpha", type=float, default=1.0)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--tiny", action="store_true", help="seconds-long fixture mode for tests")
  a = p.parse_args(argv)
  kinds = [k for k in a.kinds.split(",") if k]
  if a.tiny:
    kw = tiny_kwargs()
  else:
    kw = dict(sac_steps=a.sac_steps, dataset_steps=a.dataset_steps, eval_every=a.eval_every,
              eval_episodes=a.eval_episodes, warmup_steps=a.warmup_steps,
              sac_config=SACConfig(init_alpha=a.init_alpha))
  summary = make_datasets(a.env, a.out, namespace=a.namespace, seed=a.seed, kinds=kinds, **kw)
  print(json.dumps({k: summary[k] for k in ("local_reference", "d4rl_reference", "datasets", "elapsed_s")}, indent=1))
  return summary


if __name__ == "__main__":
  main(sys.argv[1:])

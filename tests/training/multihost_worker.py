"""One process of the two-process test (tests/training/test_multihost.py); not a test itself.

    python tests/training/multihost_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR

With ``NUM_PROCESSES > 1`` it joins a ``jax.distributed`` job on
``127.0.0.1:PORT`` (through ``sharding.maybe_initialize_distributed``, CPU
collectives over gloo), builds a ``(data, fsdp, tensor) = (2, 2, 2)`` mesh over
the job's devices, and runs one SFT step and one RL prepare + two updates from
process-local rows (``sharding.process_rows`` + ``shard_batch(global_rows=...)``,
i.e. ``jax.make_array_from_process_local_data``), then collects one round of
rollouts on the mesh (each process verifies only its block of rows). Every process saves the RL
state with the Orbax ``Checkpointer`` in ``OUT_DIR/ckpt`` and restores it.
Process 0 writes the gathered results to ``OUT_DIR/results.npz``. The test calls
:func:`compute` in its own (one-process, 8-device) jax for the reference.
"""

import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
  sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

VOCAB = 16
ROWS = 8


def tiny_config():
  from jaxrl_llm import models
  return models.get_preset("tiny-llama", vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                           num_heads=2, num_kv_heads=2, head_dim=8, num_layers=1,
                           pad_token_id=0, bos_token_id=1, eos_token_id=2)


def sft_data(seed=3, b=ROWS, t=7):
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, VOCAB, (b, t)).astype(np.int32)
  attn = np.ones((b, t), np.int32)
  attn[::3, :2] = 0  # some left padding
  tokens = np.where(attn, tokens, 0).astype(np.int32)
  loss_mask = np.zeros((b, t), np.int32)
  loss_mask[:, 3:] = 1
  loss_mask[1, 6] = 0
  return {"tokens": tokens, "attention_mask": attn, "loss_mask": loss_mask}


def rl_data(seed=7, b=ROWS, p=4, n=5, group_size=2):
  from jaxrl_llm import training
  rng = np.random.default_rng(seed)
  prompt_mask = np.ones((b, p), np.int32)
  prompt_mask[::3, :2] = 0
  prompt_tokens = np.where(prompt_mask, rng.integers(3, VOCAB, (b, p)), 0).astype(np.int32)
  lengths = rng.integers(1, n + 1, b)
  completion_mask = (np.arange(n)[None] < lengths[:, None]).astype(np.int32)
  completion_tokens = np.where(completion_mask, rng.integers(3, VOCAB, (b, n)), 0).astype(np.int32)
  rewards = rng.integers(0, 2, b).astype(np.float32)
  rewards[:2] = [1.0, 0.0]
  return training.make_rollout_batch(
      prompt_tokens, prompt_mask, completion_tokens, completion_mask,
      rng.normal(-2.0, 0.1, (b, n)).astype(np.float32) * completion_mask, rewards,
      group_size=group_size)


def local_rows(tree, rows: slice):
  import jax
  return jax.tree.map(lambda x: np.asarray(x)[rows], tree)


def compute(ckpt_dir=None):
  """SFT and RL results on a (2, 2, 2) mesh over all of this job's devices.

  Returns ``(results, rl_state, mesh)``; ``results`` holds NumPy arrays only
  (gathered from every process). With ``ckpt_dir`` the RL state is saved there
  by every process and restored (``results["restored_equal"]``).
  """
  import jax
  import optax

  from jaxrl_llm import models, sharding, training
  from jaxrl_llm.runs.checkpoint import Checkpointer

  config = tiny_config()
  params = models.init_params(config, jax.random.key(0))  # same key: same params everywhere
  # Plain SGD: a step moves each weight by lr * gradient, so equal params = equal gradients.
  opt = optax.sgd(0.5)
  mesh = sharding.make_mesh(data=2, fsdp=2, tensor=2)
  out = {}
  with jax.set_mesh(mesh):
    sp = sharding.shard_params(params, config, mesh)
    rows = sharding.process_rows(mesh, ROWS)
    out["rows"] = np.array([rows.start, rows.stop])

    sft = jax.jit(training.make_sft_step(config, opt, num_micro_batches=2, mesh=mesh))
    batch = sharding.shard_batch(local_rows(sft_data(), rows), mesh, global_rows=ROWS)
    state, m = sft(training.init_train_state(sp, opt), batch)
    out["sft_loss"] = np.asarray(m["loss"])
    for i, leaf in enumerate(jax.tree.leaves(sharding.to_host(state.params))):
      out[f"sft_param_{i}"] = leaf

    step = training.make_rl_step(config, opt, group_size=2, loss="ppo", advantage="grpo",
                                 kl="k3", kl_coef=0.05, num_micro_batches=2, mesh=mesh)
    rb = sharding.shard_batch(local_rows(rl_data(), rows), mesh, global_rows=ROWS)
    prepared, _ = jax.jit(step.prepare)(training.init_train_state(sp, opt), rb, sp)
    update = jax.jit(step.update)
    rl_state, _ = update(training.init_train_state(sp, opt), prepared)
    rl_state, m = update(rl_state, prepared)  # second update: ratio != 1
    out["rl_loss"] = np.asarray(m["loss"])
    for i, leaf in enumerate(jax.tree.leaves(sharding.to_host(rl_state.params))):
      out[f"rl_param_{i}"] = leaf

    # Rollouts on the same mesh: sampled on it, the completion tokens all-gathered, each
    # process runs the verifier on its own block of rows only (rollout.score).
    from jaxrl_llm import data
    from jaxrl_llm.models import CharTokenizer
    from jaxrl_llm.training import rollout
    scored = []

    def reward_fn(text, example):  # any deterministic function of (text, example)
      scored.append(text)
      return float(len(text)) + float(text[:1] == example.answer[:1])

    ro = rollout.collect_rollouts(
        config, sharding.shard_params(params, config, mesh, sharding.SAMPLING_RULES),
        CharTokenizer("0123456789+-="), data.ArithmeticTask(digits=1), data.DataPosition(0, 0),
        reward_fn, jax.random.key(5), num_prompts=4, group_size=2, max_new_tokens=4, mesh=mesh)
    out["rollout_tokens"] = rollout.host_read(ro.batch.completion_tokens)
    out["rollout_rewards"] = np.asarray(ro.task_rewards)
    out["rollout_batch_rewards"] = rollout.host_read(ro.batch.rewards)
    out["rollout_scored_rows"] = np.asarray(len(scored))

    if ckpt_dir is not None:
      ckpt = Checkpointer(ckpt_dir, every=1)
      ckpt.save(1, rl_state, {"step": 1}, force=True)
      ckpt.close()
      ckpt = Checkpointer(ckpt_dir, every=1)
      restored, meta = ckpt.restore(1, rl_state)
      ckpt.close()
      same = all(np.array_equal(a, b) for a, b in zip(
          jax.tree.leaves(sharding.to_host(restored)), jax.tree.leaves(sharding.to_host(rl_state))))
      out["restored_equal"] = np.asarray(same and meta == {"step": 1})
      out["restored_sharded_like_saved"] = np.asarray(all(
          a.sharding == b.sharding for a, b in zip(jax.tree.leaves(restored),
                                                  jax.tree.leaves(rl_state))))
  return out, rl_state, mesh


def main(argv):
  process_id, num_processes, port, out_dir = int(argv[1]), int(argv[2]), int(argv[3]), argv[4]
  from jaxrl_llm import sharding
  started = sharding.maybe_initialize_distributed(
      num_processes > 1, coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes,
      process_id=process_id, initialization_timeout=60,
      # CI machines are oversubscribed (2 cores, other tests beside): a process starved
      # of CPU for a while is not dead; the test's own deadline stops a real hang.
      heartbeat_timeout_seconds=600)
  import jax
  print(f"process {jax.process_index()}/{jax.process_count()}: distributed={started}, "
        f"{jax.local_device_count()} local / {jax.device_count()} devices", flush=True)
  if jax.process_count() != num_processes or jax.device_count() != 8:
    raise SystemExit(f"expected {num_processes} processes and 8 devices, got "
                     f"{jax.process_count()} and {jax.device_count()}")
  out, _, _ = compute(os.path.join(out_dir, "ckpt"))
  out["process_count"] = np.asarray(jax.process_count())
  np.savez(os.path.join(out_dir, f"results_{process_id}.npz"), **out)
  print(f"process {process_id}: done", flush=True)


if __name__ == "__main__":
  main(sys.argv)

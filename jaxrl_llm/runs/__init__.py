"""Run bookkeeping shared by every training loop: checkpoints, metric logs, the workdir rule.

  checkpoint.py  Checkpointer: Orbax (state pytree + JSON metadata), atomic commits
  metrics.py     MetricWriter: JSONL always, TensorBoard and Weights & Biases when asked
  workdir.py     claim_workdir / open_run: refuse, resume or overwrite a used workdir
  host_memory.py keep_freed_host_memory: glibc keeps XLA:CPU's freed per-call buffers
  cpu_devices.py split_cpu_devices: the CPU as n JAX devices (data-parallel streams)

Both the LLM loops (``jaxrl_llm.training``) and the offline agents' loop
(``jaxrl_llm.offline.train``) import it, so it imports no other ``jaxrl_llm``
package (only jax / orbax / numpy, and tensorboardX / wandb / matplotlib where
used): in DESIGN.md's layering it sits beside ``models, sharding``, below both.
``jaxrl_llm.training.checkpoint`` and ``jaxrl_llm.training.metrics`` re-export it.
"""

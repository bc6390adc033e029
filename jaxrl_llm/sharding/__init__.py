"""Meshes, logical-axis rules, and placement of params and batches."""

from jaxrl_llm.sharding.mesh import (
    DISTRIBUTED_ENV,
    MESH_AXES,
    batch_sharding,
    is_main_process,
    logical_sharding,
    make_mesh,
    maybe_initialize_distributed,
    param_shardings,
    process_rows,
    shard_batch,
    shard_params,
    to_host,
    tree_shardings,
)
from jaxrl_llm.sharding.rules import (
    SAMPLING_RULES,
    TRAIN_RULES,
    logical_to_mesh_axes,
    rules_dict,
)

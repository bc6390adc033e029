"""Training: step builders (SFT, RL), gradient accumulation, optimiser, state,
checkpoints, rollouts and metric logging."""

from jaxrl_llm.training.accumulate import accumulate_gradients, split_micro_batches
from jaxrl_llm.training.logprobs import (TokenLogprobs, completion_logprobs, prompts_shared,
                                         sequence_logprobs)
from jaxrl_llm.training.optim import make_optimizer, make_schedule
from jaxrl_llm.training.batch import (RolloutBatch, check_rollout_batch, make_rollout_batch,
                                      place_batch, take_rows)
from jaxrl_llm.training.rl import RLStep, make_rl_step, raise_if_prompts_unshared
from jaxrl_llm.training.sft import SFT_BATCH_KEYS, make_sft_step, sft_batch
from jaxrl_llm.training import rollout  # sampling + scoring of RL batches (a module)
from jaxrl_llm.training.state import (TrainState, init_train_state, init_value_head,
                                      value_head_apply)

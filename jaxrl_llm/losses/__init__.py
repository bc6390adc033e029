"""Pure RL objectives for language models: policy-gradient losses, advantage
estimators, divergences, aggregation, preference losses and DAPO data pieces.

Everything here takes arrays (log-probs, masks, advantages, rewards), never a
model: ``losses`` must not import ``jaxrl_llm.models`` (DESIGN.md layering).
Losses return :class:`LossOutput` ``(total, count, metrics)``; the loss is
``safe_mean(total, count)``.
"""

from jaxrl_llm.losses import advantages
from jaxrl_llm.losses.a_lol import A_LOL_VARIANTS, a_lol_loss, positive_advantage_sampler
from jaxrl_llm.losses.advantages import (
    AdvantageInputs,
    AdvantageOutput,
    discounted_returns,
    dr_grpo_advantages,
    gae_advantages,
    gpg_advantages,
    group_stats,
    grpo_advantages,
    grpo_passk_advantages,
    lite_ppo_advantages,
    opo_advantages,
    reinforce_plus_plus_advantages,
    reinforce_plus_plus_baseline_advantages,
    rloo_advantages,
)
from jaxrl_llm.losses.aggregation import (
    AGGREGATION_MODES,
    aggregate,
    masked_mean,
    masked_sum,
    masked_var,
    masked_whiten,
    safe_mean,
)
from jaxrl_llm.losses.dapo import dynamic_sampling_filter, overlong_penalty, overlong_shaping
from jaxrl_llm.losses.divergences import (
    entropy_from_logits,
    f_divergence,
    f_generator,
    forward_kl_estimate,
    kl_divergence,
    kl_from_logits,
)
from jaxrl_llm.losses.importance import truncated_importance_weights
from jaxrl_llm.losses.laser import laser_loss, self_reward_mse, self_reward_scores
from jaxrl_llm.losses.rapo import rapo_loss, rapo_phi
from jaxrl_llm.losses.pacs import pacs_class_weights, pacs_loss, pacs_psi, pacs_score
from jaxrl_llm.losses.rover import rover_clip_q, rover_loss, rover_next_values, rover_q_values
from jaxrl_llm.losses.policy import (
    cispo_policy_loss,
    clip_cov_policy_loss,
    gmpo_policy_loss,
    gpg_policy_loss,
    gspo_policy_loss,
    kl_cov_policy_loss,
    pg_clip_metrics,
    ppo_policy_loss,
    reinforce_loss,
    sapo_policy_loss,
    sequence_log_ratio,
)
from jaxrl_llm.losses.pear import PEAR_WEIGHT_MODES, pear_sft_loss, pear_weights
from jaxrl_llm.losses.preference import (
    PREFERENCE_LOSSES,
    PreferenceLoss,
    dpo_loss,
    get_preference_loss,
    inpo_loss,
    kto_loss,
    orpo_loss,
    simpo_loss,
)
from jaxrl_llm.losses.rl_plus import grpo_split_advantages, mis_ratio, rl_plus_loss
from jaxrl_llm.losses.process_rewards import (
    PROCESS_SHAPINGS,
    TOKEN_REWARDS_KEY,
    clip_delta_process_rewards,
    clip_process_rewards,
    delta_process_rewards,
    place_token_rewards,
    shape_process_rewards,
)
from jaxrl_llm.losses.prof import (
    PROF_VARIANTS,
    prof_process_scores,
    prof_select,
    prof_split,
    step_score_stats,
)
from jaxrl_llm.losses.registry import (
    POLICY_INPUTS,
    AdvantageEstimator,
    PolicyLoss,
    check_options,
    get_advantage_estimator,
    get_kl,
    get_policy_loss,
    get_policy_loss_entry,
    get_reward_shaping,
    terminal_rewards,
)
from jaxrl_llm.losses.types import LossOutput
from jaxrl_llm.losses.value import clipped_value_loss

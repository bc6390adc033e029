"""Verifiable rewards on host strings: final-answer extraction, exact numeric
equivalence, symbolic equivalence (math-verify in a time-bounded worker), a Countdown expression checker (own parser, never ``eval``),
format rewards, a name registry and a batched helper.

Every reward is ``fn(completion: str, example) -> float`` and is total: any
completion string (huge, deeply nested, Unicode, NaN-like) gets a float in
time linear in its length, plus at most ``SYMBOLIC_TIMEOUT_S`` for a symbolic
comparison (``math`` / ``gsm8k``, only when an answer is not a plain number). ``example`` is a ``jaxrl_llm.data.Example``, a
mapping, or (answer rewards) the bare reference answer. Plain Python; no
import of ``jaxrl_llm.models``, ``training`` or ``sampling``.

Typical use::

  fn = get_reward_fn("arithmetic")
  rewards = batch_rewards(fn, completions, examples, group_size=8)   # float32 [B]
"""

from jaxrl_llm.rewards.answers import (
    countdown_reward,
    countdown_use_all_reward,
    exact_answer_reward,
    extract_countdown_expression,
    math_answer_reward,
)
from jaxrl_llm.rewards.calibration import (
    RLCR_MODES,
    TABC_INSTRUCTION,
    TabcParse,
    calibration_summary,
    parse_tabc,
    rlcr_code_reward,
    rlcr_reward,
)
from jaxrl_llm.rewards.countdown import (
    MAX_DEPTH,
    MAX_EXPRESSION_CHARS,
    CountdownCheck,
    check_countdown,
    evaluate_countdown_expression,
)
from jaxrl_llm.rewards.equivalence import (
    MAX_NUMBER_CHARS,
    answers_match,
    normalize_answer_text,
    parse_number,
)
from jaxrl_llm.rewards.extraction import (
    EXTRACTORS,
    extract_answer_tag,
    extract_boxed,
    extract_final_answer,
    extract_hash_answer,
    extract_last_number,
)
from jaxrl_llm.rewards.format import (
    answer_present_reward,
    answer_tag_format_reward,
    boxed_format_reward,
)
from jaxrl_llm.rewards.symbolic import (
    MAX_SYMBOLIC_CHARS,
    SYMBOLIC_TIMEOUT_S,
    SymbolicVerifier,
    SymbolicVerifierError,
    default_verifier,
)
from jaxrl_llm.rewards.process import (
    MAX_STEPS,
    STEP_SCORERS,
    Step,
    countdown_step_scores,
    equation_step_scores,
    get_step_scorer,
)
from jaxrl_llm.rewards.registry import (
    REWARD_FNS,
    RewardFn,
    batch_rewards,
    get_reward_fn,
    weighted_reward_fn,
)

__all__ = [
    "EXTRACTORS", "MAX_DEPTH", "MAX_EXPRESSION_CHARS", "MAX_NUMBER_CHARS", "MAX_SYMBOLIC_CHARS",
    "REWARD_FNS", "SYMBOLIC_TIMEOUT_S", "CountdownCheck", "RewardFn", "SymbolicVerifier",
    "SymbolicVerifierError", "default_verifier", "answer_present_reward", "answer_tag_format_reward",
    "answers_match", "batch_rewards", "boxed_format_reward", "check_countdown",
    "countdown_reward", "countdown_use_all_reward", "evaluate_countdown_expression",
    "exact_answer_reward", "extract_answer_tag", "extract_boxed", "extract_countdown_expression",
    "extract_final_answer", "extract_hash_answer", "extract_last_number", "get_reward_fn",
    "math_answer_reward", "normalize_answer_text", "parse_number", "weighted_reward_fn",
    "RLCR_MODES", "TABC_INSTRUCTION", "TabcParse", "calibration_summary", "parse_tabc",
    "rlcr_code_reward", "rlcr_reward",
    "MAX_STEPS", "STEP_SCORERS", "Step", "countdown_step_scores", "equation_step_scores",
    "get_step_scorer",
]

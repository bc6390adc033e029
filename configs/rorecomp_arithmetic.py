"""RoRecomp ("Rollout Response Recomposition", Tencent Youtu, arXiv 2509.25958; spec section
16, SECONDARY: abstract and summaries) on 2-digit addition, from the SFT checkpoint of
configs/sft_arithmetic.py.

Rollout method ``"rorecomp"`` (training/recomposition.py): of each fresh group only the
*priority* responses get a loss now: correct ones shorter than the group's median length
and incorrect ones longer than it (this rule is this implementation's: the paper's exact
thresholds are not verified); the group, with its *compensation* rows marked, goes to a
replay buffer (``capacity`` groups, JSON in the method state) and ``replay_groups`` of
the oldest are appended to later batches with the loss on their compensation rows only.
Groups stay whole (the advantage sees all of a group's rewards) and the batch keeps
``rl.batch_size`` rows (``num_prompts - k`` fresh + ``k`` replayed groups). Rewards are
unchanged. GRPO, n = 8, temperature 1.0. Logged: ``train/rorecomp_priority_frac``,
``train/rorecomp_buffer_groups``, ``train/rorecomp_replay_groups``, ...
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/rorecomp_arithmetic"
  c.sampling.temperature = 1.0
  c.rl.group_size = 8
  c.rl.advantage = "grpo"
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.rollout_method = "rorecomp"
  c.rl.rollout_method_kwargs = ConfigDict({"replay_groups": 8, "capacity": 64,
                                           "correct_threshold": 1.0, "skip_uniform": True})
  return c

"""Clip-Delta process rewards (Gao et al. 2024, "On Designing Effective RL Reward at
Training Time", arXiv 2410.15115) with PPO + GAE on Countdown, from the SFT checkpoint
of configs/sft_countdown.py.

The batch augmenter ``process_reward`` scores each completion's steps, one equation
``a op b = c`` per line, with the rule-based scorer ``countdown_steps`` (1 if the
equation is right and uses numbers still available, else 0; rewards/process.py: a
verifiable stand-in for a PRM, there is no learned PRM here), shapes them with
Clip-Delta (``rt_k = c_k - c_{k+1}``, ``c_k = min(r_k - eta, 0)``, ``rt_K = 0``;
``shaping`` may be ``none`` / ``clip`` / ``delta``; eta = 0.5 is our choice for {0, 1}
scores, the paper's value is unverified) and writes them at the step-end tokens, with
the Countdown outcome at the final token, to ``extras['token_rewards']``. The advantage
``gae_token`` is GAE over those token rewards with the value head (``reinforce_plus_plus_token``
is the critic-free option). PPO settings follow configs/ppo_arithmetic.py.

The SFT Countdown model writes one expression per answer (no ``=`` lines), so its
completions have no scored steps and the reward is the outcome alone until the policy
writes intermediate equations; ``max_new_tokens`` leaves room for two of them.

    python experiments/rl.py --config=configs/clip_delta_countdown.py
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic, sft_countdown


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/clip_delta_countdown"
  c.init_from = "/tmp/jaxrl_llm/sft_countdown"
  sft_countdown.set_countdown_task(c.task)
  c.sampling.max_new_tokens = 24
  c.rl.batch_augment = "process_reward"
  c.rl.batch_augment_kwargs = ConfigDict({"scorer": "countdown_steps", "shaping": "clip_delta",
                                          "eta": 0.5, "step_coef": 1.0, "outcome_coef": 1.0,
                                          "max_steps": 16})
  c.rl.advantage = "gae_token"
  c.rl.advantage_kwargs = ConfigDict({"whiten": True})
  c.rl.group_size = 1
  c.rl.ppo_epochs = 2
  c.rl.num_minibatches = 2
  c.rl.value_coef = 0.5
  c.rl.value_clip = 0.2
  c.rl.gamma = 1.0
  c.rl.lam = 0.95
  c.rl.kl = "k3"
  c.rl.kl_coef = 0.01
  return c

"""PPO (Schulman et al. 2017) with a value head on the policy trunk and GAE
(Schulman et al. 2016); several epochs over each rollout batch."""

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/ppo_arithmetic"
  c.rl.advantage = "gae"
  c.rl.advantage_kwargs = {"whiten": True}
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

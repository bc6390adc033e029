"""SFT of a tiny character-level Llama on Countdown (3 numbers <= 10, target <= 100,
operators +-*): the reference solutions. configs/dapo_countdown.py starts from it.

    python experiments/sft.py --config=configs/sft_countdown.py
    python experiments/rl.py --config=configs/dapo_countdown.py
"""

from configs import sft_arithmetic


def set_countdown_task(task):
  """The Countdown setting shared with configs/dapo_countdown.py (RL must see SFT's task)."""
  task.name = "countdown"
  task.reward = "countdown"
  task.num_numbers = 3
  task.max_number = 10
  task.max_target = 100
  task.operators = "+-*"
  return task


def get_config():
  c = sft_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/sft_countdown"
  set_countdown_task(c.task)
  c.max_length = 32  # BOS + "[10,10,10]->100:" + a solution such as "10*10-10" + EOS
  c.max_new_tokens = 12
  return c

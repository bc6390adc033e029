"""SFT of a tiny character-level Llama on Countdown (3 numbers <= 10, target <= 100,
operators +-*): the reference solutions. configs/dapo_countdown.py starts from it.

    python experiments/sft.py --config=configs/sft_countdown.py
    python experiments/rl.py --config=configs/dapo_countdown.py
"""

from configs import sft_arithmetic


def get_config():
  c = sft_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/sft_countdown"
  c.task.name = "countdown"
  c.task.reward = "countdown"
  c.task.num_numbers = 3
  c.task.max_number = 10
  c.task.max_target = 100
  c.task.operators = "+-*"
  c.max_length = 32  # BOS + "[10,10,10]->100:" + a solution such as "10*10-10" + EOS
  c.max_new_tokens = 12
  return c

"""LIMR (Li et al. 2025, "LIMR: Less is More for RL Scaling", arXiv 2502.11886) on 2-digit
addition, from the SFT checkpoint of configs/sft_arithmetic.py.

Three stages (spec: rlvr_methods.md section 18, ``GAIR-NLP/LIMR`` ``lim/lim_selection.py``):

1. ``--config=configs/limr_arithmetic.py:history``: RL on a finite training set
   (``task.pool_size`` = 256 examples, reshuffled every epoch) that logs every example's
   accuracy each time it is drawn (``rl.accuracy_log``, data/one_shot.py's format);
2. select (``s_i >= theta = 0.6`` of the Learning Impact Measurement,
   data/selection.py) and write the kept examples as a JSONL::

       python experiments/limr_select.py --config=configs/limr_arithmetic.py:history \\
           --out=/tmp/jaxrl_llm/limr/selected.jsonl

3. ``--config=configs/limr_arithmetic.py`` (default): RL on the selected examples
   (``task.train_examples``; set it to the file of step 2).

The official run uses PPO (OpenRLHF, GAE, critic lr 9e-6) with rewards +1 / -0.5 / -1,
temperature 1.2, n = 8 on Qwen2.5-Math-7B; here the RL stage is the GRPO recipe of
configs/grpo_arithmetic.py (group 8, temperature 1.2), the selection the paper's.
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic

VARIANTS = ("", "history")


def get_config(variant: str = ""):
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; known: {VARIANTS}")
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/limr" + (f"_{variant}" if variant else "")
  c.sampling.temperature = 1.2
  c.rl.group_size = 8
  c.rl.accuracy_log = ""
  # LIMR selection (experiments/limr_select.py): theta, K epochs (0: all), and the epoch
  # definition (0: an example's e-th appearance; S > 0: S steps per epoch, as the
  # official script's 8).
  c.limr = ConfigDict({"theta": 0.6, "num_epochs": 0, "steps_per_epoch": 0,
                       "log": "example_accuracy.jsonl"})
  if variant == "history":
    c.task.pool_size = 256   # the finite set the log's indices refer to
    c.task.pool_seed = 0
    c.rl.accuracy_log = c.limr.log
  else:
    c.task.train_examples = "/tmp/jaxrl_llm/limr/selected.jsonl"
  return c

"""GRPO on GSM8K from a real Hugging Face checkpoint (e.g. Qwen2.5-0.5B-Instruct), for an accelerator.

    python experiments/rl.py --config=configs/grpo_qwen_gsm8k.py \
        --config.model.hf_dir=/ckpt/Qwen2.5-0.5B-Instruct --config.task.path=/data/gsm8k_train.jsonl \
        --config.task.test_path=/data/gsm8k_test.jsonl --config.mesh="(1, -1, 1)"

Nothing is downloaded: both paths must exist locally.
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/grpo_qwen_gsm8k"
  c.init_from = ""
  c.model = ConfigDict({"preset": "", "hf_dir": "", "overrides": ConfigDict()})
  c.task = ConfigDict({
      "name": "jsonl", "path": "", "test_path": "", "reward": "gsm8k", "add_bos": False,
      "prompt_template": "Question: {question}\nAnswer step by step and end with "
                         "'#### <number>'.\nAnswer:",
      "digits": 2, "min_digits": 1, "operators": "+", "test_fraction": 0.1,
      "num_numbers": 3, "max_number": 10, "max_target": 100})
  c.mesh = (1, -1, 1)  # (data, fsdp, tensor): FSDP over every device
  c.sampling = ConfigDict({"max_new_tokens": 512, "temperature": 1.0, "top_p": 1.0})
  c.rl.loss_kwargs = {"clip_low": 0.2, "clip_high": 0.28, "agg_mode": "token-mean"}
  c.rl.kl = "k3"
  c.rl.kl_coef = 0.001
  c.rl.group_size = 8
  c.rl.batch_size = 256
  c.rl.num_minibatches = 4
  c.rl.num_micro_batches = 4
  c.rl.tis_cap = 2.0  # truncated IS against sampler/trainer mismatch
  c.optim = ConfigDict({"learning_rate": 1e-6, "warmup_steps": 10, "end_factor": 0.1,
                        "weight_decay": 0.0, "max_grad_norm": 1.0})
  c.steps = 200
  c.eval_every = 25
  c.eval_size = 256
  c.checkpoint_every = 25
  return c

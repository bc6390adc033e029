"""DPH-RL (Li et al. 2025, "The Choice of Divergence", arXiv 2509.07430) on arithmetic:
RL on D_exp (problems the SFT model does not solve 8/8) with the PPO clip-higher loss,
plus an f-divergence (forward KL by default) on stored base-model samples of D_pef.

    python experiments/dph_rl_claim.py --stage=presample --workdir=/tmp/jaxrl_llm/dph_rl \
        --init_from=/tmp/jaxrl_llm/sft_arithmetic --task=arithmetic   # writes the two files
    python experiments/rl.py --config=configs/dph_rl_arithmetic.py

The rehearsal file (``rl.batch_augment_kwargs.path``) and the D_exp prompts
(``task.train_examples``) are written by the pre-sampling stage
(``training.presample.presample`` + ``data.rehearsal.save_rehearsal`` / ``save_examples``).
"""

from ml_collections import ConfigDict

from configs import grpo_arithmetic

DIVERGENCES = ("forward_kl", "js", "alpha")


def apply_dph_rl(c, *, rehearsal_path: str, exp_path: str, divergence: str = "forward_kl",
                 eta: float = 0.01, rehearsal_rows: int = 64):
  """Turns an RL config into DPH-RL: loss ``dph_rl``, the ``rehearsal`` augmenter, D_exp
  prompts, no reference KL (DPH-RL's forward / JS modes use none on RL rows)."""
  c.rl.loss = "dph_rl"
  c.rl.loss_kwargs = ConfigDict({"divergence": divergence, "eta": eta, "clip_low": 0.2,
                                 "clip_high": 0.28, "mix": "tokens"})
  c.rl.kl = ""
  c.rl.kl_coef = 0.0
  c.rl.batch_augment = "rehearsal"
  c.rl.batch_augment_kwargs = ConfigDict({"path": rehearsal_path,
                                          "rehearsal_rows": rehearsal_rows})
  c.task.train_examples = exp_path
  # One optimiser step per rollout batch (the rehearsal rows ride along whole).
  c.rl.ppo_epochs = 1
  c.rl.num_minibatches = 1
  return c


def get_config():
  c = grpo_arithmetic.get_config()
  c.workdir = "/tmp/jaxrl_llm/dph_rl_arithmetic"
  c.init_from = "/tmp/jaxrl_llm/sft_arithmetic"
  root = "/tmp/jaxrl_llm/dph_rl"
  # 32 prompts x 16 completions + 64 rehearsal rows (DPH-RL: 128 x 16 + 256, ratio 1:8).
  c.rl.batch_size = 512
  c.rl.group_size = 16
  # eta: DPH-RL's README gives 0.01-0.05 (forward KL) and 0.05-0.2 (JS) for an 8B model
  # at lr 1e-6; configs for this tiny model at lr 5e-4 may need other values.
  apply_dph_rl(c, rehearsal_path=f"{root}/rehearsal.npz", exp_path=f"{root}/d_exp.jsonl",
               divergence="forward_kl", eta=0.01, rehearsal_rows=64)
  return c

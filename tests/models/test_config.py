"""Presets and config.json parsing."""

import json

import pytest

from jaxrl_llm import models
from jaxrl_llm.models import ModelConfig

# Published total parameter counts (model cards), in billions.
PUBLISHED_BILLIONS = {
    "llama-3.2-1b": 1.24,
    "qwen2.5-0.5b": 0.49,
    "qwen2.5-1.5b": 1.54,
    "qwen2.5-7b": 7.61,
    "qwen3-0.6b": 0.60,
    "qwen3-1.7b": 1.72,  # card: 1.7B
    "qwen3-8b": 8.19,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_BILLIONS))
def test_real_presets_have_published_parameter_counts(name):
  config = models.get_preset(name)
  assert config.num_params() / 1e9 == pytest.approx(PUBLISHED_BILLIONS[name], rel=0.03)


def test_param_count_matches_init():
  import jax
  for name in ("tiny-llama", "tiny-qwen2", "tiny-qwen3"):
    c = models.get_preset(name)
    shapes = models.param_shapes(c)
    assert sum(x.size for x in jax.tree.leaves(shapes)) == c.num_params()


def test_hf_dict_round_trip_and_legacy_rope_keys():
  for name in models.list_presets():
    c = models.get_preset(name)
    assert ModelConfig.from_hf_dict(json.loads(json.dumps(c.to_hf_dict()))) == c
  legacy = dict(models.presets.HF_CONFIGS["llama-3.2-1b"])
  assert "rope_scaling" in legacy and "rope_parameters" not in legacy
  assert ModelConfig.from_hf_dict(legacy).rope_scaling.factor == 32.0


def test_bad_configs_name_the_problem():
  with pytest.raises(ValueError, match="unknown model preset 'gpt-5'"):
    models.get_preset("gpt-5")
  base = dict(models.presets.HF_CONFIGS["tiny-llama"])
  with pytest.raises(ValueError, match="missing required field 'hidden_size'"):
    ModelConfig.from_hf_dict({k: v for k, v in base.items() if k != "hidden_size"})
  with pytest.raises(ValueError, match="rope type 'yarn'"):
    ModelConfig.from_hf_dict({**base, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})
  with pytest.raises(ValueError, match="multiple of num_kv_heads"):
    ModelConfig.from_hf_dict({**base, "num_key_value_heads": 3})

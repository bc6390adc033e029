"""Character and Hugging Face tokenizers: round trips and left padding."""

import json

import numpy as np
import pytest

from jaxrl_llm.models import CharTokenizer, HFTokenizer


def test_char_tokenizer_round_trip_and_left_padding():
  tok = CharTokenizer("0123456789+=")
  assert tok.vocab_size == 15
  assert tok.encode("12+3", add_bos=True, add_eos=True) == [1, 4, 5, 13, 6, 2]
  tokens, mask = tok.batch_encode(["1+1=", "12+34="])
  np.testing.assert_array_equal(tokens, [[0, 0, 1, 4, 13, 4, 14], [1, 4, 5, 13, 6, 7, 14]])
  np.testing.assert_array_equal(mask, [[0, 0, 1, 1, 1, 1, 1], [1] * 7])
  assert tok.batch_decode(tokens) == ["1+1=", "12+34="]
  assert tok.decode([4, 5, 2, 6]) == "12"  # stops at EOS
  with pytest.raises(ValueError, match="character 'x' at position 1"):
    tok.encode("1x")
  with pytest.raises(ValueError, match="more than length=3"):
    tok.batch_encode(["12345"], length=3)
  with pytest.raises(ValueError, match="empty batch"):
    tok.batch_encode([])


def test_hf_tokenizer_from_local_directory(tmp_path):
  from tokenizers import Tokenizer, models, pre_tokenizers
  vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "hello": 4, "world": 5, "!": 6}
  t = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
  t.pre_tokenizer = pre_tokenizers.Whitespace()
  t.save(str(tmp_path / "tokenizer.json"))
  json.dump({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "pad_token": "<pad>"},
            open(tmp_path / "tokenizer_config.json", "w"))
  tok = HFTokenizer(tmp_path)
  assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size) == (1, 2, 0, 7)
  assert tok.encode("hello world !", add_bos=True, add_eos=True) == [1, 4, 5, 6, 2]
  tokens, mask = tok.batch_encode(["hello", "hello world"], add_bos=True)
  np.testing.assert_array_equal(tokens, [[0, 1, 4], [1, 4, 5]])
  np.testing.assert_array_equal(mask, [[0, 1, 1], [1, 1, 1]])
  assert tok.decode([4, 5, 2, 4]) == "hello world"
  with pytest.raises(FileNotFoundError, match="missing tokenizer.json"):
    HFTokenizer(tmp_path / "nope")

"""Tokenizers with one interface: ``encode``, ``batch_encode`` (left padding), ``decode``.

`CharTokenizer` is for synthetic tasks (arithmetic, countdown); `HFTokenizer`
wraps a local Hugging Face ``tokenizer.json`` (the `tokenizers` library, no
network).
"""

from __future__ import annotations

import json
import os
from typing import Iterable, Optional, Sequence

import numpy as np


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int,
             length: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
  """Stacks token lists into ``tokens [B, T]`` and ``mask [B, T]``, padded on the left.

  ``length`` defaults to the longest sequence; a longer sequence is an error
  (never silently truncated).
  """
  if len(sequences) == 0:
    raise ValueError("batch_encode: empty batch")
  longest = max(len(s) for s in sequences)
  length = longest if length is None else length
  if longest > length:
    raise ValueError(f"batch_encode: a sequence has {longest} tokens, more than length={length}")
  tokens = np.full((len(sequences), length), pad_id, dtype=np.int32)
  mask = np.zeros((len(sequences), length), dtype=np.int32)
  for i, s in enumerate(sequences):
    if len(s):
      tokens[i, length - len(s):] = s
      mask[i, length - len(s):] = 1
  return tokens, mask


class CharTokenizer:
  """One token per character of a fixed alphabet, plus PAD=0, BOS=1, EOS=2."""

  PAD, BOS, EOS = 0, 1, 2
  SPECIALS = ("<pad>", "<bos>", "<eos>")
  DEFAULT_ALPHABET = "0123456789+-*/=()<>[]{}.,:;?! abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\n"

  def __init__(self, alphabet: str = DEFAULT_ALPHABET):
    if len(set(alphabet)) != len(alphabet):
      raise ValueError("CharTokenizer: alphabet has repeated characters")
    self.alphabet = alphabet
    self._to_id = {ch: i + len(self.SPECIALS) for i, ch in enumerate(alphabet)}
    self.pad_id, self.bos_id, self.eos_id = self.PAD, self.BOS, self.EOS

  @property
  def vocab_size(self) -> int:
    return len(self.SPECIALS) + len(self.alphabet)

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    ids = []
    for pos, ch in enumerate(text):
      if ch not in self._to_id:
        raise ValueError(f"CharTokenizer: character {ch!r} at position {pos} is not in the alphabet")
      ids.append(self._to_id[ch])
    return ([self.BOS] if add_bos else []) + ids + ([self.EOS] if add_eos else [])

  def batch_encode(self, texts: Sequence[str], add_bos: bool = True, add_eos: bool = False,
                   length: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    return left_pad([self.encode(t, add_bos, add_eos) for t in texts], self.pad_id, length)

  def decode(self, ids: Iterable[int], skip_special: bool = True, stop_at_eos: bool = True) -> str:
    out = []
    for i in ids:
      i = int(i)
      if stop_at_eos and i == self.EOS:
        break
      if i < len(self.SPECIALS):
        if not skip_special:
          out.append(self.SPECIALS[i])
        continue
      if i >= self.vocab_size:
        raise ValueError(f"CharTokenizer: id {i} is outside the vocabulary ({self.vocab_size})")
      out.append(self.alphabet[i - len(self.SPECIALS)])
    return "".join(out)

  def batch_decode(self, ids, **kwargs) -> list[str]:
    return [self.decode(row, **kwargs) for row in np.asarray(ids)]


class HFTokenizer:
  """A local Hugging Face tokenizer directory (``tokenizer.json`` [+ ``tokenizer_config.json``])."""

  def __init__(self, path: str | os.PathLike, bos_token: Optional[str] = None,
               eos_token: Optional[str] = None, pad_token: Optional[str] = None):
    from tokenizers import Tokenizer  # imported here: only this class needs it
    path = os.fspath(path)
    file = path if path.endswith(".json") else os.path.join(path, "tokenizer.json")
    if not os.path.isfile(file):
      raise FileNotFoundError(f"HFTokenizer: missing tokenizer.json at {file}")
    self._tok = Tokenizer.from_file(file)
    cfg = {}
    cfg_file = os.path.join(os.path.dirname(file), "tokenizer_config.json")
    if os.path.isfile(cfg_file):
      with open(cfg_file) as f:
        cfg = json.load(f)

    def special(name, given):
      tok = given if given is not None else cfg.get(name)
      if isinstance(tok, dict):  # {"content": "<s>", ...}
        tok = tok.get("content")
      if tok is None:
        return None
      tid = self._tok.token_to_id(tok)
      if tid is None:
        raise ValueError(f"HFTokenizer: {name}={tok!r} is not in the vocabulary")
      return tid

    self.bos_id = special("bos_token", bos_token)
    self.eos_id = special("eos_token", eos_token)
    pad = special("pad_token", pad_token)
    self.pad_id = pad if pad is not None else (self.eos_id if self.eos_id is not None else 0)

  @property
  def vocab_size(self) -> int:
    return self._tok.get_vocab_size(with_added_tokens=True)

  def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
    ids = self._tok.encode(text, add_special_tokens=False).ids
    if add_bos:
      if self.bos_id is None:
        raise ValueError("HFTokenizer: add_bos=True but the tokenizer has no bos_token")
      ids = [self.bos_id] + ids
    if add_eos:
      if self.eos_id is None:
        raise ValueError("HFTokenizer: add_eos=True but the tokenizer has no eos_token")
      ids = ids + [self.eos_id]
    return ids

  def batch_encode(self, texts: Sequence[str], add_bos: bool = False, add_eos: bool = False,
                   length: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    return left_pad([self.encode(t, add_bos, add_eos) for t in texts], self.pad_id, length)

  def decode(self, ids: Iterable[int], skip_special: bool = True, stop_at_eos: bool = True) -> str:
    ids = [int(i) for i in ids]
    if stop_at_eos and self.eos_id is not None and self.eos_id in ids:
      ids = ids[:ids.index(self.eos_id)]
    return self._tok.decode(ids, skip_special_tokens=skip_special)

  def batch_decode(self, ids, **kwargs) -> list[str]:
    return [self.decode(row, **kwargs) for row in np.asarray(ids)]

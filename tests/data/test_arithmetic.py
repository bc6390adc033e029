"""Arithmetic task: answers recomputed independently, hash-disjoint splits, determinism."""

import hashlib
import re

import pytest

from jaxrl_llm.data import ArithmeticTask, arithmetic_answer, arithmetic_key, split_unit

_PROMPT_RE = re.compile(r"(\d+)([-+*/])(\d+)=")


def _independent_unit(key, salt="jaxrl_llm-v1"):
  # Transcription of the documented formula u = blake2b(salt|key) / 2**64.
  h = hashlib.blake2b((salt + "|" + key).encode(), digest_size=8).hexdigest()
  return int(h, 16) / 18446744073709551616.0


def test_hand_computed_answers_and_keys():
  assert arithmetic_answer(12, "+", 34) == 46
  assert arithmetic_answer(7, "-", 9) == -2
  assert arithmetic_answer(12, "*", 34) == 408
  assert arithmetic_answer(408, "/", 12) == 34
  with pytest.raises(ValueError, match="exact"):
    arithmetic_answer(7, "/", 2)
  assert arithmetic_key(34, "+", 12) == "12+34"
  assert arithmetic_key(34, "*", 12) == "12*34"
  assert arithmetic_key(12, "-", 34) == "12-34"   # not commutative: order kept
  assert split_unit("12+34") == _independent_unit("12+34")


def test_examples_are_correct_and_within_config():
  task = ArithmeticTask(digits=3, min_digits=1, operators="+-*/", split="train")
  ops_seen = set()
  for ex in task.examples(seed=3, start=0, count=400):
    m = _PROMPT_RE.fullmatch(ex.prompt)
    assert m is not None, ex.prompt
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    ops_seen.add(op)
    expected = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
                "/": lambda: a // b}[op]()
    if op == "/":
      assert b >= 1 and a == b * expected and len(str(b)) <= 3 and len(str(expected)) <= 3
    else:
      assert len(str(a)) <= 3 and len(str(b)) <= 3
    if op == "-":
      assert a >= b  # allow_negative=False
    assert ex.answer == str(expected) == ex.completion
    assert ex.task == "arithmetic" and ex.metadata["op"] == op
  assert ops_seen == set("+-*/")


def test_min_digits_and_negative_subtraction():
  task = ArithmeticTask(digits=3, min_digits=3, operators="-", allow_negative=True)
  exs = task.examples(0, 0, 200)
  for ex in exs:
    a, _, b = _PROMPT_RE.fullmatch(ex.prompt).groups()
    assert len(a) == 3 and len(b) == 3
  assert any(ex.answer.startswith("-") for ex in exs)


def test_splits_are_disjoint_by_construction():
  train = ArithmeticTask(digits=2, operators="+-*", split="train", test_fraction=0.2)
  test = ArithmeticTask(digits=2, operators="+-*", split="test", test_fraction=0.2)
  train_keys = {ex.metadata["key"] for seed in (0, 1) for ex in train.examples(seed, 0, 1500)}
  test_keys = {ex.metadata["key"] for seed in (0, 7) for ex in test.examples(seed, 0, 300)}
  assert len(test_keys) > 100 and len(train_keys) > 1000
  assert not train_keys & test_keys
  # Each key's split agrees with an independent transcription of the hash rule.
  assert all(_independent_unit(k) >= 0.2 for k in train_keys)
  assert all(_independent_unit(k) < 0.2 for k in test_keys)
  # Commutative duplicates share a split: "b+a" of a test problem is never in train prompts.
  train_prompts = {ex.prompt for ex in train.examples(0, 0, 1500)}
  for k in test_keys:
    m = re.fullmatch(r"(\d+)([+*])(\d+)", k)
    if m:
      assert f"{m.group(3)}{m.group(2)}{m.group(1)}=" not in train_prompts


def test_test_fraction_of_the_problem_space():
  # All 2-digit a+b problems up to commutation: 100*101/2 = 5050 keys.
  keys = {arithmetic_key(a, "+", b) for a in range(100) for b in range(100)}
  assert len(keys) == 5050
  frac = sum(_independent_unit(k) < 0.1 for k in keys) / len(keys)
  assert 0.08 < frac < 0.12


def test_determinism_and_random_access():
  task = ArithmeticTask(digits=2, operators="+-*")
  a = task.examples(5, 0, 50)
  assert a == task.examples(5, 0, 50)
  assert [ex.prompt for ex in a] != [ex.prompt for ex in task.examples(6, 0, 50)]
  assert task.example(5, 17) == a[17]
  assert task.examples(5, 10, 5) == a[10:15]


def test_prompts_fit_the_char_tokenizer():
  from jaxrl_llm.models import CharTokenizer
  tok = CharTokenizer()
  task = ArithmeticTask(digits=4, operators="+-*/")
  for ex in task.examples(0, 0, 100):
    tok.encode(ex.prompt + ex.completion)  # raises on a character outside the alphabet
    assert len(ex.prompt) <= 2 * 4 + 4 + 2  # dividend of "/" may have 2*digits digits


@pytest.mark.parametrize("kwargs, field", [
    (dict(digits=0), "digits"), (dict(digits=19), "digits"),
    (dict(digits=2, min_digits=3), "min_digits"), (dict(operators="%"), "operators"),
    (dict(operators=""), "operators"), (dict(operators="++"), "operators"),
    (dict(split="val"), "split"), (dict(test_fraction=0.0), "test_fraction"),
    (dict(test_fraction=1.0), "test_fraction"), (dict(max_tries=0), "max_tries"),
])
def test_bad_config(kwargs, field):
  with pytest.raises(ValueError, match=field):
    ArithmeticTask(**kwargs)


def test_empty_split_and_bad_seed_fail_clearly():
  task = ArithmeticTask(digits=1, operators="+", split="test", test_fraction=1e-12, max_tries=50)
  with pytest.raises(ValueError, match="no 'test' problem"):
    task.example(0, 0)
  with pytest.raises(ValueError, match="seed"):
    ArithmeticTask().example(-1, 0)
  with pytest.raises(ValueError, match="index"):
    ArithmeticTask().example(0, -1)


def test_max_lengths():
  # Hand values: "99+99=" is 6 chars, 99+99=198 has 3 digits; "99-99=" answer at most "99".
  task = ArithmeticTask(digits=2, operators="+-")
  assert (task.max_prompt_chars(), task.max_answer_chars()) == (6, 3)
  # "9999/99=" is 8 chars; 99*99 = 9801 has 4 digits.
  assert ArithmeticTask(digits=2, operators="*/").max_prompt_chars() == 8
  assert ArithmeticTask(digits=2, operators="*/").max_answer_chars() == 4
  assert ArithmeticTask(digits=2, operators="-", allow_negative=True).max_answer_chars() == 3
  big = ArithmeticTask(digits=3, operators="+-*/", allow_negative=True)
  exs = big.examples(0, 0, 300)
  assert max(len(ex.prompt) for ex in exs) <= big.max_prompt_chars()
  assert max(len(ex.answer) for ex in exs) <= big.max_answer_chars()

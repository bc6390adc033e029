"""RLCR calibration reward (arXiv 2507.16806): a hand-computed table for both modes, the
tabc format rules (order, last occurrence, q in [0, 1], nothing after the last tag) and
the batch calibration summary."""

import pytest

from jaxrl_llm.data import Example
from jaxrl_llm.rewards import REWARD_FNS, calibration_summary, parse_tabc, rlcr_reward

EX = Example(prompt="12+34=", answer="46")


def tabc(answer, q, think="add", analysis="easy"):
  return (f"<think>{think}</think> <answer>{answer}</answer> <analysis>{analysis}</analysis> "
          f"<confidence>{q}</confidence>")


# (completion, paper R = acc - (q - acc)^2, code R = 0.5 fmt + 0.5 acc + 0.5 (1 - (acc - q)^2))
TABLE = [
    (tabc("46", "1"), 1.0, 1.5),
    (tabc("46", "0.8"), 1 - 0.04, 0.5 + 0.5 + 0.5 * 0.96),     # 0.96, 1.48
    (tabc("46", "0.5"), 1 - 0.25, 0.5 + 0.5 + 0.5 * 0.75),     # 0.75, 1.375
    (tabc("46", "0"), 0.0, 1.0),
    (tabc("45", "1"), -1.0, 0.5),
    (tabc("45", "0.5"), -0.25, 0.5 + 0.5 * 0.75),              # -0.25, 0.875
    (tabc("45", "0.2"), -0.04, 0.5 + 0.5 * 0.96),              # -0.04, 0.98
    (tabc("45", "0.0"), 0.0, 1.0),
    (tabc(" 46.0 ", " 0.9 "), 1 - 0.01, 1.0 + 0.5 * 0.99),     # numbers compare exactly
    (tabc("46", "1e-1"), 1 - 0.81, 1.0 + 0.5 * 0.19),
    (tabc("46", "0.7") + "\n  ", 1 - 0.09, 1.0 + 0.5 * 0.91),  # trailing whitespace is fine
    # The last <answer> counts (here a correction inside the analysis) ...
    (tabc("45", "0.9", analysis="no: <answer>46</answer>"), 1 - 0.01, 1.0 + 0.5 * 0.99),
    # ... and the last <confidence>.
    ("<think>a</think><answer>46</answer><analysis>b</analysis><confidence>0.3</confidence>"
     " <confidence>0.6</confidence>", 1 - 0.16, 1.0 + 0.5 * 0.84),
]

FORMAT_FAILURES = {
    "missing confidence": "<think>a</think> <answer>46</answer> <analysis>b</analysis>",
    "missing think": "<answer>46</answer> <analysis>b</analysis> <confidence>0.5</confidence>",
    "missing analysis": "<think>a</think> <answer>46</answer> <confidence>0.5</confidence>",
    "missing answer": "<think>a</think> <analysis>b</analysis> <confidence>0.5</confidence>",
    "q = 1.5": tabc("46", "1.5"),
    "q = -0.1": tabc("46", "-0.1"),
    "q = abc": tabc("46", "abc"),
    "q empty": tabc("46", ""),
    "q = nan": tabc("46", "nan"),
    "q = inf": tabc("46", "inf"),
    "q too long": tabc("46", "0." + "5" * 40),
    "text after the last tag": tabc("46", "0.5") + " so 46",
    "answer before think": ("<answer>46</answer> <think>a</think> <analysis>b</analysis> "
                            "<confidence>0.5</confidence>"),
    "text between blocks": ("<think>a</think> so <answer>46</answer> <analysis>b</analysis> "
                            "<confidence>0.5</confidence>"),
    "text before think": "I say " + tabc("46", "1"),
    "empty": "",
    "bare answer": "46",
}


@pytest.mark.parametrize("completion,paper,code", TABLE)
def test_rlcr_reward_table(completion, paper, code):
  assert rlcr_reward(completion, EX) == pytest.approx(paper, abs=1e-12)
  assert rlcr_reward(completion, EX, mode="code") == pytest.approx(code, abs=1e-12)
  assert REWARD_FNS["rlcr"](completion, EX) == pytest.approx(paper, abs=1e-12)
  assert REWARD_FNS["rlcr_code"](completion, EX) == pytest.approx(code, abs=1e-12)
  # code = 0.5 paper + 0.5 + 0.5 fmt when the format holds (spec §6)
  assert code == pytest.approx(0.5 * paper + 1.0, abs=1e-12)


@pytest.mark.parametrize("name", sorted(FORMAT_FAILURES))
def test_rlcr_format_failures(name):
  text = FORMAT_FAILURES[name]
  assert not parse_tabc(text).ok
  assert rlcr_reward(text, EX) == -1.0
  assert rlcr_reward(text, EX, format_fail_reward=0.0) == 0.0
  assert rlcr_reward(text, EX, mode="code") == 0.0


def test_parse_tabc_fields_and_bad_mode():
  p = parse_tabc("  " + tabc("x + 1", "0.25", think="a <answer>7</answer>"))
  assert p.ok and p.answer == "x + 1" and p.confidence == 0.25
  with pytest.raises(ValueError, match="mode"):
    rlcr_reward(tabc("46", "1"), EX, mode="brier")


def test_calibration_summary_by_hand():
  texts = [tabc("46", "0.8"), tabc("45", "0.2"), "46", tabc("46", "1")]
  m = calibration_summary(texts, [EX, EX], group_size=2)
  assert m["rlcr_format_frac"] == 0.75
  assert m["rlcr_answer_accuracy"] == 0.5                          # (1 + 0 + 0 + 1) / 4
  assert m["rlcr_confidence_mean"] == pytest.approx(0.5)           # (0.8 + 0.2 + 0 + 1) / 4
  assert m["rlcr_brier"] == pytest.approx((0.04 + 0.04 + 1 + 0) / 4)  # failure counts 1
  with pytest.raises(ValueError, match="group_size"):
    calibration_summary(texts, [EX], group_size=2)

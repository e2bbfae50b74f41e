"""The hand-labelled response corpora (tests/answer_corpus/*.jsonl): every response is
scored as labelled, the corpora cover the styles the field's models produce, and the
peers' re-implemented checks reproduce their documented behaviour (docs/scoring.md)."""

from collections import Counter

import pytest

from tests.answer_corpus.agreement import load, markdown_table
from tests.answer_corpus.peers import (
    internvl_check_ans,
    lmms_extract_mcq_answer,
    vlmeval_can_infer,
    vlmeval_mvbench_accepts,
    vlmeval_videomme_extract,
)
from vlm_bench.answers import extract_choice, extract_number, extract_yesno
from vlm_bench.scoring import score_prediction


MC, YESNO, NUMERIC = load("mc"), load("yesno"), load("numeric")


@pytest.mark.parametrize("row", MC, ids=[r["id"] for r in MC])
def test_multiple_choice_corpus(row):
    assert extract_choice(row["response"], row["options"]) == row["label"], row["response"]


@pytest.mark.parametrize("row", YESNO, ids=[r["id"] for r in YESNO])
def test_yesno_corpus(row):
    assert extract_yesno(row["response"]) == row["label"], row["response"]


@pytest.mark.parametrize("row", NUMERIC, ids=[r["id"] for r in NUMERIC])
def test_numeric_corpus(row):
    assert extract_number(row["response"]) == row["label"], row["response"]


def test_corpora_are_large_and_varied():
    assert len(MC) >= 150 and len(YESNO) >= 40 and len(NUMERIC) >= 40
    styles = Counter(r["style"] for r in MC)
    for style in ("terse", "verbose", "cot", "markdown", "lowercase", "chinese", "refusal", "several", "option_text"):
        assert styles[style] >= 10, style
    assert sum(r["label"] is None for r in MC) >= 30  # responses that commit to no option
    assert len({r["id"] for r in MC + YESNO + NUMERIC}) == len(MC) + len(YESNO) + len(NUMERIC)


def test_scorers_use_the_corpus_rules():
    row = next(r for r in MC if r["response"].startswith("Answer: (B)\nExplanation"))
    assert score_prediction("mc", row["response"], "B", row["options"]).passed
    assert not score_prediction("mc", row["response"], "A", row["options"]).passed
    assert score_prediction("yesno", "There is no visible difference, so yes.", "yes").passed
    assert score_prediction("numeric", "The answer is 7, not 8.", "7").passed
    assert not score_prediction("numeric", "The answer is 7, not 8.", "8").passed


def test_peer_reimplementations_reproduce_known_behaviour():
    # VLMEvalKit's Video-MME prefix list is case-sensitive and joins two pairs of prefixes:
    assert vlmeval_videomme_extract("According to the video, the answer is B.") == "A"
    assert vlmeval_videomme_extract("Best option: A") == "B"
    assert vlmeval_videomme_extract("The answer is C.") == "C"
    # InternVL's and VLMEvalKit's MVBench checks accept an empty prediction for any answer.
    assert internvl_check_ans("", "(B) a dog")
    assert vlmeval_mvbench_accepts("", ["(A) x", "(B) y"]) == {"A", "B"}
    # can_infer: one letter among the last words wins; option text as a fallback.
    assert vlmeval_can_infer("The answer is B", {"A": "cat", "B": "dog"}) == "B"
    assert vlmeval_can_infer("a dog", {"A": "cat", "B": "dog"}) == "B"
    # lmms-eval: a letter at the start outranks every other format.
    assert lmms_extract_mcq_answer("B\nOption A is wrong.") == "B"
    assert lmms_extract_mcq_answer("") == ""


def test_agreement_table_in_the_docs_is_current():
    from pathlib import Path

    docs = (Path(__file__).resolve().parent.parent / "docs" / "scoring.md").read_text(encoding="utf-8")
    assert markdown_table() in docs, "regenerate with: python tests/answer_corpus/agreement.py"


@pytest.mark.parametrize("text, choice, yesno, number", [
    ("A " * 50000, "A", None, None),
    ("the the the " * 20000, None, None, None),  # took minutes before the cue repetition was bounded
    ("the answer the answer " * 10000, None, None, None),
    ("(" * 50000, None, None, None),
    ("yes no " * 30000, None, None, None),
    (" " * 200000 + "B", "B", None, None),
    ("neither " * 20000, None, None, None),
    ("<think> " * 20000 + "</think> B", "B", None, None),
    ("1 2 3 " * 5000, None, None, None),  # a loop of numbers ends no sentence with one
    ("\x00\ufeff\u200b", None, None, None),
])
def test_huge_and_odd_responses(text, choice, yesno, number):
    """Degenerate outputs (repetition loops, control characters) come back with an answer
    or None, in time linear in their length."""
    options = ["A. cat", "B. dog", "C. bird", "D. fish"]
    assert (extract_choice(text, options), extract_yesno(text), extract_number(text)) == (choice, yesno, number)

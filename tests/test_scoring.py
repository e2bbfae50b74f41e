import pytest

from vlm_bench.scoring import (
    SCORERS,
    answer_letter,
    check_scorer,
    extract_choice,
    extract_number,
    normalize_text,
    score_prediction,
)

OPTIONS = ["A. cat", "B. dog", "C. bird", "D. fish"]


@pytest.mark.parametrize(
    "prediction, letter",
    [
        ("B", "B"),
        ("(C)", "C"),
        ("c", "C"),
        ("B. dog", "B"),
        ("C) bird", "C"),
        ("The answer is B.", "B"),
        ("Best option: (C) dog", "C"),
        ("Best option: A", "A"),
        ("According to the video, the answer is B.", "B"),
        ("The best answer is (A) cat.", "A"),
        ("Answer: D", "D"),
        ("I think it is C", "C"),
        ("A is correct", "A"),
        ("A dog is running across the field.", "B"),  # article "A"; the option text names B
        ("fish", "D"),
        ("A or B", None),  # commits to no single option
        ("I cannot tell from the video.", None),
        ("E", None),  # not one of four options
        ("", None),
        ("   ", None),
    ],
)
def test_extract_choice(prediction, letter):
    assert extract_choice(prediction, OPTIONS) == letter


def test_answer_letter_accepts_letter_or_option_text():
    assert answer_letter("B", OPTIONS) == "B"
    assert answer_letter("(C)", OPTIONS) == "C"
    assert answer_letter("fish", OPTIONS) == "D"
    assert answer_letter("fish", ["cat", "dog", "bird", "fish"]) == "D"
    with pytest.raises(ValueError, match="neither a letter nor one of the options"):
        answer_letter("horse", OPTIONS)


@pytest.mark.smoke
def test_mc_scores_letter_against_text_answer():
    assert score_prediction("mc", "The answer is (D).", "fish", OPTIONS).passed
    assert not score_prediction("mc", "The answer is (C).", "fish", OPTIONS).passed


def test_exact():
    assert score_prediction("exact", " right ", "right").passed
    assert not score_prediction("exact", "Right", "right").passed


def test_normalized_ignores_case_space_punctuation():
    assert normalize_text("  The  Square, moves RIGHT! ") == "the square moves right"
    assert score_prediction("normalized", "Right.", "right").passed
    assert not score_prediction("normalized", "right side", "right").passed


def test_contains_is_whole_word():
    assert score_prediction("contains", "It is a Sudoku puzzle.", "sudoku").passed
    assert not score_prediction("contains", "pseudokuma", "sudoku").passed
    assert not score_prediction("contains", "It is a chess puzzle.", "sudoku").passed


def test_numeric_tolerance_and_last_number():
    assert extract_number("3 dogs and 2 cats make 5 animals") == 5.0
    assert extract_number("about 1,234.5 metres") == 1234.5
    assert score_prediction("numeric", "There are 3.", "3").passed
    assert not score_prediction("numeric", "There are 4.", "3").passed
    assert score_prediction("numeric", "about 172 degrees", "180", args={"abs_tol": 10}).passed
    assert not score_prediction("numeric", "about 160 degrees", "180", args={"abs_tol": 10}).passed
    assert score_prediction("numeric", "99", "100", args={"rel_tol": 0.02}).passed


@pytest.mark.parametrize("name", sorted(set(SCORERS) - {"rules"}))  # rules measure a video, not a response
@pytest.mark.parametrize("empty", ["", "  \n", None])
def test_empty_prediction_never_passes(name, empty):
    # Even when the reference itself would "match" emptiness in a naive scorer.
    answer = {"mc": "A", "numeric": "0", "yesno": "no", "rating": "1"}.get(name, "x")
    score = score_prediction(name, empty, answer, OPTIONS)
    assert not score.passed and score.value == 0.0


def test_the_rules_scorer_reads_no_response():
    with pytest.raises(ValueError, match="scores a video, not a response"):
        score_prediction("rules", "pass", "pass")


def test_check_scorer_rejects_bad_specs():
    with pytest.raises(ValueError, match="unknown scorer 'fuzzy'"):
        check_scorer("fuzzy", {}, "a", [])
    with pytest.raises(ValueError, match="takes no argument 'abs_tol'"):
        check_scorer("exact", {"abs_tol": 1}, "a", [])
    with pytest.raises(ValueError, match="holds no number"):
        check_scorer("numeric", {}, "many", [])
    with pytest.raises(ValueError, match="neither a letter"):
        check_scorer("mc", {}, "horse", OPTIONS)


@pytest.mark.parametrize(
    "prediction, got",
    [("Yes.", "yes"), ("no", "no"), ("No, it does not end there.", "no"), ("The answer is yes", "yes"),
     ("YES", "yes"), ("I cannot say yes or no", None), ("Maybe", None), ("", None), ("nothing", None)],
)
def test_yesno(prediction, got):
    from vlm_bench.scoring import extract_yesno

    assert extract_yesno(prediction) == got
    assert score_prediction("yesno", prediction, "yes").passed == (got == "yes")

"""What counts as an answer: the option letter, yes/no or number a free-form response
commits to (docs/scoring.md states the rules; tests/answer_corpus/ holds the labelled
responses they are checked on, and a held-out part never used to tune them).

Multiple choice (``choice``): an explicit answer statement wins, the first one when there
are several; otherwise the response's opening commits. Yes/no (``yesno``) and numbers
(``number``): the verdict or count the response concludes with, over the words and numbers
met along the way, and a bare answer it opens with stands. In all three, negated mentions
("not A", "not 8") never count, and a response that commits to two answers, refuses, or
says none of the options fit has no answer (``None``)."""

from vlm_bench.answers.choice import answer_letter, extract_choice, option_letters, strip_option_label
from vlm_bench.answers.number import extract_number
from vlm_bench.answers.text import LETTERS, normalize_text, prepare
from vlm_bench.answers.yesno import extract_yesno

__all__ = ["LETTERS", "answer_letter", "extract_choice", "extract_number", "extract_yesno", "normalize_text",
           "option_letters", "prepare", "strip_option_label"]

"""Scorers: pure functions ``(prediction, answer, options, **args) -> Score`` (the answer
extraction rules live in ``vlm_bench.answers``), and the clustered pass-rate interval.

An empty prediction never scores as correct, whatever the scorer.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from vlm_bench.answers import (  # noqa: F401  (re-exported: the scorers' extraction rules)
    LETTERS,
    answer_letter,
    extract_choice,
    extract_number,
    extract_yesno,
    normalize_text,
    option_letters,
)
from vlm_bench.answers.rating import extract_rating
from vlm_bench.types import Score

# Which extraction rules made a score: in every record and manifest, so a number can be
# traced to its rules, and ``vlm-bench rescore`` says what changed between versions.
SCORER_VERSION = "2026.12"


def _empty(prediction: str | None) -> bool:
    return prediction is None or not prediction.strip()


def score_exact(prediction: str, answer: str, options: Sequence[str] = (), alternatives: Sequence[str] = ()) -> Score:
    ok = not _empty(prediction) and prediction.strip() in {a.strip() for a in (answer, *alternatives)}
    return Score("exact", float(ok), ok, prediction.strip() if prediction else None)


def score_normalized(
    prediction: str, answer: str, options: Sequence[str] = (), alternatives: Sequence[str] = ()
) -> Score:
    got = normalize_text(prediction or "")
    ok = bool(got) and got in {normalize_text(a) for a in (answer, *alternatives)}
    return Score("normalized", float(ok), ok, got or None)


def score_contains(
    prediction: str, answer: str, options: Sequence[str] = (), alternatives: Sequence[str] = ()
) -> Score:
    """The normalized answer (or an alternative) appears in the normalized prediction as whole words."""
    got = normalize_text(prediction or "")
    wants = [w for w in (normalize_text(a) for a in (answer, *alternatives)) if w]
    ok = bool(got) and any(f" {w} " in f" {got} " for w in wants)
    return Score("contains", float(ok), ok, got or None)


def score_numeric(
    prediction: str,
    answer: str,
    options: Sequence[str] = (),
    abs_tol: float = 1e-6,
    rel_tol: float = 0.0,
) -> Score:
    want = extract_number(answer)
    if want is None:
        raise ValueError(f"numeric scorer: answer {answer!r} holds no number")
    got = None if _empty(prediction) else extract_number(prediction)
    ok = got is not None and math.isclose(got, want, rel_tol=rel_tol, abs_tol=abs_tol)
    return Score("numeric", float(ok), ok, None if got is None else repr(got))


def score_mc(prediction: str, answer: str, options: Sequence[str] = ()) -> Score:
    want = answer_letter(answer, options)
    got = extract_choice(prediction, options)
    ok = got is not None and got == want
    return Score("mc", float(ok), ok, got)


def score_yesno(prediction: str, answer: str, options: Sequence[str] = ()) -> Score:
    want = normalize_text(answer)
    if want not in ("yes", "no"):
        raise ValueError(f"yesno scorer: answer {answer!r} is neither yes nor no")
    got = extract_yesno(prediction)
    ok = got is not None and got == want
    return Score("yesno", float(ok), ok, got)


def score_rating(prediction: str, answer: str, options: Sequence[str] = (), scale: int = 5) -> Score:
    """A judge's rating on a 1-to-``scale`` scale; ``answer`` is the lowest passing rating
    (VMEvalKit: 4 of 5)."""
    want = int(answer)
    got = extract_rating(prediction, scale)
    ok = got is not None and got >= want
    return Score("rating", float(ok), ok, None if got is None else str(got))


def score_rules(prediction: str, answer: str, options: Sequence[str] = ()) -> Score:
    """Rule scores are measured on the video, not read from a response (video_rules)."""
    raise ValueError("the rules scorer scores a video, not a response: its records are made by vlm_bench.video_rules")


# ---------------------------------------------------------------- registry

SCORERS: Mapping[str, Callable[..., Score]] = {
    "exact": score_exact,
    "normalized": score_normalized,
    "mc": score_mc,
    "contains": score_contains,
    "numeric": score_numeric,
    "yesno": score_yesno,
    "rating": score_rating,
    "rules": score_rules,
}
SCORER_ARGS: Mapping[str, tuple[str, ...]] = {
    "numeric": ("abs_tol", "rel_tol"),
    "exact": ("alternatives",),
    "normalized": ("alternatives",),
    "contains": ("alternatives",),
    "rating": ("scale",),
}


def check_scorer(name: str, args: Mapping[str, Any], answer: str | None, options: Sequence[str]) -> None:
    """Raise ValueError when an item's scorer cannot score it (checked at load time)."""
    if not isinstance(name, str) or name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; choose one of {', '.join(SCORERS)}")
    unknown = set(args) - set(SCORER_ARGS.get(name, ()))
    if unknown:
        raise ValueError(f"scorer {name!r} takes no argument {sorted(unknown)[0]!r}")
    for key, value in args.items():
        if key in ("abs_tol", "rel_tol"):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"scorer {name!r}: {key} must be a finite number >= 0, got {value!r}")
        elif key == "alternatives" and (not isinstance(value, list) or not all(isinstance(a, str) for a in value)):
            raise ValueError(f"scorer {name!r}: alternatives must be a list of strings, got {value!r}")
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options: at most {len(LETTERS)} (lettered A to Z)")
    if answer is None:
        return
    if name == "mc":
        letter = answer_letter(answer, options)
        if letter not in option_letters(options):
            raise ValueError(f"mc scorer: answer {answer!r} names option {letter}, beyond the {len(options) or 8} options (A-{option_letters(options)[-1]})")
    elif name == "numeric" and extract_number(answer) is None:
        raise ValueError(f"numeric scorer: answer {answer!r} holds no number")
    elif name == "yesno" and normalize_text(answer) not in ("yes", "no"):
        raise ValueError(f"yesno scorer: answer {answer!r} is neither yes nor no")
    elif name == "rating" and not (str(answer).isdigit() and 1 <= int(answer) <= int(args.get("scale", 5))):
        raise ValueError(f"rating scorer: answer {answer!r} must be the lowest passing rating, 1 to {args.get('scale', 5)}")


def score_prediction(
    name: str, prediction: str, answer: str, options: Sequence[str] = (), args: Mapping[str, Any] | None = None
) -> Score:
    return SCORERS[name](prediction or "", answer, options, **(args or {}))


def score_extracted(name: str, extracted: str, answer: str, options: Sequence[str] = (),
                    args: Mapping[str, Any] | None = None) -> Score:
    """The score of an answer read by other means (a judge model): a letter, 'yes'/'no' or
    a number's text, compared with the reference as the scorer compares its own reading."""
    args = args or {}
    if name == "mc":
        ok = extracted == answer_letter(answer, options)
    elif name == "yesno":
        ok = extracted == normalize_text(answer)
    elif name == "numeric":
        want = extract_number(answer)
        ok = want is not None and math.isclose(float(extracted), want, rel_tol=args.get("rel_tol", 0.0),
                                               abs_tol=args.get("abs_tol", 1e-6))
    else:
        raise ValueError(f"scorer {name!r} takes no judged answer")
    return Score(name, float(ok), ok, extracted)


# ---------------------------------------------------------------- intervals


@lru_cache(maxsize=None)
def t_quantile(df: int, level: float = 0.95) -> float:
    """The two-sided Student t critical value (``level`` 0.95 -> the 0.975 quantile) for an
    integer number of degrees of freedom: P(|T| <= t) from its finite series (Abramowitz
    and Stegun 26.7.3-4) solved by bisection; a Cornish-Fisher expansion past 300."""
    if df < 1:
        raise ValueError("t_quantile needs at least one degree of freedom")
    if df > 300:
        z = _normal_quantile(0.5 + level / 2)
        return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)

    def coverage(t: float) -> float:
        theta = math.atan(t / math.sqrt(df))
        c2, term, total = math.cos(theta) ** 2, 1.0, 1.0
        if df % 2:
            for k in range(1, (df - 1) // 2):
                term *= 2 * k / (2 * k + 1) * c2
                total += term
            return 2 / math.pi * (theta + (math.sin(theta) * math.cos(theta) * total if df > 1 else 0.0))
        for k in range(1, df // 2):
            term *= (2 * k - 1) / (2 * k) * c2
            total += term
        return math.sin(theta) * total

    lo, hi = 0.0, 1e4
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if coverage(mid) < level else (lo, mid)
    return (lo + hi) / 2


def _normal_quantile(p: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if 0.5 * math.erfc(-mid / math.sqrt(2)) < p else (lo, mid)
    return (lo + hi) / 2


def cluster_wilson(successes: np.ndarray, sizes: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Confidence bounds for a pass rate whose items are correlated within clusters
    (questions about one video), for arrays of shape (..., clusters): passed items and
    items per cluster. A Wilson score interval on the effective sample size n / deff,
    where the design effect deff compares the cluster-robust variance
    (G/(G-1) * sum_g (y_g - m_g p)^2 / n^2) with the binomial one, and the critical
    value is Student's t on G-1 degrees of freedom. When every item passed (or none),
    each cluster counts once. The small-sample corrections keep 95% coverage at 10
    clusters (tests/test_intervals.py simulates it)."""
    y = np.asarray(successes, dtype=float)
    m = np.asarray(sizes, dtype=float)
    g = y.shape[-1]
    n = m.sum(-1)
    p = y.sum(-1) / n
    if g < 2:
        return np.zeros_like(p), np.ones_like(p)
    robust = g / (g - 1) * ((y - m * p[..., None]) ** 2).sum(-1) / n**2
    binomial = p * (1 - p) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        n_eff = np.where(binomial > 0, np.where(robust > 0, n * binomial / robust, n), float(g))
    c = t_quantile(g - 1, level)
    c2 = c * c
    centre = (p + c2 / (2 * n_eff)) / (1 + c2 / n_eff)
    half = c / (1 + c2 / n_eff) * np.sqrt(p * (1 - p) / n_eff + c2 / (4 * n_eff**2))
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def clustered_ci(outcomes: Iterable[tuple[str, float]], level: float = 0.95) -> list[float] | None:
    """The ``cluster_wilson`` interval of 0/1 outcomes given as (cluster, outcome) pairs;
    None without outcomes, [0, 1] with a single cluster (nothing measures the spread)."""
    totals: dict[str, list[float]] = {}
    for cluster, y in outcomes:
        entry = totals.setdefault(cluster, [0.0, 0.0])
        entry[0] += y
        entry[1] += 1
    return clustered_ci_of_totals(totals.values(), level)


def clustered_ci_of_totals(totals: Iterable[Sequence[float]], level: float = 0.95) -> list[float] | None:
    """``clustered_ci`` from (passed, items) per cluster, for callers that count as they go."""
    counts = np.array(list(totals), dtype=float)
    if not len(counts):
        return None
    lo, hi = cluster_wilson(counts[:, 0], counts[:, 1], level)
    return [round(float(lo), 6), round(float(hi), 6)]

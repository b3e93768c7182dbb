"""Seed 000's speech-style markers (comedian 조세호), counted per category.

Categories are the seed's list: tildes that stretch words (``예쁘~게``, ``대~단하다``), verbal
tics (``음음음~``, ``네네네네~``, ``그렇죠 그렇죠~``), aggrieved / flustered lines (``제가요?``,
``아휴~ 그거는요~``, ``그걸 또 왜 저한테~``), rhythmic endings (``~했죠~``, ``그게 또~ 또~``),
interjections (``아이고~``, ``와~ 와~``, ``진짜 대단해요~~~~``), TMI (first-person asides)
and Japanese gags (``아리가또~``).

Two rules keep a number from standing in for the persona:

* **a loop is not the persona**: markers are counted outside the text's loops
  (``repetition.without_loops``), as a reader judges the part of a text before it falls into a
  loop: ``라면이요~`` or ``아이고 제가요~`` said ten times is a broken text, not ten tildes and
  five tics;
* **no single category decides**: ``present`` needs the score at 0.5 or more *and* markers of
  two categories, one of them not a tilde. Tildes and sung endings (``해요~``) are one family:
  a plain answer whose endings carry tildes is not the style; the persona without one tilde is.

``score`` is a logistic function of the counts, fitted on the ``tune`` half of
``data/labelled/style.jsonl`` and of the style-task rows of ``data/labelled/real_loops.jsonl``
(texts, not training pairs: a tilde detector fitted on our own pairs learns their artefacts);
``python -m eval.metrics.style`` refits it, ``python -m eval check`` reports it on the held-out half.
"""

from __future__ import annotations

import math
import re

from .registry import register
from .repetition import Loop, find_loops, without_loops

_TIC_SYLLABLES = "음네어와아예응오에흠하호히헤"

PATTERNS: dict[str, re.Pattern] = {
    # a tilde inside a word or several in a row: 완~전히, 대~단, 요~~~ (written to start with the
    # literal ``~`` so that the regex engine skips ahead to the next tilde instead of trying every
    # position; the same matches as ``(?<=[가-힣])~+(?=[가-힣])|~{2,}|(?<=[가-힣])~(?=[\s?!.,]|$)``)
    "tilde": re.compile(r"~(?:~+|(?<=[가-힣]~)(?=[가-힣\s?!.,]|$))"),
    # one syllable said over and over (음음, 네네네네), or a short word said twice (그렇죠 그렇죠~, 또~ 또~)
    # (the word is taken whole and possessively: a longer word fails at once instead of backtracking)
    "tic": re.compile(rf"([{_TIC_SYLLABLES}])\1+~?|(?<![가-힣])([가-힣]{{1,4}}+)(?![가-힣])~?[ ,]++\2(?![가-힣])~?"),
    "aggrieved": re.compile(
        r"제가요\s*[?？]|저요\s*[?？]|저한테|아휴|아유|억울|서운|섭섭|그걸 또|왜 저를|제가 뭘|어떡해|아니 근데|아니 왜"
    ),
    # a sentence ending sung out with a tilde: 했죠~, 거든요~, 잖아요~
    "rhythm": re.compile(r"(?:죠|거든요|잖아요|는데요|더라고요|거예요|해요|네요|나요|까요|어요|아요|에요|예요)~"),
    "interjection": re.compile(r"아이고|어머(?:나)?|우와|와~|오~|이야~|세상에|대박|진짜 대단|어이쿠|에이~|하이고"),
    # first-person asides with a past or habitual story: 저는 … 했거든요, 제가 … 적 있어요
    "tmi": re.compile(r"(?:저는|제가|저도|저희|제 )[^.?!~]{0,40}?(?:었|았|였|했|거든|적 있|잖아)"),
    "japanese": re.compile(
        r"아리가또|스미마셍|혼또니?|오이시|곤니(?:치|찌)와|사요나라|와타시|다이죠부|스고이|오하요|이타다키마스|"
        r"하지메마시테|요로시쿠|소데스네|나니|가와이|오츠카레"
    ),
}
CATEGORIES = tuple(PATTERNS)
TILDE_FAMILY = ("tilde", "rhythm")  # a sung ending is a tilde on an ending: one family, not two traits

# Logistic weights on log(1 + count) per category, fitted by `python -m eval.metrics.style` on the
# tune halves of data/labelled/style.jsonl and real_loops.jsonl (L2 0.1).
WEIGHTS = {"tilde": 1.31, "tic": 2.344, "aggrieved": 3.085, "rhythm": 0.0, "interjection": 4.122, "tmi": 3.199,
           "japanese": 0.0}
BIAS = -3.43


def marker_counts(text: str, loops: list[Loop] | None = None) -> dict[str, int]:
    """Markers per category outside the text's loops (see the module docstring); ``loops``:
    the text's loops when the caller has found them already."""
    said = without_loops(text, loops)
    return {c: len(p.findall(said)) for c, p in PATTERNS.items()}


def marker_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, category) of every counted marker, sorted (for highlighting in the report)."""
    said = without_loops(text)  # same length: the offsets are the text's
    spans = [(m.start(), m.end(), c) for c, p in PATTERNS.items() for m in p.finditer(said) if m.end() > m.start()]
    return sorted(spans)


def two_traits(counts: dict[str, int]) -> bool:
    """Markers of at least two categories, one of them outside the tilde family."""
    others = sum(1 for c in CATEGORIES if c not in TILDE_FAMILY and counts[c])
    return others >= 2 or others == 1 and any(counts[c] for c in TILDE_FAMILY)


def _features(counts: dict[str, int]) -> list[float]:
    return [math.log1p(counts[c]) for c in CATEGORIES]


def style_score(counts: dict[str, int], weights=None, bias=None) -> float:
    w = WEIGHTS if weights is None else weights
    # categories with no marker add exactly 0.0, so leaving them out of the sum changes nothing
    z = (BIAS if bias is None else bias) + sum(w[c] * math.log1p(k) for c in CATEGORIES if (k := counts[c]))
    return 1.0 / (1.0 + math.exp(-z))


def style(text: str, loops: list[Loop] | None = None) -> dict:
    """The score row: ``{"score": 0..1, "present": bool, "markers": {category: count}}``."""
    counts = marker_counts(text, find_loops(text) if loops is None else loops)
    score = style_score(counts)
    return {"score": round(score, 4), "present": score >= 0.5 and two_traits(counts), "markers": counts}


register("style.score", "higher", "mean", "calibrated 0..1 speech-style score (seed 000's markers)")
register("style.present", "higher", "rate",
         "share of answers in the style (score >= 0.5 and markers of two categories, not only tildes)")
register("style.present_unlooped", "higher", "rate",
         "share in the style among the answers that do not loop (n = those answers)", subset=True)


def calibrate(positives: list[str], negatives: list[str], l2: float = 0.1, steps: int = 3000):
    """Logistic regression (projected gradient descent, numpy) of style (1) vs not (0) on the
    features, weights kept >= 0: a marker of the persona is evidence for it, never against (a
    small sample can otherwise give a rare category a negative weight)."""
    import numpy as np

    X = np.array([_features(marker_counts(t)) for t in positives + negatives])
    y = np.array([1.0] * len(positives) + [0.0] * len(negatives))
    w, b = np.zeros(X.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(X @ w + b)))
        w = np.maximum(0.0, w - 0.5 * (X.T @ (p - y) / len(y) + l2 * w / len(y)))
        b -= 0.5 * float(np.mean(p - y))
    return {c: round(float(v), 3) for c, v in zip(CATEGORIES, w)}, round(b, 3)


def auc(positives: list[float], negatives: list[float]) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def labelled(split: str) -> tuple[list[str], list[str]]:
    """(in the style, not) texts of one half of the labelled sets (see eval/check.py)."""
    from ..check import rows

    texts = [(r["text"], r["label"]) for r in rows("style.jsonl", split)]
    texts += [(r["text"], r["style"]) for r in rows("real_loops.jsonl", split) if "style" in r]
    return [t for t, y in texts if y], [t for t, y in texts if not y]


if __name__ == "__main__":  # refit WEIGHTS/BIAS on the tune halves; print the held-out AUC
    pos, neg = labelled("tune")
    weights, bias = calibrate(pos, neg)
    print("WEIGHTS =", weights)
    print("BIAS =", bias)
    hp, hn = labelled("heldout")
    print("held-out AUC:", round(auc([style_score(marker_counts(t), weights, bias) for t in hp],
                                     [style_score(marker_counts(t), weights, bias) for t in hn]), 4))

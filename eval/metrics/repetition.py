"""Repetition: seed 004's malignant loops, told apart from a style's tics and from literary
repetition, plus the standard numbers reported beside the decision.

``degenerate`` is True when the text loops:

* a unit of 2..30 words said 3+ times back to back (``희망이 지나간다`` ×8, ``또 떨어지고`` ×10),
  or one word 4+ times back to back (``음음음~`` fourteen times);
* a 1–3 character unit said 8+ times with only spaces / tildes between (``음음음음음음음음…``);
* or half the text's word 4-grams are repeats (a loop that is not back to back).

Not loops: a tic said once or twice (``음음음~``, ``네네네네~``, ``와~ 와~ 와와~``), a
reduplicated word (``빙글빙글``), anaphora (lines that start alike but go on differently), a
refrain that comes back between other lines.
"""

from __future__ import annotations

import re
import zlib

_TOKEN = re.compile(r"\S+")
_STRIP = "~.,!?…\"'“”‘’()[]「」『』:;-—"
_CHAR_LOOP = re.compile(r"([^\s~]{1,3}?)(?:[\s~]*\1){7,}")

MAX_UNIT = 30  # words
MIN_REPEATS_WORD = 4  # one word back to back
MIN_REPEATS_PHRASE = 3  # a phrase of 2+ words back to back
DOMINANT_SEQ_REP = 0.5  # share of repeated 4-grams
DOMINANT_MIN_WORDS = 20


def _normalise(word: str) -> str:
    """Punctuation and tildes do not make two words differ (a word of only those stays as is)."""
    return word.strip(_STRIP) or word


def _tokens(text: str) -> list[tuple[str, int, int]]:
    """(normalised word, start, end) for highlighting; :func:`_words` is the same without offsets."""
    return [(_normalise(m.group()), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _words(text: str) -> list[str]:
    """The normalised words of :func:`_tokens` without their offsets (the fast path)."""
    return [_normalise(w) for w in text.split()]


def _next_same(words: list[str]) -> list[int]:
    """For each position, the next position holding the same word (``len(words)`` if none)."""
    n = len(words)
    nxt, last = [n] * n, {}
    for j in range(n - 1, -1, -1):
        nxt[j] = last.get(words[j], n)
        last[words[j]] = j
    return nxt


def consecutive_repeats(words: list[str], nxt: list[int] | None = None) -> list[tuple[int, int, int]]:
    """Maximal back-to-back repeats as (start word, unit length k, repeats r), r >= 2,
    with the smallest unit for each start (``a b a b`` is (0, 2, 2), not (0, 4, 1))."""
    n, found, i = len(words), [], 0
    nxt = nxt or _next_same(words)
    while i < n:
        best = None
        j = nxt[i]  # a unit of length k can only repeat where the first word comes back, k = j - i
        if j == n:  # the word never comes back: no unit can start here
            i += 1
            continue
        kmax = (n - i) // 2
        kmax = MAX_UNIT if kmax > MAX_UNIT else kmax
        while j - i <= kmax:
            k = j - i
            unit = words[i:j]
            r = 1
            while words[i + r * k:i + (r + 1) * k] == unit:
                r += 1
            if r >= 2 and (best is None or r * k > best[1] * best[2]):
                best = (i, k, r)
            j = nxt[j]
        if best:
            found.append(best)
            i += best[1] * best[2]
        else:
            i += 1
    return found


def _is_loop(k: int, r: int) -> bool:
    return r >= (MIN_REPEATS_WORD if k == 1 else MIN_REPEATS_PHRASE)


def loop_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the loops that make a text degenerate (for highlighting)."""
    toks = _tokens(text)
    words = [w for w, _, _ in toks]
    spans = [(toks[i][1], toks[i + k * r - 1][2]) for i, k, r in consecutive_repeats(words) if _is_loop(k, r)]
    spans += [(m.start(), m.end()) for m in _CHAR_LOOP.finditer(text)]
    return sorted(spans)


def ngrams(words: list[str], n: int) -> list[tuple[str, ...]]:
    return list(zip(*(words[k:] for k in range(n)))) if n > 0 else []


def seq_rep_n(words: list[str], n: int = 4) -> float:
    """Share of n-grams that repeat an earlier one: 1 - unique / total (Welleck et al. 2019)."""
    grams = ngrams(words, n)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def distinct_n(words: list[str], n: int = 2) -> float:
    """Unique n-grams / n-grams (Li et al. 2016); 1.0 for a text too short to have any."""
    grams = ngrams(words, n)
    return len(set(grams)) / len(grams) if grams else 1.0


def compression_ratio(text: str) -> float:
    """UTF-8 bytes / zlib-compressed bytes: ~1–2 for ordinary prose, high for loops."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def longest_repeat(words: list[str], nxt: list[int] | None = None) -> int:
    """Words in the longest span that occurs twice (possibly overlapping)."""
    # over pairs of positions holding the same word, from the end: the common run at (i, j)
    # is one more than at (i + 1, j + 1). Prose has few such pairs, so this is near-linear.
    nxt = nxt or _next_same(words)
    n, best, run = len(words), 0, {}
    for i in range(n - 1, -1, -1):
        j = nxt[i]
        while j < n:
            length = run.get((i + 1, j + 1), 0) + 1
            run[(i, j)] = length
            if length > best:
                best = length
            j = nxt[j]
    return best


def repetition(text: str) -> dict:
    """The score row: ``{"degenerate": bool, "max_repeats", "seq_rep_4", "distinct_2",
    "compression_ratio", "longest_repeat"}``."""
    words = _words(text)
    nxt = _next_same(words)
    runs = consecutive_repeats(words, nxt)
    max_repeats = max((r for _, _, r in runs), default=1)
    rep4 = seq_rep_n(words, 4)
    loop = (
        any(_is_loop(k, r) for _, k, r in runs)
        or _CHAR_LOOP.search(text) is not None
        or (len(words) >= DOMINANT_MIN_WORDS and rep4 >= DOMINANT_SEQ_REP)
    )
    return {
        "degenerate": loop,
        "max_repeats": max_repeats,
        "seq_rep_4": round(rep4, 4),
        "distinct_2": round(distinct_n(words, 2), 4),
        "compression_ratio": round(compression_ratio(text), 4),
        "longest_repeat": longest_repeat(words, nxt),
    }

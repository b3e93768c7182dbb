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
from collections import Counter

from .registry import register

_TOKEN = re.compile(r"\S+")
_STRIP = "~.,!?…\"'“”‘’()[]「」『』:;-—"
# (possessive ``*+``: the unit starts with a character that is neither a space nor a tilde, so
# giving some back could never help, and not trying it saves a third of the search)
_CHAR_LOOP = re.compile(r"([^\s~]{1,3}?)(?:[\s~]*+\1){7,}")

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
    """The normalised words of :func:`_tokens` without their offsets (the fast path, with
    :func:`_normalise` inlined: one function call less per word)."""
    return [w.strip(_STRIP) or w for w in text.split()]


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


def _unique_ngrams(words: list[str], n: int) -> int:
    return len(set(zip(*(words[k:] for k in range(n)))))


def seq_rep_n(words: list[str], n: int = 4) -> float:
    """Share of n-grams that repeat an earlier one: 1 - unique / total (Welleck et al. 2019)."""
    total = len(words) - n + 1
    return 1 - _unique_ngrams(words, n) / total if total > 0 and n > 0 else 0.0


def distinct_n(words: list[str], n: int = 2) -> float:
    """Unique n-grams / n-grams (Li et al. 2016); 1.0 for a text too short to have any."""
    total = len(words) - n + 1
    return _unique_ngrams(words, n) / total if total > 0 and n > 0 else 1.0


def compression_ratio(text: str) -> float:
    """UTF-8 bytes / zlib-compressed bytes: ~1–2 for ordinary prose, high for loops."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw, 9)) if raw else 0.0


def longest_repeat(words: list[str], nxt: list[int] | None = None) -> int:
    """Words in the longest span that occurs twice (possibly overlapping)."""
    # Over pairs of positions holding the same word, from the end: the common run at (i, j)
    # is one more than at (i + 1, j + 1), so only the previous position's runs are kept (a dict
    # keyed by j). Prose has few such pairs, so this is near-linear. A text of few words said
    # over and over has quadratically many (20,000 words took minutes): past a budget the answer
    # comes from the O(n log n) search instead.
    n = len(words)
    budget = 8 * n + 1024
    if n > 1000 and sum(c * (c - 1) // 2 for c in Counter(words).values()) > budget:
        return _longest_repeat_search(words)
    nxt = nxt or _next_same(words)
    best, work, prev = 0, 0, {}
    for i in range(n - 1, -1, -1):
        j = nxt[i]
        if j == n:  # this word does not come back: no pair starts here
            prev = {}
            continue
        cur = {}
        while j < n:
            cur[j] = length = prev.get(j + 1, 0) + 1
            if length > best:
                best = length
            j = nxt[j]
        work += len(cur)
        if work > budget:
            return _longest_repeat_search(words)
        prev = cur
    return best


_MOD = (1 << 61) - 1  # a Mersenne prime: polynomial hashes of word windows modulo it
_BASE = 1_000_003


def _repeats_at(ids: list[int], length: int) -> bool:
    """Whether some window of ``length`` words occurs twice (rolling hash, checked on a hit)."""
    n = len(ids)
    if length == 0 or length >= n:
        return length == 0
    h, drop = 0, pow(_BASE, length - 1, _MOD)
    for x in ids[:length]:
        h = (h * _BASE + x) % _MOD
    first = {h: 0}
    for i in range(1, n - length + 1):
        h = ((h - ids[i - 1] * drop) * _BASE + ids[i + length - 1]) % _MOD
        at = first.setdefault(h, i)
        if at != i and ids[at:at + length] == ids[i:i + length]:
            return True
    return False


def _longest_repeat_search(words: list[str]) -> int:
    """:func:`longest_repeat` by binary search on the length (a repeat of L words contains one
    of L - 1), each step one pass of a rolling hash."""
    index: dict[str, int] = {}
    ids = [index.setdefault(w, len(index) + 1) for w in words]
    lo, hi = 0, max(len(ids) - 1, 0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _repeats_at(ids, mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def repetition(text: str) -> dict:
    """The score row: ``{"degenerate": bool, "max_repeats", "seq_rep_4", "distinct_2",
    "compression_ratio", "longest_repeat"}``."""
    words = _words(text)
    if len(set(words)) == len(words):  # no word comes back (4 texts in 10): nothing repeats
        loop = _CHAR_LOOP.search(text) is not None
        return {"degenerate": loop, "max_repeats": 1, "seq_rep_4": 0.0, "distinct_2": 1.0,
                "compression_ratio": round(compression_ratio(text), 4), "longest_repeat": 0}
    nxt = _next_same(words)
    runs = consecutive_repeats(words, nxt)
    max_repeats = max((r for _, _, r in runs), default=1)
    rep4 = seq_rep_n(words, 4)
    loop = (
        any(_is_loop(k, r) for _, k, r in runs)
        or (len(words) >= DOMINANT_MIN_WORDS and rep4 >= DOMINANT_SEQ_REP)
        or _CHAR_LOOP.search(text) is not None
    )
    return {
        "degenerate": loop,
        "max_repeats": max_repeats,
        "seq_rep_4": round(rep4, 4),
        "distinct_2": round(distinct_n(words, 2), 4),
        "compression_ratio": round(compression_ratio(text), 4),
        "longest_repeat": longest_repeat(words, nxt),
    }


register("repetition.degenerate", "lower", "rate", "share of answers that loop (seed 004's failure)")
register("repetition.seq_rep_4", "lower", "mean", "share of repeated word 4-grams")
register("repetition.distinct_2", "higher", "mean", "unique word bigrams / bigrams")
register("repetition.compression_ratio", "lower", "mean", "UTF-8 bytes / zlib bytes")
register("repetition.longest_repeat", "lower", "mean", "words in the longest repeated span")

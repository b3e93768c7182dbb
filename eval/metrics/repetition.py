"""Repetition: seed 004's malignant loops, told apart from a style's tics and from literary
repetition, plus the standard numbers reported beside the decision.

``degenerate`` is True when the text loops:

* lines, sentences or stanzas (blocks of up to ``MAX_STANZA`` lines or sentences) that come
  back 3+ times back to back, verbatim or with a word or two changed, alone or alternating
  (A A A, A B A B A B); the third copy may be cut off by the length limit. Two copies of a
  block of 2+ lines count when together they make up half the text: it stopped moving;
* a unit of 2..30 words said 3+ times back to back inside a line (``또 떨어지고`` ×10),
  or one word 4+ times back to back (``음음음~`` fourteen times);
* a 1–3 character unit said 8+ times with only spaces / tildes between (``음음음음음음음음…``);
* or a third of the text's word 4-grams are repeats (a loop that comes back out of order or
  with words inserted between its copies).

Not loops: a tic said once or twice (``음음음~``, ``네네네네~``, ``와~ 와~ 와와~``), a
reduplicated word (``빙글빙글``), anaphora (lines that start alike but go on differently), a
refrain that comes back after new lines, a line said twice.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass

from .registry import register

_TOKEN = re.compile(r"\S+")
_STRIP = "~.,!?…\"'“”‘’()[]「」『』:;-—"
# (possessive ``*+``: the unit starts with a character that is neither a space nor a tilde, so
# giving some back could never help, and not trying it saves a third of the search)
_CHAR_LOOP = re.compile(r"([^\s~]{1,3}?)(?:[\s~]*+\1){7,}")

MAX_UNIT = 30  # words
MIN_REPEATS_WORD = 4  # one word back to back
MIN_REPEATS_PHRASE = 3  # a phrase of 2+ words back to back
# share of repeated word 4-grams: 0.3 catches the loops that come back out of order or with
# words inserted (0.32-0.49 in the tune half of data/labelled/real_loops.jsonl); no clean text
# of the labelled or shipped sets reaches 0.25
DOMINANT_SEQ_REP = 0.3
DOMINANT_MIN_WORDS = 20


def _words(text: str) -> list[str]:
    """The words of the text, normalised: punctuation and tildes around a word do not make two
    words differ (a word of only those stays as it is)."""
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


@dataclass(frozen=True)
class Loop:
    """One loop: characters ``start..end`` hold every copy, ``start..first_end`` the first one
    (so ``first_end..end`` is what the text said again)."""

    start: int
    first_end: int
    end: int


def find_loops(text: str, words: list[str] | None = None, runs: list | None = None) -> list[Loop]:
    """Every loop of the text: repeated words or phrases inside a line, character runs, and
    repeated lines, sentences or stanzas; sorted, possibly overlapping. ``words`` / ``runs``:
    :func:`_words` and :func:`consecutive_repeats` of the text when the caller has them."""
    words = _words(text) if words is None else words
    if runs is None:
        runs = consecutive_repeats(words)
    loops = []
    looping = [(i, k, r) for i, k, r in runs if _is_loop(k, r)]
    if looping:  # offsets only when a word loop needs them (\S+ finds the words split() finds)
        spans = [m.span() for m in _TOKEN.finditer(text)]
        loops = [Loop(spans[i][0], spans[i + k - 1][1], spans[i + k * r - 1][1]) for i, k, r in looping]
    loops += [Loop(m.start(), m.end(1), m.end()) for m in _CHAR_LOOP.finditer(text)]
    loops += piece_loops(text, words)
    return sorted(loops, key=lambda x: (x.start, x.end))


def loop_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of the loops that make a text degenerate (for highlighting)."""
    return [(x.start, x.end) for x in find_loops(text)]


def without_loops(text: str, loops: list[Loop] | None = None) -> str:
    """``text`` with every loop blanked, all its copies (same length, so offsets still hold):
    what the text says while it is not looping. The style score reads this: a line looped ten
    times is a broken text, not ten times the persona."""
    for x in find_loops(text) if loops is None else loops:
        text = text[:x.start] + " " * (x.end - x.start) + text[x.end:]
    return text


# --- loops of lines, sentences and stanzas -------------------------------------------------------
# A small model's loops are often longer than a phrase: a line, a sentence, or a stanza of several
# lines comes back again and again, sometimes with a word changed. The text is cut into pieces
# (lines, and sentences within a line) and a loop is a run of pieces that repeats with a period
# of 1..MAX_STANZA pieces, each piece equal or near-equal to the one a period before.

_PIECE = re.compile(r"[^\s.!?…][^\n.!?…]*[.!?…]*")  # up to a sentence end, never across a line break
MAX_STANZA = 8  # pieces in the longest unit looked for
NEAR = 0.7  # near-verbatim: this share of the longer piece's distinct words is in the other one
NEAR_MIN_WORDS = 3  # pieces shorter than this must be equal
MIN_COPIES = 3  # back to back, the third may be cut off
HALF = 0.5  # two copies of a multi-piece unit that make up this share of the text: a loop too


def _pieces(text: str, words: list[str] | None = None) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, normalised words) of every line and sentence (``words``: :func:`_words` of
    the text, reused: a piece holds the words that start inside it)."""
    words = _words(text) if words is None else words
    out, w = [], 0
    starts = iter(m.start() for m in _TOKEN.finditer(text))
    pending = next(starts, None)
    for m in _PIECE.finditer(text):
        first = w
        while pending is not None and pending < m.end():
            w += 1
            pending = next(starts, None)
        out.append((m.start(), m.end(), tuple(words[first:w])))
    return out


def _near(a: tuple, b: tuple, sa: frozenset, sb: frozenset) -> bool:
    """Equal, or near-verbatim: NEAR of the larger word set in the other (pieces of 3+ words)."""
    if a == b:
        return True
    la, lb = len(sa), len(sb)
    if len(a) < NEAR_MIN_WORDS or len(b) < NEAR_MIN_WORDS or min(la, lb) < NEAR * max(la, lb):
        return False  # the shared words can be no more than the smaller set
    return len(sa & sb) >= NEAR * max(la, lb)


def _started(a: tuple, b: tuple) -> bool:
    """``a`` is the start of ``b`` (the text was cut off inside the piece it was repeating)."""
    return 0 < len(a) <= len(b) and a[:-1] == b[:len(a) - 1] and b[len(a) - 1].startswith(a[-1])


def piece_loops(text: str, words: list[str] | None = None) -> list[Loop]:
    """The loops of whole pieces (lines, sentences, stanzas)."""
    pieces = _pieces(text, words)
    n = len(pieces)
    if n < 3:
        return []
    words = [w for _, _, w in pieces]
    sets = [frozenset(w) for w in words]
    total = sum(len(w) for w in text.split()) or 1
    spans = []
    for p in range(1, min(MAX_STANZA, n // 2) + 1):
        j = p
        while j < n:
            k = j
            while k < n and (_near(words[k], words[k - p], sets[k], sets[k - p])
                             or k == n - 1 and _started(words[k], words[k - p])):
                k += 1
            if k == j:
                j += 1
                continue
            start, matched = j - p, k - j  # pieces start..k-1 repeat with period p
            copies = 1 + matched / p
            chars = sum(len(w) for i in range(start, k) for w in words[i])
            if copies >= MIN_COPIES or p > 1 and matched >= p and chars >= HALF * total:
                spans.append(Loop(pieces[start][0], pieces[start + p - 1][1], pieces[k - 1][1]))
            j = k
    return spans


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
    return analyse(text)[0]


def analyse(text: str) -> tuple[dict, list[Loop]]:
    """(the score row, the loops found): one pass for the row and the style score's de-looping."""
    words = _words(text)
    if len(set(words)) == len(words):  # no word comes back (4 texts in 10): only a character run can loop
        loops = [Loop(m.start(), m.end(1), m.end()) for m in _CHAR_LOOP.finditer(text)]
        return {"degenerate": bool(loops), "max_repeats": 1, "seq_rep_4": 0.0, "distinct_2": 1.0,
                "compression_ratio": round(compression_ratio(text), 4), "longest_repeat": 0}, loops
    nxt = _next_same(words)
    runs = consecutive_repeats(words, nxt)
    max_repeats = max((r for _, _, r in runs), default=1)
    rep4 = seq_rep_n(words, 4)
    loops = find_loops(text, words, runs)
    loop = bool(loops) or (len(words) >= DOMINANT_MIN_WORDS and rep4 >= DOMINANT_SEQ_REP)
    return {
        "degenerate": loop,
        "max_repeats": max_repeats,
        "seq_rep_4": round(rep4, 4),
        "distinct_2": round(distinct_n(words, 2), 4),
        "compression_ratio": round(compression_ratio(text), 4),
        "longest_repeat": longest_repeat(words, nxt),
    }, loops


register("repetition.degenerate", "lower", "rate", "share of answers that loop (seed 004's failure)")
register("repetition.seq_rep_4", "lower", "mean", "share of repeated word 4-grams")
register("repetition.distinct_2", "higher", "mean", "unique word bigrams / bigrams")
register("repetition.compression_ratio", "lower", "mean", "UTF-8 bytes / zlib bytes")
register("repetition.longest_repeat", "lower", "mean", "words in the longest repeated span")

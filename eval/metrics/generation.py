"""How an answer ended and how much of it copies the prompt.

* ``stopped``: the model ended the answer itself (a stop token before ``max_new_tokens``), as
  ``eval generate`` records it per row. An answer that never stops is seed 004's failure as
  much as a loop is.
* ``echo``: the share of the answer (characters of its words) that copies the prompt: words
  inside a run of ``ECHO_WORDS`` consecutive words that also stands, in that order, in the
  prompt. The 270M base model starts many answers with ``키워드: 등대, 편지, 새벽``; those spans
  are also what keyword coverage ignores (:func:`echo_spans`). Three words: a keyword used in a
  sentence of its own shares one or two words with the prompt, never three in its order.
"""

from __future__ import annotations

import re

from .registry import register

ECHO_WORDS = 3
_WORD = re.compile(r"\S+")
_STRIP = "~.,!?…\"'“”‘’()[]「」『』:;-—·*#"


def _norm(word: str) -> str:
    return word.strip(_STRIP) or word


def _prompt_text(prompt) -> str:
    """A prompt as a string, or a message list (every message's text content)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(m.get("content") or "" for m in prompt if isinstance(m, dict) and isinstance(m.get("content"), str))
    return ""


def echo_spans(text: str, prompt) -> list[tuple[int, int]]:
    """Character spans of ``text`` that copy ``prompt`` (runs of words found in it in order)."""
    pwords = [_norm(w) for w in _prompt_text(prompt).split()]
    n = min(ECHO_WORDS, len(pwords))
    if n < 2:  # a one-word prompt: using that word is not copying the prompt
        return []
    grams = set(zip(*(pwords[k:] for k in range(n))))
    toks = [(m.start(), m.end(), _norm(m.group())) for m in _WORD.finditer(text)]
    words = [w for _, _, w in toks]
    covered = [False] * len(toks)
    for i, gram in enumerate(zip(*(words[k:] for k in range(n)))):
        if gram in grams:
            covered[i:i + n] = [True] * n
    spans: list[tuple[int, int]] = []
    for (start, end, _), c in zip(toks, covered):
        if not c:
            continue
        if spans and not text[spans[-1][1]:start].strip():
            spans[-1] = (spans[-1][0], end)  # only white space between: one span
        else:
            spans.append((start, end))
    return spans


def echo_share(text: str, prompt) -> float:
    """Share of the answer's non-space characters inside :func:`echo_spans`."""
    total = sum(len(w) for w in text.split())
    if not total:
        return 0.0
    copied = sum(len(w) for s, e in echo_spans(text, prompt) for w in text[s:e].split())
    return copied / total


def generation(text: str, prompt=None, stopped: bool | None = None, new_tokens: int | None = None) -> dict | None:
    """The row's ``generation`` group: what is known of how it was generated (None if nothing)."""
    out = {}
    if stopped is not None:
        out["stopped"] = bool(stopped)
    if new_tokens is not None:
        out["new_tokens"] = int(new_tokens)
    if _prompt_text(prompt).strip():
        out["echo"] = round(echo_share(text, prompt), 4)
    return out or None


register("generation.stopped", "higher", "rate",
         "share of answers the model ended itself (a stop token before max_new_tokens)")
register("generation.echo", "lower", "mean", "share of the answer that copies the prompt (runs of 3+ prompt words)")
register("generation.new_tokens", None, "mean", "tokens generated, up to and including the stop token")

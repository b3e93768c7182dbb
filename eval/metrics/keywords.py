"""Korean-aware keyword coverage (seed 004's task: a literary text containing three keywords).

A keyword counts when a word starts with it and the rest of the word is only the plural
``들`` and/or particles and copula endings (``바다를``, ``별들이``, ``등대만이``, ``기억이었다``),
not when it merely sits inside another word (``별`` in ``특별한``, ``바다`` in ``바닷가``).

A keyword inside a span that copies the prompt (``키워드: 등대, 편지, 새벽`` echoed back) counts
for nothing: those spans are blanked before matching (``prompt=``; see ``generation.echo_spans``).
"""

from __future__ import annotations

import re

from .generation import echo_spans
from .registry import register

# Case particles, auxiliary particles and copula forms that may follow a noun inside one word.
PARTICLES = sorted(set("""
은 는 이 가 을 를 의 에 에서 에게 께 께서 한테 으로 로 와 과 랑 이랑 도 만 까지 부터 처럼 보다 마다
조차 마저 이나 나 이며 며 야 아 여 이여 요 이요 밖에 뿐 라도 이라도 든 이든 든지 이든지 같이 대로
만큼 하고 에게서 한테서 로서 으로서 로써 으로써 이다 다 이었다 였다 이고 고 인 이라 라 이라는 라는
이란 란 이지 지 입니다 이에요 예요 이었고 였고 이었던 였던 일 일까 인가 인지 인데 이니 니
""".split()), key=len, reverse=True)
_PARTICLE = "(?:" + "|".join(map(re.escape, PARTICLES)) + ")"
_WORDCHAR = "가-힣A-Za-z0-9"


# What may follow the keyword inside its word; matched at each place the keyword occurs (one
# compiled pattern for every keyword: compiling a pattern per keyword cost more than scoring).
_REST = re.compile(rf"(?:들)?{_PARTICLE}{{0,3}}(?![{_WORDCHAR}])")
_WORD_BEFORE = re.compile(rf"[{_WORDCHAR}]")


def has_keyword(text: str, keyword: str) -> bool:
    """True when ``text`` uses ``keyword`` as a word (plus plural/particles), see module doc."""
    keyword = keyword.strip()
    if not keyword:
        return False
    at = text.find(keyword)
    while at >= 0:
        if not (at and _WORD_BEFORE.match(text, at - 1)) and _REST.match(text, at + len(keyword)):
            return True
        at = text.find(keyword, at + 1)
    return False


def without_echo(text: str, prompt) -> str:
    """``text`` with the spans that copy ``prompt`` blanked (same length, so offsets still hold)."""
    for s, e in echo_spans(text, prompt) if prompt else ():
        text = text[:s] + " " * (e - s) + text[e:]
    return text


def keyword_coverage(text: str, keywords: list[str], prompt=None) -> dict:
    """``{"hits": {kw: bool}, "all_present": bool, "coverage": float}`` (the eval's row shape);
    with ``prompt``, also ``"echoed"``: the keywords found only inside copied prompt spans."""
    clean = without_echo(text, prompt)
    hits = {k: has_keyword(clean, k) for k in keywords}
    n = len(hits)
    out = {"hits": hits, "all_present": all(hits.values()) if n else True,
           "coverage": sum(hits.values()) / n if n else 1.0}
    if prompt:
        out["echoed"] = [k for k, hit in hits.items() if not hit and has_keyword(text, k)]
    return out


register("keywords.coverage", "higher", "mean", "share of the given keywords used as words (prompt echo removed)")
register("keywords.all_present", "higher", "rate", "share of answers with every keyword (prompt echo removed)")

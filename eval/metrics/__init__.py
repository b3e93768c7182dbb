"""Pure scoring functions (text -> numbers). Every metric is declared once, next to its
function, in :mod:`.registry` (name, direction, aggregation, description).

A row of ``eval score`` has one group per family: ``style``, ``repetition``, ``keywords`` (rows
with keywords), ``generation`` (rows that say how they were generated or carry their prompt).
The summary aggregates every registered metric over the rows that have it.
"""

from __future__ import annotations

from . import preference  # noqa: F401  (registers preference.*, computed by eval.preference)
from .generation import generation
from .keywords import keyword_coverage
from .registry import REGISTRY, Metric, direction, register
from .repetition import analyse
from .style import style

__all__ = ["REGISTRY", "Metric", "direction", "register", "score_text"]


def score_text(text: str, keywords: list[str] | None = None, prompt=None, stopped: bool | None = None,
               new_tokens: int | None = None) -> dict:
    """All groups for one text (``keywords`` only when keywords are given; ``generation`` only
    when the row says how it was generated or what its prompt was)."""
    rep, loops = analyse(text)
    row = {"style": style(text, loops), "repetition": rep}
    # the style among answers that do not loop: a loop of "~" lines must not win the style row
    row["style"]["present_unlooped"] = None if rep["degenerate"] else row["style"]["present"]
    if keywords:
        row["keywords"] = keyword_coverage(text, keywords, prompt)
    gen = generation(text, prompt, stopped, new_tokens)
    if gen is not None:
        row["generation"] = gen
    return row

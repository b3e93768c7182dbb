"""Pure scoring functions (text -> numbers), each registered with a name, a direction
(higher / lower is better) and an aggregation (mean of a number, rate of a bool).

A row of ``eval score`` has one group per function in ``GROUPS``; the summary aggregates
every registered metric over the rows that have it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .keywords import keyword_coverage
from .repetition import repetition
from .style import style


@dataclass(frozen=True)
class Metric:
    name: str  # "<group>.<field>" in the row
    direction: str  # "higher" | "lower"
    aggregation: str  # "mean" (numbers) | "rate" (bools)
    description: str

    def get(self, row: dict):
        group, field = self.name.split(".", 1)
        return row.get(group, {}).get(field)


# group name -> function of (text, keywords) giving the row's dict for that group
GROUPS = {
    "style": lambda text, keywords: style(text),
    "repetition": lambda text, keywords: repetition(text),
    "keywords": lambda text, keywords: keyword_coverage(text, keywords) if keywords else None,
}

REGISTRY: dict[str, Metric] = {}


def register(name: str, direction: str, aggregation: str, description: str) -> Metric:
    assert direction in ("higher", "lower") and aggregation in ("mean", "rate")
    m = REGISTRY[name] = Metric(name, direction, aggregation, description)
    return m


register("style.score", "higher", "mean", "calibrated 0..1 speech-style score (seed 000's markers)")
register("style.present", "higher", "rate", "share of texts in the style (score >= 0.5)")
register("repetition.degenerate", "lower", "rate", "share of texts that loop (seed 004's failure)")
register("repetition.seq_rep_4", "lower", "mean", "share of repeated word 4-grams")
register("repetition.distinct_2", "higher", "mean", "unique word bigrams / bigrams")
register("repetition.compression_ratio", "lower", "mean", "UTF-8 bytes / zlib bytes")
register("repetition.longest_repeat", "lower", "mean", "words in the longest repeated span")
register("keywords.coverage", "higher", "mean", "share of the given keywords used as words")
register("keywords.all_present", "higher", "rate", "share of texts with every keyword")


def score_text(text: str, keywords: list[str] | None = None) -> dict:
    """All groups for one text (``keywords`` only when keywords are given)."""
    row = {}
    for group, fn in GROUPS.items():
        value = fn(text, keywords)
        if value is not None:
            row[group] = value
    return row

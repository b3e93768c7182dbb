"""The one metric registry: every number the eval reports is declared once, next to the function
that computes it, with its direction and aggregation (as lm-evaluation-harness does). The score
summary, the report and the study read directions and descriptions from here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

DIRECTIONS = ("higher", "lower", None)  # None: a descriptive number with no better side (a length)
AGGREGATIONS = ("mean", "rate")


@dataclass(frozen=True)
class Metric:
    name: str  # "<group>.<field>": the row's group and field
    direction: str | None  # "higher" | "lower" is better; None = neither
    aggregation: str  # "mean" (numbers) | "rate" (bools)
    description: str
    # compared across arms? False for measures defined against each arm's own reference
    comparable: bool = True
    # computed on a subset of the rows (answers that do not loop, length-matched pairs): the
    # report shows how many rows each value rests on
    subset: bool = False

    @property
    def group(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def field(self) -> str:
        return self.name.split(".", 1)[1]

    def get(self, row: dict):
        return (row.get(self.group) or {}).get(self.field)


REGISTRY: dict[str, Metric] = {}


def register(name: str, direction: str | None, aggregation: str, description: str, comparable: bool = True,
             subset: bool = False) -> Metric:
    if direction not in DIRECTIONS or aggregation not in AGGREGATIONS or "." not in name:
        raise ValueError(f"metric {name!r}: direction {direction!r} / aggregation {aggregation!r}")
    m = Metric(name, direction, aggregation, description, comparable, subset)
    if REGISTRY.get(name, m) != m:  # the same declaration again (a module run as __main__) is fine
        raise ValueError(f"metric {name!r} is registered twice, differently")
    REGISTRY[name] = m
    return m


def direction(name: str) -> str | None:
    """The registered direction of ``name`` (validation losses of a training stage are "lower")."""
    if name in REGISTRY:
        return REGISTRY[name].direction
    return "lower" if name.endswith(".eval_loss") else None

"""The shipped datasets and the figures their data cards quote (``python -m data.datasets``)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from .reader import iter_records
from .stats import percentiles

HERE = Path(__file__).resolve().parent
SHIPPED = {
    "style": {"train": HERE / "style" / "train.jsonl", "test": HERE / "style" / "test.jsonl"},
    "keywords": {"train": HERE / "keywords" / "train.jsonl", "test": HERE / "keywords" / "test.jsonl"},
}
STYLE_CORE = ("tilde", "tic", "aggrieved", "rhythm", "interjection")


def read(path: Path) -> list[dict]:
    return [value for _, value, _ in iter_records(path)]


def opening(text: str, words: int = 2) -> str:
    """The first ``words`` words, without punctuation and tildes (so "아이고~," == "아이고")."""
    toks = [re.sub(r"[~!?.,…'\"]+", "", t) for t in text.split()]
    return " ".join([t for t in toks if t][:words])


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct word n-grams over all n-grams (Li et al., 2016), pooled over ``texts``."""
    grams = [tuple(ws[i:i + n]) for t in texts for ws in [t.split()] for i in range(len(ws) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def figures() -> dict:
    style = read(SHIPPED["style"]["train"]) + read(SHIPPED["style"]["test"])
    pref = [r["preferred_output"][0]["content"] for r in style]
    op, n = Counter(opening(t) for t in pref).most_common(1)[0]
    kw = read(SHIPPED["keywords"]["train"]) + read(SHIPPED["keywords"]["test"])
    return {
        "style": {
            "records": len(style), "negative_kinds": dict(Counter(r["metadata"]["negative"] for r in style)),
            "topics": dict(Counter(r["metadata"]["topic"] for r in style)),
            "register": dict(Counter(r["metadata"]["register"] for r in style)),
            "distinct_2_preferred": round(distinct_n(pref), 3),
            "top_opening": op, "top_opening_share": round(n / len(pref), 3),
            "preferred_chars": percentiles([len(t) for t in pref], (5, 50, 95)),
            "user_chars": percentiles([len(r["input"]["messages"][-1]["content"]) for r in style], (5, 50, 95)),
        },
        "keywords": {
            "records": len(kw), "rejected_kinds": dict(Counter(r["metadata"]["rejected_kind"] for r in kw)),
            "forms": dict(Counter(r["metadata"]["form"] for r in kw)),
            "distinct_2_chosen": round(distinct_n([r["chosen"] for r in kw]), 3),
            "chosen_chars": percentiles([len(r["chosen"]) for r in kw], (5, 50, 95)),
        },
    }


if __name__ == "__main__":
    print(json.dumps(figures(), ensure_ascii=False, indent=2))

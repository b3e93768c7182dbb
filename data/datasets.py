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
    "warmup": {"train": HERE / "warmup" / "train.jsonl"},
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


def pairs(path: Path) -> list[tuple[str, str, str]]:
    """(chosen, rejected, rejected kind) of every record of a shipped file."""
    out = []
    for r in read(path):
        if "preferred_output" in r:
            out.append((r["preferred_output"][0]["content"], r["non_preferred_output"][0]["content"],
                        r["metadata"]["negative"]))
        else:
            out.append((r["chosen"], r["rejected"], r["metadata"]["rejected_kind"]))
    return out


_PUNCT = re.compile(r"[.,!?…]")


def surface(text: str) -> list[float]:
    """What a length-and-punctuation shortcut sees: characters, punctuation marks, tildes."""
    return [len(text), len(_PUNCT.findall(text)), text.count("~")]


def surface_classifier(train: list[tuple[str, str, str]], test: list[tuple[str, str, str]],
                       l2: float = 1.0, steps: int = 2000) -> float:
    """Held-out accuracy of a logistic regression that tells the chosen answer from the rejected
    one by :func:`surface` features alone: fitted on the train pairs (each in both orders, so no
    side is favoured), scored on the test pairs. A balanced file keeps it near chance."""
    import numpy as np

    diff = np.array([np.subtract(surface(c), surface(r)) for c, r, _ in train], dtype=float)
    scale = np.abs(diff).mean(axis=0) + 1e-9  # comparable steps for characters and counts
    x = np.vstack([diff / scale, -diff / scale])
    y = np.concatenate([np.ones(len(diff)), np.zeros(len(diff))])
    w = np.zeros(x.shape[1])
    for _ in range(steps):  # no intercept: swapping the two answers flips the decision
        p = 1 / (1 + np.exp(-(x @ w)))
        w -= 0.5 * (x.T @ (p - y) / len(y) + l2 * w / len(y))
    z = np.array([np.subtract(surface(c), surface(r)) for c, r, _ in test], dtype=float) / scale @ w
    return float(np.mean(np.where(z > 0, 1.0, np.where(z < 0, 0.0, 0.5))))


def balance(rows: list[tuple[str, str, str]]) -> dict:
    """How far length gives the answer away in one file, and the mix of rejected kinds."""
    from .stats import length_figures

    f = length_figures([len(c) for c, _, _ in rows], [len(r) for _, r, _ in rows])
    kinds = Counter(k for _, _, k in rows)
    return {"pairs": f["pairs"], "chosen_longer_share": f["chosen_longer_share"], "length_baseline": f["length_baseline"],
            "mean_ratio": round(f["chosen_mean"] / f["rejected_mean"], 3),
            "top_rejected_kind_share": round(max(kinds.values()) / len(rows), 3)}


def balance_figures() -> dict:
    """Per shipped file: :func:`balance`, and per dataset the surface classifier's held-out accuracy."""
    out = {}
    for name in ("style", "keywords"):
        files = SHIPPED[name]
        train, test = pairs(files["train"]), pairs(files["test"])
        out[name] = {"train": balance(train), "test": balance(test),
                     "surface_classifier_heldout": round(surface_classifier(train, test), 3)}
    return out


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
    print(json.dumps({**figures(), "balance": balance_figures()}, ensure_ascii=False, indent=2))

"""``python -m eval check [--split heldout|tune|all] [--json]``: how well the text metrics agree
with the labelled sets in ``data/labelled/`` (see its data card).

* the loop detector (``repetition.degenerate``) against ``real_loops.jsonl`` (real generations
  of our runs, labelled blind) and ``loops.jsonl`` (written texts): precision and recall, and
  its errors by kind;
* the style score against ``style.jsonl`` (written texts) and the style-task rows of
  ``real_loops.jsonl``: AUC of ``style.score``, precision and recall of ``style.present``, and
  the present-rate per kind.

Figures are quoted on the ``heldout`` half (never tuned on) unless ``--split`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from .metrics.repetition import repetition
from .metrics.style import auc, style

LABELLED = Path(__file__).resolve().parents[1] / "data" / "labelled"


def rows(name: str, split: str = "all") -> list[dict]:
    out = [json.loads(line) for line in (LABELLED / name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r for r in out if split == "all" or r.get("split", split) == split]


def confusion(truth: list[bool], said: list[bool]) -> dict:
    """Precision, recall and counts of a detector's decisions against labels."""
    tp = sum(t and s for t, s in zip(truth, said))
    fp = sum(s and not t for t, s in zip(truth, said))
    fn = sum(t and not s for t, s in zip(truth, said))
    return {"n": len(truth), "positives": sum(truth), "tp": tp, "fp": fp, "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None}


def loops(split: str = "heldout") -> dict:
    out = {}
    for name, label in (("real_loops.jsonl", "label"), ("loops.jsonl", "label")):
        rs = rows(name, split if name == "real_loops.jsonl" else "all")
        said = [repetition(r["text"])["degenerate"] for r in rs]
        c = confusion([bool(r[label]) for r in rs], said)
        c["errors"] = sorted(f"{r['id']} ({r['kind']}, label {r[label]})" for r, s in zip(rs, said) if s != bool(r[label]))
        out[name] = c
    return out


def style_figures(split: str = "heldout") -> dict:
    out = {}
    for name, label in (("style.jsonl", "label"), ("real_loops.jsonl", "style")):
        rs = [r for r in rows(name, split) if label in r]
        scored = [style(r["text"]) for r in rs]
        truth = [bool(r[label]) for r in rs]
        c = confusion(truth, [s["present"] for s in scored])
        c["auc"] = round(auc([s["score"] for s, t in zip(scored, truth) if t],
                             [s["score"] for s, t in zip(scored, truth) if not t]), 3) if 0 < sum(truth) < len(truth) else None
        per_kind = defaultdict(list)
        for r, s in zip(rs, scored):
            per_kind[r["kind"] if name == "style.jsonl" else ("loop" if r["label"] else "not a loop") + f", style {r[label]}"
                     ].append(s["present"])
        c["present_rate"] = {k: f"{sum(v)}/{len(v)}" for k, v in sorted(per_kind.items())}
        c["errors"] = sorted(r["id"] for r, s, t in zip(rs, scored, truth) if s["present"] != t)
        out[name] = c
    return out


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # | head
        return 0


def _main(argv: list[str] | None) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--split", choices=["heldout", "tune", "all"], default="heldout")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    result = {"split": a.split, "loops": loops(a.split), "style": style_figures(a.split)}
    if a.json:
        print(json.dumps(result, ensure_ascii=False, indent=1))
        return 0
    for name, c in result["loops"].items():
        print(f"repetition.degenerate on {name} ({a.split if name == 'real_loops.jsonl' else 'all'}): "
              f"precision {c['precision']}, recall {c['recall']} ({c['tp']} caught, {c['fp']} false alarms, "
              f"{c['fn']} missed of {c['positives']} loops in {c['n']} texts)")
        for e in c["errors"]:
            print(f"  wrong: {e}")
    for name, c in result["style"].items():
        print(f"style.present on {name} ({a.split}): precision {c['precision']}, recall {c['recall']}, "
              f"style.score AUC {c['auc']} ({c['n']} texts, {c['positives']} in the style)")
        print("  present per kind: " + ", ".join(f"{k} {v}" for k, v in c["present_rate"].items()))
    return 0

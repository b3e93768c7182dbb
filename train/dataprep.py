"""The training data of a run: load (validated), split off validation, subset, and describe
it for ``data.json``. One function per task; ``sft_dpo`` asks for both from the same files."""

from __future__ import annotations

from data import load, read, train_val_split
from data.stats import length_figures

from .config import Config


def prepare(cfg: Config, task: str):
    """(train, validation or None, description) for ``task`` ("sft" or "dpo")."""
    d = cfg.data
    train, report = load(d.train, task, dict(d.columns), d.on_error, return_report=True)
    desc = {"task": task, "train_files": report.summary(), "rejected": report.rejected()}
    if d.val:
        val, vreport = load(d.val, task, dict(d.columns), d.on_error, return_report=True)
        desc["val_files"] = vreport.summary()
        desc["rejected"] += vreport.rejected()
    elif d.val_fraction > 0:
        # by prompt: several pairs for one question must not straddle the split
        train, val = train_val_split(train, d.val_fraction, cfg.seed)
    else:
        val = None
    n_all = len(train)
    keep = min(n_all, max(1, round(n_all * d.fraction)))
    if d.limit is not None:
        keep = min(keep, d.limit)
    if keep < n_all:
        # a seeded choice, nested across fractions (the 50% subset lies inside the 100% one)
        train = train.shuffle(seed=cfg.seed).select(range(keep))
    if task == "dpo":
        # what the report's length-bias warning reads (characters of the answers actually trained on)
        chars = lambda msgs: sum(len(m.get("content") or "") for m in msgs)  # noqa: E731
        desc["lengths"] = length_figures([chars(c) for c in train["chosen"]], [chars(r) for r in train["rejected"]])
    desc["split"] = {"train": len(train), "validation": len(val) if val is not None else 0,
                     "train_before_subset": n_all, "val_fraction": d.val_fraction if not d.val else None,
                     "fraction": d.fraction, "limit": d.limit, "seed": cfg.seed}
    return train, val, desc


def describe_test(cfg: Config, task: str) -> dict:
    """Hashes and counts of the held-out files (read here only so the report can trust them)."""
    if not cfg.data.test:
        return {}
    _, report = read(cfg.data.test, task, dict(cfg.data.columns), emit=lambda issue: None)
    return report.summary()

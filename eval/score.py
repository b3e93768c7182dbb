"""``python -m eval score INPUT.jsonl [--out OUT.json]`` — the scoring contract.

INPUT rows: ``id``, ``text``; optional ``keywords`` (list of strings), ``prompt`` (a string or
a message list: spans of the text that copy it count for no keyword, and give
``generation.echo``), ``prompt_id`` and ``sample`` (several samples of one prompt are one
cluster for every interval), ``stopped`` and ``new_tokens`` (as ``eval generate`` writes them).
OUT: ``{"rows": [{"id", "style": {...}, "repetition": {...}, "keywords"?: {...},
"generation"?: {...}}], "summary": {metric: {"value", "low", "high", "n", "direction",
"aggregation"}}}``; rates add ``wilson_low`` / ``wilson_high``, clustered rows ``clusters``.
A bad row is reported as ``INPUT:LINE: error: ...`` and left out of the rows (counted).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from contextlib import contextmanager

from data.reader import Bad, FileError, iter_records

from .metrics import REGISTRY, score_text
from .stats import summary_entry


def check_row(value) -> str | None:
    """Why a row cannot be scored, or None."""
    if not isinstance(value, dict):
        return f"expected a JSON object, got {type(value).__name__}"
    if "id" not in value:
        return "missing key 'id'"
    if not isinstance(value["id"], (str, int)) or isinstance(value["id"], bool):
        return "'id' must be a string or an integer"
    if "text" not in value:
        return "missing key 'text'"
    if not isinstance(value["text"], str):
        return f"'text' must be a string, got {type(value['text']).__name__}"
    kws = value.get("keywords")
    if kws is not None and not (isinstance(kws, list) and all(isinstance(k, str) and k.strip() for k in kws)):
        return "'keywords' must be a list of non-empty strings"
    prompt = value.get("prompt")
    if prompt is not None and not (isinstance(prompt, str) or isinstance(prompt, list) and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) for m in prompt)):
        return "'prompt' must be a string or a list of messages with string 'content'"
    for key, kind in (("stopped", bool), ("new_tokens", int), ("sample", int)):
        v = value.get(key)
        if v is not None and (not isinstance(v, kind) or kind is int and isinstance(v, bool)):
            return f"'{key}' must be {'true or false' if kind is bool else 'an integer'}"
    pid = value.get("prompt_id")
    if pid is not None and (not isinstance(pid, (str, int)) or isinstance(pid, bool)):
        return "'prompt_id' must be a string or an integer"
    return None


PARALLEL_FROM = 4000  # rows; below this a second process costs more than it saves


@contextmanager
def _no_cycle_collector():
    """Scoring makes no reference cycles, so the cycle collector is paused meanwhile: otherwise it
    walks every row built so far again and again (a tenth of the time on 20,000 rows)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _score_row(r: dict) -> dict:
    out = {"id": r["id"]}
    if r.get("prompt_id") is not None:
        out["prompt_id"] = r["prompt_id"]
    out.update(score_text(r["text"], r.get("keywords") or None, r.get("prompt"), r.get("stopped"), r.get("new_tokens")))
    return out


def _score_chunk(rows: list[dict]) -> list[dict]:
    with _no_cycle_collector():
        return [_score_row(r) for r in rows]


def score_rows(rows: list[dict], workers: int | None = None) -> dict:
    """Scores in input order; large inputs are split over the CPU cores (pure functions)."""
    import os

    workers = workers or min(os.cpu_count() or 1, 8)
    with _no_cycle_collector():
        if workers > 1 and len(rows) >= PARALLEL_FROM:
            from concurrent.futures import ProcessPoolExecutor

            size = -(-len(rows) // (4 * workers))
            chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
            with ProcessPoolExecutor(workers) as pool:
                out = [row for part in pool.map(_score_chunk, chunks) for row in part]
        else:
            out = _score_chunk(rows)
        return {"rows": out, "summary": summarize(out)}


_EMPTY: dict = {}


def summarize(rows: list[dict], n_boot: int = 1000, seed: int = 0) -> dict:
    """Every registered metric the rows have: mean or rate with its interval. Rows of one
    ``prompt_id`` are one cluster (several samples of a prompt are not independent prompts)."""
    summary = {}
    clustered = any(r.get("prompt_id") is not None for r in rows)
    for name, m in REGISTRY.items():
        group, field = m.group, m.field  # Metric.get inlined: it was most of a 20,000-row summary
        pairs = [(v, r.get("prompt_id", r["id"])) for r in rows if (v := r.get(group, _EMPTY).get(field)) is not None]
        if not pairs:
            continue
        summary[name] = summary_entry([v for v, _ in pairs], m.direction, m.aggregation,
                                      [c for _, c in pairs] if clustered else None, n_boot, seed)
    return summary


def read_rows(path: str, emit=None) -> tuple[list[dict], int]:
    """Valid rows and the count of bad ones (each reported through ``emit``)."""
    emit = emit or (lambda line: print(line, file=sys.stderr))
    rows, bad = [], 0
    for line, value, _ in iter_records(path):
        why = value.message if isinstance(value, Bad) else check_row(value)
        if why:
            emit(f"{path}:{line}: error: {why}")
            bad += 1
        else:
            rows.append(value)
    return rows, bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m eval score", description="Score generations (style, repetition, keywords).")
    p.add_argument("input", help="JSONL rows with id, text and optional keywords")
    p.add_argument("--out", help="write {rows, summary} here; without it the summary is printed")
    a = p.parse_args(argv)
    try:
        rows, bad = read_rows(a.input)
    except FileError as e:
        print(f"{a.input}: error: {e}", file=sys.stderr)
        return 2
    result = score_rows(rows)
    if a.out:
        import orjson  # the stdlib encoder with indent is pure Python: seconds for 20,000 rows

        with open(a.out, "wb") as f:
            f.write(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(json.dumps(result["summary"], ensure_ascii=False, indent=1))
    print(f"{a.input}: {len(rows)} scored, {bad} bad", file=sys.stderr)
    return 1 if bad or not rows else 0

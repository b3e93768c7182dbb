"""Run the format converters over files, line by line: errors, warnings, one summary per file.

Used by ``python -m data validate`` and by :func:`data.load`, so training and the CLI
apply exactly the same checks and print exactly the same ``PATH:LINE: error: ...`` lines.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .formats import RecordError, alternates, conversations, to_canonical
from .reader import Bad, FileError, iter_records, read_file

# A rough token estimate when no tokenizer is given: Gemma's tokenizer spends about one
# token per 1.5 Korean syllables and one per ~4 Latin characters; 1 token / 2 chars is a
# deliberately cautious middle that over- rather than under-reports long records.
CHARS_PER_TOKEN = 2.0


@dataclass
class Issue:
    path: str
    line: int
    level: str  # "error" | "warning"
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.level}: {self.message}"


@dataclass
class Record:
    path: str
    line: int
    format: str
    data: dict  # canonical record
    extra: dict = field(default_factory=dict)  # id, keywords, metadata carried through


@dataclass
class FileReport:
    path: str
    sha256: str = ""
    valid: int = 0
    errors: int = 0
    warnings: int = 0
    formats: Counter = field(default_factory=Counter)
    records: list[Record] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"line", "error", "raw"} for skipped records
    fatal: str | None = None  # the file could not be read at all

    def summary(self) -> str:
        if self.fatal:
            return f"{self.path}: error: {self.fatal}"
        return f"{self.path}: {self.valid} valid, {self.errors} errors, {self.warnings} warnings"


def _all_text(rec: dict) -> str:
    """Every text of a record once (a pair's prompt is counted once)."""
    if "text" in rec:
        return rec["text"]
    msgs = rec.get("messages") or rec["prompt"] + rec.get("chosen", []) + rec.get("rejected", []) + rec.get("completion", [])
    return "".join(m["content"] for m in msgs)


def _dup_key(rec: dict) -> tuple:
    """Two records are duplicates when every text is the same (roles follow from the format)."""
    if "text" in rec:
        return ("text", rec["text"])
    if "messages" in rec:
        return (None, *[m["content"] for m in rec["messages"]])
    if "label" in rec:
        return ("label", rec["label"], len(rec["prompt"]), *[m["content"] for m in rec["prompt"] + rec["completion"]])
    return (len(rec["prompt"]), *[m["content"] for m in rec["prompt"]],
            len(rec["chosen"]), *[m["content"] for m in rec["chosen"]], *[m["content"] for m in rec["rejected"]])


def _extra(raw: dict) -> dict:
    """Fields carried through for the eval: a record id, its keywords, its metadata."""
    out = {}
    meta = raw.get("metadata")
    rid = raw.get("id", meta.get("id") if isinstance(meta, dict) else None)
    if isinstance(rid, (str, int)):
        out["id"] = str(rid)
    kws = raw.get("keywords")
    if isinstance(kws, list) and all(isinstance(k, str) for k in kws):
        out["keywords"] = kws
    if isinstance(meta, dict):
        out["metadata"] = meta
    return out


def validate_file(
    path: str | Path,
    task: str | None = None,
    columns: dict[str, str] | None = None,
    max_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
    emit: Callable[[Issue], None] | None = None,
    keep: bool = True,
) -> FileReport:
    """Validate one file; ``emit`` receives every issue as it is found (in line order)."""
    path = str(path)
    rep = FileReport(path)
    emit = emit or (lambda issue: None)
    try:
        stored = read_file(path)
        rep.sha256 = hashlib.sha256(stored).hexdigest()
        records = iter_records(stored)
        seen: dict[tuple, int] = {}
        for line, value, raw in records:
            try:
                if isinstance(value, Bad):
                    raise RecordError(value.message)
                fmt, rec = to_canonical(value, task, columns)
            except RecordError as e:
                rep.errors += 1
                emit(Issue(path, line, "error", str(e)))
                if keep:
                    rep.rejected.append({"line": line, "error": str(e), "raw": value if not isinstance(value, Bad) else None})
                continue
            rep.valid += 1
            rep.formats[fmt] += 1
            for msg in _warnings(rec, raw, seen, line, max_tokens, count_tokens):
                rep.warnings += 1
                emit(Issue(path, line, "warning", msg))
            if keep:
                rep.records.append(Record(path, line, fmt, rec, _extra(value) if isinstance(value, dict) else {}))
    except FileError as e:
        rep.fatal = str(e)
    return rep


def _warnings(rec: dict, raw: bytes | None, seen: dict, line: int, max_tokens, count_tokens) -> list[str]:
    out = []
    # An identical line is the common duplicate and costs nothing to key on; records inside
    # a .json array (no line of their own) are keyed on their texts.
    key = raw.strip() if raw is not None else _dup_key(rec)
    first = seen.setdefault(key, line)
    if first != line:
        out.append(f"duplicate of the record on line {first}")
    # A prompt ends with a user turn and its outputs are all assistant turns, so a pair (or an
    # unpaired row) alternates exactly when its prompt does and each output is a single message.
    # A plain text has no turns.
    if "messages" in rec:
        odd = not alternates(rec["messages"])
    elif "prompt" in rec:
        odd = (not alternates(rec["prompt"]) or len(rec.get("chosen", ())) > 1 or len(rec.get("rejected", ())) > 1
               or len(rec.get("completion", ())) > 1)
    else:
        odd = False
    if odd:
        out.append("turns do not alternate user/assistant after an optional system turn; Gemma-3's chat template rejects this")
    if max_tokens:
        if count_tokens is None:
            n = int(len(_all_text(rec)) / CHARS_PER_TOKEN)
            if n > max_tokens:
                out.append(f"about {n} tokens (estimated; pass --tokenizer for an exact count), over the limit of {max_tokens}")
        else:
            parts = ["\n".join(m["content"] for m in c) for c in conversations(rec)] or [rec["text"]]
            n = max(count_tokens(p) for p in parts)
            if n > max_tokens:
                out.append(f"{n} tokens, over the limit of {max_tokens} (data.max_tokens / --max-tokens)")
    return out

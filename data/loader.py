"""``data.load``: files in any supported format -> one ``datasets.Dataset`` in TRL's format."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .formats import FOR_TASK
from .validate import FileReport, Issue, Record, validate_file

TASKS = ("sft", "dpo", "kto")
ON_ERROR = ("fail", "skip")


class DataError(Exception):
    """Loading stopped on bad records (``on_error=fail``); ``issues`` holds the printed lines."""

    def __init__(self, message: str, issues: list[Issue] | None = None, reports: list[FileReport] | None = None):
        super().__init__(message)
        self.issues = issues or []
        self.reports = reports or []


@dataclass
class LoadReport:
    """What was read: per-file counts and hashes (for the run directory) and every issue."""

    files: list[FileReport] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> int:
        return sum(f.errors for f in self.files) + sum(1 for f in self.files if f.fatal)

    def summary(self) -> dict:
        return {
            "files": [
                {"path": f.path, "sha256": f.sha256, "valid": f.valid, "errors": f.errors, "warnings": f.warnings,
                 "formats": dict(f.formats)}
                for f in self.files
            ],
            "records": sum(f.valid for f in self.files),
            "rejected": sum(f.errors for f in self.files),
        }

    def rejected(self) -> list[dict]:
        """Skipped records with their reasons, for ``rejected.jsonl`` in the run directory."""
        return [{"path": f.path, **r} for f in self.files for r in f.rejected]


def _parse_columns(columns) -> dict[str, str]:
    if not columns:
        return {}
    if isinstance(columns, dict):
        return {str(k): str(v) for k, v in columns.items()}
    out = {}
    for item in columns:
        src, sep, dst = str(item).partition("=")
        if not sep or not src or not dst:
            raise ValueError(f"column map {item!r} must look like SRC=DST")
        out[src] = dst
    return out


def read(
    paths: str | Path | Sequence[str | Path],
    task: str | None = None,
    columns=None,
    max_tokens: int | None = None,
    count_tokens=None,
    emit=None,
) -> tuple[list[Record], LoadReport]:
    """Validate every file and return the valid canonical records plus the report."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    cols = _parse_columns(columns)
    report = LoadReport()

    def collect(issue: Issue) -> None:
        report.issues.append(issue)
        if emit:
            emit(issue)

    records: list[Record] = []
    for p in paths:
        fr = validate_file(p, task, cols, max_tokens, count_tokens, emit=collect)
        report.files.append(fr)
        records.extend(fr.records)
    return records, report


def _bodies(fmt: str, d: dict, task: str, text_column: bool) -> list[dict]:
    """One canonical record -> its training row(s) for ``task`` (a pair gives two KTO rows)."""
    d = FOR_TASK[task](fmt, d)
    if task == "dpo":
        return [{"prompt": d["prompt"], "chosen": d["chosen"], "rejected": d["rejected"]}]
    if task == "kto":
        if "chosen" in d:
            # as trl.data_utils.unpair_preference_dataset unpairs: chosen -> true, rejected -> false.
            # Per record rather than on whole columns, because one file may mix pairs and unpaired rows.
            return [{"prompt": d["prompt"], "completion": d["chosen"], "label": True},
                    {"prompt": d["prompt"], "completion": d["rejected"], "label": False}]
        return [{"prompt": d["prompt"], "completion": d["completion"], "label": d["label"]}]
    if not text_column:
        return [{"messages": d["messages"]}]
    # Arrow needs one schema for every row: a text row has no messages, a chat row no text.
    return [{"messages": d.get("messages"), "text": d.get("text")}]


def to_rows(records: list[Record], task: str) -> list[dict]:
    """Canonical records -> rows of TRL's conversational format (plus id/keywords/metadata).

    sft: ``messages`` (+ ``text`` when any record is a plain text); dpo: ``prompt``/``chosen``/
    ``rejected``; kto: ``prompt``/``completion``/``label``, a pair giving two rows.
    """
    text_column = task == "sft" and any("text" in r.data for r in records)
    rows = []
    for r in records:
        extra = {
            "id": r.extra.get("id", f"{Path(r.path).name}:{r.line}"),
            "source": f"{r.path}:{r.line}",
            "keywords": r.extra.get("keywords", []),
            # metadata varies per file; a JSON string keeps the Arrow schema fixed.
            "metadata": json.dumps(r.extra.get("metadata", {}), ensure_ascii=False),
        }
        rows.extend({**body, **extra} for body in _bodies(r.format, r.data, task, text_column))
    return rows


def load(
    paths: str | Path | Sequence[str | Path],
    task: str = "dpo",
    columns=None,
    on_error: str = "fail",
    max_tokens: int | None = None,
    count_tokens=None,
    emit=None,
    return_report: bool = False,
):
    """Read ``paths`` (any supported format, per record) into a ``datasets.Dataset``.

    DPO rows: ``prompt`` (messages incl. system), ``chosen``, ``rejected``; SFT rows:
    ``messages`` with per-message ``weight`` (a preference record gives prompt + chosen), and
    ``text`` for language-modeling records; KTO rows: ``prompt``, ``completion``, ``label``
    (unpaired records as they are, a pair as two rows).
    ``on_error="fail"`` raises :class:`DataError` on any bad record (after reporting all of
    them through ``emit``, default: stderr); ``"skip"`` keeps the valid ones and the report
    lists the rejected ones — never a silent drop.
    """
    import datasets

    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if emit is None:
        emit = lambda issue: print(issue, file=sys.stderr)  # noqa: E731
    records, report = read(paths, task, columns, max_tokens, count_tokens, emit)
    fatal = [f for f in report.files if f.fatal]
    if fatal:
        raise DataError("; ".join(f.summary() for f in fatal), report.issues, report.files)
    if report.errors and on_error == "fail":
        raise DataError(
            f"{report.errors} bad record(s) in {', '.join(f.path for f in report.files if f.errors)} "
            "(set data.on_error=skip to train on the valid ones)",
            report.issues, report.files,
        )
    if not records:
        raise DataError("no valid records in " + ", ".join(f.path for f in report.files), report.issues, report.files)
    ds = datasets.Dataset.from_list(to_rows(records, task))
    return (ds, report) if return_report else ds

"""``python -m data validate|stats|split|generate|export`` — the data command line.

Exit codes (validate): 0 = no errors and at least one valid record; 1 = any error or no
valid record; 2 = usage error or a file that cannot be read.
generate: 0 = every question sent got a valid record (written or already there); 1 = any
record rejected, question missing or call failed; 2 = usage, config, missing API key or a
broken FILE. export: 0 = written and every check passed; 1 = bad input records (nothing
written) or a failed check; 2 = usage error or missing file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own exit code 2, our one-line format
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help=".jsonl, .jsonl.gz or .json files")
    p.add_argument("--task", choices=["sft", "dpo", "kto"],
                   help="check records for this method (dpo needs pairs; kto needs labels or pairs; sft refuses label false)")
    p.add_argument("--map", action="append", default=[], metavar="SRC=DST",
                   help="rename a key before reading, e.g. --map 거부됨=rejected (repeatable)")
    p.add_argument("--tokenizer", help="tokenizer (hub id or local path) for exact token counts")


def _counter(name: str | None):
    if not name:
        return None
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def _check_paths(paths: list[str]) -> list[str]:
    missing = [p for p in paths if not Path(p).is_file()]
    for p in missing:
        print(f"{p}: error: no such file" if not Path(p).exists() else f"{p}: error: not a file", file=sys.stderr)
    return missing


def cmd_validate(a) -> int:
    from .loader import _parse_columns
    from .validate import validate_file

    if _check_paths(a.paths):
        return 2
    cols = _parse_columns(a.map)
    count = _counter(a.tokenizer)
    out = sys.stdout
    bad = 0
    valid = 0
    for p in a.paths:
        rep = validate_file(p, a.task, cols, a.max_tokens, count, emit=lambda i: print(i, file=out), keep=False)
        print(rep.summary(), file=out)
        bad += rep.errors + (1 if rep.fatal else 0)
        valid += rep.valid
    if len(a.paths) > 1:
        print(f"total: {valid} valid, {bad} errors", file=out)
    return 1 if bad or not valid else 0


def cmd_stats(a) -> int:
    from .loader import read
    from .stats import stats

    if _check_paths(a.paths):
        return 2
    records, report = read(a.paths, a.task, a.map, emit=lambda i: print(i, file=sys.stderr) if i.level == "error" else None)
    count = _counter(a.tokenizer)
    s = stats(records, count or len, "tokens" if count else "chars")
    s["errors"] = report.errors
    s["files"] = [f.summary() for f in report.files]
    print(json.dumps(s, ensure_ascii=False, indent=2))
    return 1 if report.errors or not records else 0


def cmd_split(a) -> int:
    from .loader import read, to_rows
    from .split import split_indices

    if _check_paths(a.paths):
        return 2
    task = a.task
    if task is None:  # the data decides; then read again for that task, so its checks apply
        records, _ = read(a.paths, None, a.map, emit=lambda i: None)
        task = ("dpo" if all("chosen" in r.data for r in records) else
                "kto" if all("label" in r.data for r in records) else "sft")
    records, report = read(a.paths, task, a.map, emit=lambda i: print(i, file=sys.stderr))
    if report.errors or not records:
        print(f"error: {report.errors} bad record(s); fix them first (nothing written)", file=sys.stderr)
        return 1
    rows = to_rows(records, task)
    train, val = split_indices(rows, a.val_fraction, a.seed)
    out = Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, idx in (("train", train), ("validation", val)):
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for i in idx:
                # an SFT row holds either messages or text; the empty one would not read back
                row = {k: v for k, v in rows[i].items() if v is not None}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{out}/train.jsonl: {len(train)} records; {out}/validation.jsonl: {len(val)} records")
    return 0


def cmd_generate(a) -> int:
    from .generate import run_cli

    return run_cli(a)


def cmd_export(a) -> int:
    from .export import run
    from .loader import _parse_columns

    if _check_paths(a.paths):
        return 2
    if any(Path(p).resolve() == Path(a.out).resolve() for p in a.paths):
        print(f"python -m data export: error: --out {a.out} is one of the input files", file=sys.stderr)
        return 2
    try:
        return run(a.paths, a.to, a.out, _parse_columns(a.map), a.max_tokens, _counter(a.tokenizer), a.epochs,
                   say=print, err=lambda line: print(line, file=sys.stderr))
    except OSError as e:  # --out in a missing directory, not writable, ...
        print(f"python -m data export: error: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {v}")
    return v


def _add_generate(sub) -> None:
    g = sub.add_parser("generate", help="ask an OpenAI-compatible endpoint for pairs with seed 000's prompt; append valid ones to FILE")
    g.add_argument("--out", required=True, metavar="FILE", help="JSONL to append to (OpenAI DPO); FILE.done lists the questions done")
    g.add_argument("--n", required=True, type=_positive, metavar="N", help="use the first N questions (re-runs skip those done)")
    g.add_argument("--questions", metavar="FILE|NAME", help="one question per line (config: questions)")
    g.add_argument("--prompt", metavar="NAME|FILE", help="template with {{questions}}; NAME = data/prompts/NAME.txt (config: prompt)")
    g.add_argument("--config", metavar="PATH", help="YAML merged over conf/generate.yaml")
    g.add_argument("--base-url", help="config: base_url (default: OPENAI_BASE_URL, else OpenAI's API)")
    g.add_argument("--model", help="config: model")
    g.add_argument("--questions-per-call", type=_positive, metavar="K", help="config: questions_per_call")
    g.add_argument("--temperature", type=float, help="config: temperature")
    g.add_argument("--timeout", type=float, metavar="SECONDS", help="per call (config: timeout_s)")
    g.add_argument("--max-retries", type=int, metavar="R", help="config: max_retries")
    g.add_argument("--keep-paraphrases", action="store_true",
                   help="also write records whose user turn is none of the questions sent (config: keep_paraphrases)")
    g.add_argument("--json", action="store_true", help="print the summary as JSON")
    g.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    g.set_defaults(func=cmd_generate)


def _add_export(sub) -> None:
    e = sub.add_parser("export", help="write OpenAI fine-tuning files (DPO or SFT) and check them")
    e.add_argument("paths", nargs="+", metavar="PATH", help="files in any format the loader reads")
    e.add_argument("--to", required=True, choices=["openai-dpo", "openai-sft"])
    e.add_argument("--out", required=True, metavar="FILE")
    e.add_argument("--map", action="append", default=[], metavar="SRC=DST", help="rename a key before reading (repeatable)")
    e.add_argument("--max-tokens", type=_positive, default=65536, metavar="N",
                   help="token limit per example (default 65536, OpenAI's training context for gpt-4o / gpt-4o-mini)")
    e.add_argument("--tokenizer", help="tokenizer (local path or hub id) for exact counts; default: 2 characters a token")
    e.add_argument("--epochs", type=_positive, metavar="N", help="for the training-token estimate (default: OpenAI's choice for the size)")
    e.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    ap = _Parser(prog="python -m data", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    v = sub.add_parser("validate", help="check every record; PATH:LINE: error: ... lines and a summary per file")
    _common(v)
    v.add_argument("--max-tokens", type=int, default=None, help="warn about records longer than this")
    v.set_defaults(func=cmd_validate)
    s = sub.add_parser("stats", help="counts, length percentiles, duplicate prompts, chosen/rejected length ratio")
    _common(s)
    s.set_defaults(func=cmd_stats)
    sp = sub.add_parser("split", help="deterministic train/validation split keeping each prompt on one side")
    _common(sp)
    sp.add_argument("--val-fraction", type=float, default=0.2)
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--out-dir", required=True)
    sp.set_defaults(func=cmd_split)
    _add_generate(sub)
    _add_export(sub)
    a = ap.parse_args(argv)
    try:
        return a.func(a)
    except ValueError as e:  # a bad --map and similar usage errors
        print(f"python -m data: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())

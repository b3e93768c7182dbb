"""``python -m data export PATH... --to openai-dpo|openai-sft --out FILE``.

Anything the loader reads -> OpenAI's fine-tuning file formats:

    openai-dpo  {"input": {"messages": [...]}, "preferred_output": [assistant], "non_preferred_output": [assistant]}
    openai-sft  {"messages": [...]}   assistant messages keep "weight": 0 (1 is OpenAI's default)

SFT from preference data is prompt + chosen (as ``data.load(task="sft")``); from unpaired data,
prompt + completion of the rows labelled true (a row labelled false is a bad record, as for
training). A language-modeling ``text`` has no chat turns to write, so it is a bad record too. The written file
is then read back and checked the way OpenAI's data-preparation cookbook checks a file
(keys, roles, non-empty content, an assistant message to learn from, tokens per example
against a limit, the example count, and the billed training tokens per epoch).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .stats import percentiles
from .validate import CHARS_PER_TOKEN

TARGETS = ("openai-dpo", "openai-sft")
TASK = {"openai-dpo": "dpo", "openai-sft": "sft"}
MIN_EXAMPLES = 10  # OpenAI refuses a training file with fewer
# OpenAI's cookbook ("Data preparation and analysis for chat model fine-tuning"): roles and
# message keys it accepts, its token overhead per message, and how it picks default epochs.
ROLES = ("system", "user", "assistant", "developer", "tool", "function")
MESSAGE_KEYS = {"role", "content", "name", "weight", "function_call", "tool_calls", "tool_call_id"}
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES = 3, 100, 25_000
MIN_DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS = 1, 25


# --- canonical record -> OpenAI row ---------------------------------------------------------


def _msg(m: dict, keep_weight: bool = False) -> dict:
    out = {"role": m["role"], "content": m["content"]}
    if keep_weight and m["role"] == "assistant" and m.get("weight") == 0:
        out["weight"] = 0
    return out


def dpo_row(rec: dict) -> dict:
    """A canonical preference record as one OpenAI DPO line (outputs at the top level)."""
    return {
        "input": {"messages": [_msg(m) for m in rec["prompt"]]},
        "preferred_output": [_msg(m) for m in rec["chosen"]],
        "non_preferred_output": [_msg(m) for m in rec["rejected"]],
    }


def sft_row(rec: dict) -> dict:
    """A canonical record as one OpenAI chat line; a pair becomes prompt + chosen."""
    msgs = rec["messages"] if "messages" in rec else rec["prompt"] + rec["chosen"]
    return {"messages": [_msg(m, keep_weight=True) for m in msgs]}


def to_rows(records, to: str) -> list[dict]:
    make = dpo_row if to == "openai-dpo" else sft_row
    return [make(r.data) for r in records]


# --- checks on the written file ---------------------------------------------------------------


@dataclass
class Check:
    name: str
    status: str  # "ok" | "FAIL" | "info"
    detail: str

    def __str__(self) -> str:
        return f"  {self.status:<4} {self.name}: {self.detail}"


def _message_problems(m, where: str) -> list[str]:
    if not isinstance(m, dict):
        return [f"{where} is not a message object"]
    out = []
    if "role" not in m or "content" not in m:
        out.append(f"{where} is missing 'role' or 'content'")
    extra = set(m) - MESSAGE_KEYS
    if extra:
        out.append(f"{where} has unrecognized key(s) {', '.join(sorted(extra))}")
    if m.get("role") not in ROLES:
        out.append(f"{where}.role is {m.get('role')!r}; OpenAI accepts {', '.join(ROLES)}")
    c = m.get("content")
    if not isinstance(c, str) or not c.strip():
        out.append(f"{where}.content is empty or not text")
    if "weight" in m and (m.get("role") != "assistant" or m["weight"] not in (0, 1) or isinstance(m["weight"], bool)):
        out.append(f"{where}.weight must be 0 or 1 and only on assistant messages")
    return out


def _messages_problems(msgs, key: str) -> list[str]:
    if not isinstance(msgs, list) or not msgs:
        return [f"'{key}' is missing or not a non-empty list"]
    return [p for i, m in enumerate(msgs) for p in _message_problems(m, f"{key}[{i}]")]


def example_problems(row, to: str) -> list[str]:
    """Why OpenAI would reject this line (empty list = fine)."""
    if not isinstance(row, dict):
        return ["line is not a JSON object"]
    if to == "openai-sft":
        msgs = row.get("messages")
        out = _messages_problems(msgs, "messages")
        if not out:
            if msgs[-1].get("role") != "assistant":
                out.append("'messages' does not end with an assistant message")
            elif not any(m.get("role") == "assistant" and m.get("weight", 1) == 1 for m in msgs):
                out.append("no assistant message with weight 1: nothing to learn from")
        return out
    inp = row.get("input")
    msgs = inp.get("messages") if isinstance(inp, dict) else None
    out = _messages_problems(msgs, "input.messages")
    if not out and msgs[-1].get("role") != "user":
        out.append("'input.messages' must end with a user message")
    for key in ("preferred_output", "non_preferred_output"):
        outs = row.get(key)
        probs = _messages_problems(outs, key)
        if not probs and (len(outs) != 1 or outs[0].get("role") != "assistant"):
            probs.append(f"'{key}' must be exactly one assistant message")
        out += probs
    if not out and row["preferred_output"][0]["content"] == row["non_preferred_output"][0]["content"]:
        out.append("preferred and non-preferred outputs are identical")
    return out


def _all_messages(row: dict, to: str) -> list[dict]:
    if to == "openai-sft":
        return row["messages"]
    return row["input"]["messages"] + row["preferred_output"] + row["non_preferred_output"]


def example_tokens(row: dict, to: str, count: Callable[[str], int]) -> int:
    """The cookbook's ``num_tokens_from_messages``: content tokens + 3 per message + 3."""
    msgs = _all_messages(row, to)
    return sum(TOKENS_PER_MESSAGE + count(m["content"]) for m in msgs) + TOKENS_PER_REPLY


def default_epochs(n: int) -> int:
    """How many epochs OpenAI trains for by default on ``n`` examples (cookbook heuristic)."""
    if n * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
    if n * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return TARGET_EPOCHS


def check_file(path: str | Path, to: str, max_tokens: int, count_tokens=None, epochs: int | None = None,
               emit: Callable[[str], None] = print) -> list[Check]:
    """Read a written file back as OpenAI would and return the checks; bad lines go to ``emit``."""
    counted = "tokenizer counts" if count_tokens else f"estimated at {CHARS_PER_TOKEN:g} characters a token; --tokenizer for exact counts"
    count = count_tokens or (lambda text: math.ceil(len(text) / CHARS_PER_TOKEN))
    bad, good = 0, []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                problems = [f"invalid JSON: {e.msg}"]
            else:
                problems = example_problems(row, to)
            for p in problems:
                emit(f"{path}:{n}: error: {p}")
            if problems:
                bad += 1
            else:
                good.append(row)
    total = bad + len(good)
    sizes = [example_tokens(r, to, count) for r in good]
    over = sum(1 for s in sizes if s > max_tokens)
    n_msgs = [len(_all_messages(r, to)) for r in good]
    checks = [
        Check("format", "FAIL" if bad else "ok",
              f"{total} examples, {bad} with errors (keys, roles, non-empty text content, "
              + ("ends with an assistant message to learn from)" if to == "openai-sft" else "a prompt ending with a user turn, one assistant message per output)")),
        Check("example count", "ok" if total >= MIN_EXAMPLES else "FAIL", f"{total} (OpenAI needs at least {MIN_EXAMPLES})"),
    ]
    if sizes:
        p = percentiles(sizes, (50, 100))
        checks.append(Check("tokens per example", "FAIL" if over else "ok",
                            f"{over} over the limit of {max_tokens}; min {min(sizes)}, p50 {p['p50']}, max {p['p100']} ({counted})"))
        checks.append(Check("messages per example", "info", f"min {min(n_msgs)}, max {max(n_msgs)}"))
        ep = epochs or default_epochs(len(sizes))
        billed = sum(min(max_tokens, s) for s in sizes)
        checks.append(Check("training tokens", "info",
                            f"~{billed:,} billed per epoch{' (prompt + both outputs)' if to == 'openai-dpo' else ''}; {ep} epoch(s){'' if epochs else ' (OpenAI default for this size)'}"
                            f" -> ~{billed * ep:,} training tokens"))
    return checks


def write_jsonl(rows: list[dict], out: str | Path) -> None:
    with open(out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def run(paths: list[str], to: str, out: str, columns=None, max_tokens: int = 65536, count_tokens=None,
        epochs: int | None = None, say: Callable[[str], None] = print, err: Callable[[str], None] = print) -> int:
    """Read ``paths`` with the shared validator, write ``out`` in OpenAI's format ``to``, check it.

    Returns the exit code: 0 = written and every check passed; 1 = bad input records
    (nothing written) or a failed check (the file is written, so it can be inspected).
    """
    from .loader import read

    records, report = read(paths, TASK[to], columns, emit=lambda i: err(str(i)) if i.level == "error" else None)
    texts = [r for r in records if "text" in r.data]
    for r in texts:
        err(f"{r.path}:{r.line}: error: a language-modeling 'text' record has no chat turns; "
            "OpenAI's chat fine-tuning file needs 'messages' with an assistant turn")
    bad = report.errors + len(texts)
    if bad or not records:
        err(f"error: {bad} bad record(s), {len(records) - len(texts)} valid; fix them first (nothing written)")
        return 1
    write_jsonl(to_rows(records, to), out)
    src = ", ".join(f"{f.path} ({f.valid})" for f in report.files)
    say(f"{out}: {len(records)} examples ({to}) from {src}")
    say(f"checks (OpenAI data preparation, {to}):")
    checks = check_file(out, to, max_tokens, count_tokens, epochs, emit=err)
    for c in checks:
        say(str(c))
    failed = [c.name for c in checks if c.status == "FAIL"]
    say(f"FAILED: {', '.join(failed)} (the file is written; fix before uploading)" if failed else "all checks passed")
    return 1 if failed else 0

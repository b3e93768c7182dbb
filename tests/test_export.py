"""``python -m data export``: OpenAI DPO / SFT files, the cookbook's checks, and the round trip
load(export(x)) == load(x) for every format the loader reads."""

import json

import pytest
from conftest import ROOT, read_jsonl, write_jsonl

from data import load, read
from data.__main__ import main
from data.export import check_file, default_epochs, example_tokens

SYS = {"role": "system", "content": "시스템"}


def u(t):
    return {"role": "user", "content": t}


def a(t, **kw):
    return {"role": "assistant", "content": t, **kw}


# one builder per format the loader reads (data/formats.py); i makes 10 distinct records
PAIR_FORMATS = {
    "openai-dpo": lambda i: {"input": {"messages": [SYS, u(f"q{i}")]}, "preferred_output": [a(f"good {i}")],
                             "non_preferred_output": [a(f"bad {i}")], "metadata": {"id": i}},
    "openai-dpo nested (seed 000)": lambda i: {"input": {"messages": [u(f"q{i}")], "preferred_output": [a(f"good {i}")],
                                                         "non_preferred_output": [a(f"bad {i}")]}},
    "openai-dpo developer + parts": lambda i: {
        "input": {"messages": [{"role": "developer", "content": "dev"},
                               {"role": "user", "content": [{"type": "text", "text": "q"}, {"type": "text", "text": str(i)}]}]},
        "preferred_output": a(f"good {i}"), "non_preferred_output": [a(f"bad {i}")]},
    "trl strings": lambda i: {"prompt": f"q{i}", "chosen": f"good {i}", "rejected": f"bad {i}"},
    "trl messages, multi-turn": lambda i: {"prompt": [SYS, u("hi"), a("hello"), u(f"q{i}")], "chosen": [a(f"good {i}")],
                                           "rejected": [a(f"bad {i}")]},
    "hh transcript": lambda i: {"chosen": f"\n\nHuman: q{i}\n\nAssistant: good {i}",
                                "rejected": f"\n\nHuman: q{i}\n\nAssistant: bad {i}"},
    "implicit message lists": lambda i: {"chosen": [u(f"q{i}"), a(f"good {i}")], "rejected": [u(f"q{i}"), a(f"bad {i}")]},
    "implicit plain strings": lambda i: {"chosen": f"The sky {i} is blue.", "rejected": f"The sky {i} is green."},
}
SFT_FORMATS = {
    "openai-chat with weight 0": lambda i: {"messages": [SYS, u("hi"), a("context", weight=0), u(f"q{i}"), a(f"answer {i}")]},
    "prompt-completion": lambda i: {"prompt": f"q{i}", "completion": f"answer {i}"},
    "input-output (alpaca)": lambda i: {"instruction": "do", "input": f"x{i}", "output": f"y{i}"},
    "unpaired, label true": lambda i: {"prompt": f"q{i}", "completion": f"answer {i}", "label": True},
    "unpaired conversational, label true": lambda i: {"prompt": [SYS, u(f"q{i}")], "completion": [a(f"answer {i}")], "label": True},
}


def export(tmp_path, src, to, *extra):
    out = tmp_path / f"out-{to}.jsonl"
    return main(["export", str(src), "--to", to, "--out", str(out), *extra]), out


def canonical(path, task):
    records, report = read(path, task)
    assert report.errors == 0
    return [r.data for r in records]


@pytest.mark.parametrize("fmt", list(PAIR_FORMATS))
def test_round_trip_dpo(fmt, tmp_path, capsys):
    src = write_jsonl(tmp_path / "src.jsonl", [PAIR_FORMATS[fmt](i) for i in range(10)])
    code, out = export(tmp_path, src, "openai-dpo")
    assert code == 0, capsys.readouterr()
    assert canonical(out, "dpo") == canonical(src, "dpo")
    # and SFT from the same pairs = prompt + chosen, as data.load(task="sft") reads them
    code, out_sft = export(tmp_path, src, "openai-sft")
    assert code == 0
    assert canonical(out_sft, "sft") == canonical(src, "sft")
    row = read_jsonl(out)[0]
    assert set(row) == {"input", "preferred_output", "non_preferred_output"} and set(row["input"]) == {"messages"}
    assert all(set(m) == {"role", "content"} for m in row["input"]["messages"] + row["preferred_output"])


@pytest.mark.parametrize("fmt", list(SFT_FORMATS))
def test_round_trip_sft(fmt, tmp_path):
    src = write_jsonl(tmp_path / "src.jsonl", [SFT_FORMATS[fmt](i) for i in range(10)])
    code, out = export(tmp_path, src, "openai-sft")
    assert code == 0
    assert canonical(out, "sft") == canonical(src, "sft")


def test_round_trip_through_data_load(tmp_path):
    src = write_jsonl(tmp_path / "src.jsonl", [PAIR_FORMATS["trl messages, multi-turn"](i) for i in range(10)])
    _, out = export(tmp_path, src, "openai-dpo")
    cols = ["prompt", "chosen", "rejected"]
    assert load(out, "dpo").select_columns(cols).to_list() == load(src, "dpo").select_columns(cols).to_list()


def test_weight_is_kept_only_where_it_says_something(tmp_path):
    src = write_jsonl(tmp_path / "src.jsonl", [SFT_FORMATS["openai-chat with weight 0"](i) for i in range(10)])
    _, out = export(tmp_path, src, "openai-sft")
    assert read_jsonl(out)[0] == {"messages": [SYS, u("hi"), a("context", weight=0), u("q0"), a("answer 0")]}


@pytest.mark.parametrize("name,n", [("style", 240), ("keywords", 175)])
@pytest.mark.parametrize("to", ["openai-dpo", "openai-sft"])
def test_shipped_datasets_export_and_pass_the_checks(name, n, to, tmp_path, capsys):
    paths = [ROOT / "data" / name / "train.jsonl", ROOT / "data" / name / "test.jsonl"]
    out = tmp_path / "x.jsonl"
    assert main(["export", *map(str, paths), "--to", to, "--out", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.err == ""
    assert f"{out}: {n} examples ({to})" in cap.out and cap.out.rstrip().endswith("all checks passed")
    assert f"ok   format: {n} examples, 0 with errors" in cap.out and f"ok   example count: {n}" in cap.out
    assert "ok   tokens per example: 0 over the limit of 65536" in cap.out
    assert "3 epoch(s) (OpenAI default for this size)" in cap.out
    task = "dpo" if to == "openai-dpo" else "sft"
    assert canonical(out, task) == [d for p in paths for d in canonical(p, task)]


def test_checks_fail_on_few_examples_and_long_examples(tmp_path, capsys):
    src = write_jsonl(tmp_path / "src.jsonl", [{"prompt": "q" * 40, "chosen": "a" * 40, "rejected": "b"}] * 3)
    code, out = export(tmp_path, src, "openai-dpo", "--max-tokens", "30")
    assert code == 1 and out.exists()  # written, so it can be looked at
    lines = capsys.readouterr().out.splitlines()
    assert "  FAIL example count: 3 (OpenAI needs at least 10)" in lines
    # 40/2 + 40/2 + 1 content tokens + 3 per message + 3 = 53 each
    assert any(x.startswith("  FAIL tokens per example: 3 over the limit of 30; min 53, p50 53, max 53") for x in lines)
    assert "~90 billed per epoch" in lines[-2] and "25 epoch(s)" in lines[-2]  # min(limit, 53) x 3; 100 // 3 -> capped 25
    assert lines[-1] == "FAILED: example count, tokens per example (the file is written; fix before uploading)"


def test_bad_input_writes_nothing(tmp_path, capsys):
    src = write_jsonl(tmp_path / "src.jsonl", [{"messages": [u("q"), a("x")]}, {"prompt": "q", "chosen": "a", "rejected": "a"}])
    code, out = export(tmp_path, src, "openai-dpo")
    assert code == 1 and not out.exists()
    err = capsys.readouterr().err.splitlines()
    assert err == [f"{src}:1: error: openai-chat record has no rejected output; --task dpo needs chosen/rejected pairs",
                   f"{src}:2: error: 'chosen' and 'rejected' are identical",
                   "error: 2 bad record(s), 0 valid; fix them first (nothing written)"]


def test_usage_errors(tmp_path, capsys):
    src = write_jsonl(tmp_path / "src.jsonl", [{"prompt": "q", "completion": "a"}])
    assert main(["export", str(tmp_path / "nope.jsonl"), "--to", "openai-sft", "--out", str(tmp_path / "o")]) == 2
    assert main(["export", str(src), "--to", "openai-sft", "--out", str(src)]) == 2
    assert main(["export", str(src), "--to", "openai-sft", "--out", str(tmp_path / "no" / "dir" / "o.jsonl")]) == 2
    with pytest.raises(SystemExit) as e:
        main(["export", str(src), "--to", "openai-chat", "--out", "o"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nope.jsonl: error: no such file" in err and "is one of the input files" in err
    assert "No such file or directory" in err and "invalid choice: 'openai-chat'" in err


def test_check_file_finds_what_openai_rejects(tmp_path):
    bad_sft = [
        {"messages": [u("q")]},                                       # no assistant message at the end
        {"messages": [{"role": "robot", "content": "x"}, a("y")]},    # unknown role
        {"messages": [u(" "), a("y")]},                               # empty content
        {"messages": [u("q"), a("y", weight=0)]},                     # nothing to learn from
        {"messages": [{"role": "user", "content": "q", "weight": 1}, a("y")]},
        {"messages": [u("q"), {"role": "assistant", "content": "y", "tone": "warm"}]},
        ["not", "an", "object"],
    ]
    errors = []
    write_jsonl(tmp_path / "s.jsonl", bad_sft)
    checks = check_file(tmp_path / "s.jsonl", "openai-sft", 1000, emit=errors.append)
    assert [c.status for c in checks] == ["FAIL", "FAIL"]  # format, count; no valid example to measure
    assert [e.split(": error: ")[1] for e in errors] == [
        "'messages' does not end with an assistant message",
        "messages[0].role is 'robot'; OpenAI accepts system, user, assistant, developer, tool, function",
        "messages[0].content is empty or not text",
        "no assistant message with weight 1: nothing to learn from",
        "messages[0].weight must be 0 or 1 and only on assistant messages",
        "messages[1] has unrecognized key(s) tone",
        "line is not a JSON object",
    ]
    errors = []
    write_jsonl(tmp_path / "d.jsonl", [
        {"input": {"messages": [u("q"), a("x")]}, "preferred_output": [a("y")], "non_preferred_output": [a("z")]},
        {"input": {"messages": [u("q")]}, "preferred_output": [a("y"), a("y2")], "non_preferred_output": [u("z")]},
        {"input": {"messages": [u("q")]}, "preferred_output": [a("y")], "non_preferred_output": [a("y")]},
        {"messages": [u("q"), a("y")]},
    ])
    check_file(tmp_path / "d.jsonl", "openai-dpo", 1000, emit=errors.append)
    assert [e.split(": error: ")[1] for e in errors] == [
        "'input.messages' must end with a user message",
        "'preferred_output' must be exactly one assistant message",
        "'non_preferred_output' must be exactly one assistant message",
        "preferred and non-preferred outputs are identical",
        "'input.messages' is missing or not a non-empty list",
        "'preferred_output' is missing or not a non-empty list",
        "'non_preferred_output' is missing or not a non-empty list",
    ]


def test_token_count_and_default_epochs_by_hand():
    row = {"messages": [u("ab"), a("cde")]}
    assert example_tokens(row, "openai-sft", len) == (3 + 2) + (3 + 3) + 3
    assert [default_epochs(n) for n in (3, 10, 34, 50, 8333, 10_000)] == [25, 10, 3, 3, 3, 2]


def test_exported_file_is_plain_jsonl(tmp_path):
    src = write_jsonl(tmp_path / "src.jsonl", [PAIR_FORMATS["openai-dpo"](i) for i in range(10)])
    _, out = export(tmp_path, src, "openai-dpo")
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10 and all(json.loads(x)["input"]["messages"][0] == SYS for x in lines)


@pytest.mark.parametrize("to, record, reason", [
    ("openai-sft", {"text": "The sky is blue."},
     "a language-modeling 'text' record has no chat turns; OpenAI's chat fine-tuning file needs 'messages' with an assistant turn"),
    ("openai-sft", {"prompt": "q", "completion": "a", "label": False},
     "'label' is false (not preferred): SFT trains only on completions labelled true (method=kto learns from both)"),
    ("openai-dpo", {"prompt": "q", "completion": "a", "label": True},
     "unpaired preference record (prompt/completion/label): --task dpo needs a chosen and a rejected answer to the same "
     "prompt; train unpaired data with method=kto"),
])
def test_what_openai_files_cannot_hold_is_a_bad_record(to, record, reason, tmp_path, capsys):
    src = write_jsonl(tmp_path / "src.jsonl", [PAIR_FORMATS["trl strings"](i) for i in range(10)] + [record])
    code, out = export(tmp_path, src, to)
    assert code == 1 and not out.exists()
    assert capsys.readouterr().err.splitlines() == [
        f"{src}:11: error: {reason}", "error: 1 bad record(s), 10 valid; fix them first (nothing written)"]

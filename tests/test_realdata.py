"""The real files in ../shared/realdata (written by no one here), read as they are."""

import time

from conftest import run_cli

from data import load, validate_file


def test_hh_rlhf_english(realdata):
    p = realdata / "hh-rlhf-harmless-base-test.jsonl.gz"
    t = time.perf_counter()
    r = run_cli("data", "validate", p)
    assert time.perf_counter() - t < 30  # "in seconds"; the throughput figure lives in the benchmark
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert out[-1] == f"{p}: 2303 valid, 9 errors, 4 warnings"
    # hand-checked: line 87's chosen transcript ends with an empty "Assistant:" turn; line 1951's
    # rejected transcript contains a whole extra "Human:" exchange inside the last response.
    assert f"{p}:87: error: HH transcript: the final 'Assistant:' response in 'chosen' is empty" in out
    assert f"{p}:1951: error: HH transcript: the prompt before the last 'Assistant:' differs between 'chosen' and 'rejected'" in out


def test_hh_rlhf_loads_for_both_methods_with_skip(realdata):
    p = realdata / "hh-rlhf-harmless-base-test.jsonl.gz"
    ds, rep = load(p, task="dpo", on_error="skip", return_report=True, emit=lambda i: None)
    assert len(ds) == 2303 and len(rep.rejected()) == 9
    row = ds[0]
    assert row["prompt"][0] == {"role": "user", "content": "what are some pranks with a pen i can do?", "weight": None}
    assert row["prompt"][-1]["role"] == "user" and row["chosen"][0]["role"] == "assistant"
    sft = load(p, task="sft", on_error="skip", emit=lambda i: None)
    assert sft[0]["messages"][:len(row["prompt"])] == row["prompt"]
    assert sft[0]["messages"][-1] == row["chosen"][0]


def test_broken_korean_translation(realdata):
    p = realdata / "ko-hh-rlhf-harmless-base-test.txt"
    r = run_cli("data", "validate", p)
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr
    out = r.stdout.splitlines()
    assert out[-1] == f"{p}: 4 valid, 2308 errors, 0 warnings"
    # line 1: an unescaped quote after the first question mark
    assert out[0] == f"{p}:1: error: invalid JSON: Expecting ',' delimiter at column 51"
    # with the translated key mapped back, those rows are read as preference pairs again
    r = run_cli("data", "validate", p, "--map", "거부됨=rejected")
    assert r.stdout.splitlines()[-1] == f"{p}: 65 valid, 2247 errors, 1 warnings"
    rep = validate_file(p, columns={"거부됨": "rejected", "거부": "rejected", "거절": "rejected"})
    assert rep.valid == 70
    assert rep.formats == {"hh/implicit": 70}

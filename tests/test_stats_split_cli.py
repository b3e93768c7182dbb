"""``python -m data stats`` and ``python -m data split``."""

import json

from conftest import run_cli, write_jsonl


def test_stats_hand_checked(tmp_path):
    p = write_jsonl(tmp_path / "d.jsonl", [
        {"prompt": "ab", "chosen": "aaaa", "rejected": "aa"},     # ratio 2.0
        {"prompt": "ab", "chosen": "a", "rejected": "aaaa"},      # ratio 0.25, duplicate prompt
        {"input": "xyz", "output": "hello"},
    ])
    r = run_cli("data", "stats", p)
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert s["records"] == 3 and s["preference_pairs"] == 2 and s["conversations"] == 1
    assert s["duplicate_prompts"] == 1
    assert s["chosen_length"] == {"p5": 1, "p50": 1, "p95": 1, "p100": 4}
    assert s["chosen_rejected_ratio"] == {"median": 1.125, "mean": 1.125, "chosen_longer_share": 0.5}
    assert s["prompt_length"]["p100"] == 3


def test_split_writes_trl_files(tmp_path):
    recs = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(10)]
    p = write_jsonl(tmp_path / "d.jsonl", recs)
    r = run_cli("data", "split", p, "--val-fraction", "0.2", "--out-dir", tmp_path / "out")
    assert r.returncode == 0, r.stderr
    tr = [json.loads(x) for x in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    va = [json.loads(x) for x in (tmp_path / "out" / "validation.jsonl").read_text().splitlines()]
    assert (len(tr), len(va)) == (8, 2)
    # the written files are themselves valid input
    assert run_cli("data", "validate", tmp_path / "out" / "train.jsonl", "--task", "dpo").returncode == 0

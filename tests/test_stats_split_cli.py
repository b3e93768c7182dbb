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
    # "the longer answer wins" is right on the first pair and wrong on the second
    assert s["chosen_rejected_ratio"] == {"median": 1.125, "mean": 1.125, "chosen_longer_share": 0.5,
                                          "length_baseline": 0.5}
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


def test_stats_and_split_of_unpaired_and_text_records(tmp_path):
    unpaired = [{"prompt": f"q{i}", "completion": "abc", "label": i % 2 == 0} for i in range(10)]
    p = write_jsonl(tmp_path / "kto.jsonl", unpaired)
    s = json.loads(run_cli("data", "stats", p).stdout)
    assert s["unpaired"] == {"label_true": 5, "label_false": 5, "completion_length": {"p5": 3, "p50": 3, "p95": 3, "p100": 3}}
    # the data decides the task: all unpaired -> KTO rows, which read back as unpaired records
    r = run_cli("data", "split", p, "--val-fraction", "0.2", "--out-dir", tmp_path / "kto")
    assert r.returncode == 0, r.stderr
    assert run_cli("data", "validate", tmp_path / "kto" / "train.jsonl", "--task", "kto").returncode == 0
    # mixed with a text: SFT rows, so the false labels are refused, not written
    q = write_jsonl(tmp_path / "mixed.jsonl", unpaired + [{"text": "바다는 푸르다"}])
    r = run_cli("data", "split", q, "--out-dir", tmp_path / "sft")
    assert r.returncode == 1 and r.stderr.count("'label' is false (not preferred)") == 5
    assert not (tmp_path / "sft").exists()
    q = write_jsonl(tmp_path / "mixed.jsonl", unpaired[::2] + [{"text": "바다는 푸르다"}])
    assert run_cli("data", "split", q, "--val-fraction", "0", "--out-dir", tmp_path / "sft").returncode == 0
    rows = [json.loads(x) for x in (tmp_path / "sft" / "train.jsonl").read_text().splitlines()]
    assert rows[-1]["text"] == "바다는 푸르다" and "messages" not in rows[-1] and "text" not in rows[0]
    assert run_cli("data", "validate", tmp_path / "sft" / "train.jsonl", "--task", "sft").returncode == 0

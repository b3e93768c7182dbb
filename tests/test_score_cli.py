"""``python -m eval score`` — the JSON contract, bad rows, and the bootstrap summary."""

import json

import pytest
from conftest import run_cli, write_jsonl

from eval.stats import bootstrap

STYLED = "커피요? 음음음~ 저 지금 이게 네 잔째거든요~ 아침에 한 잔, 회의 때 한 잔~ 커피는 하루에 몇 잔까지 괜찮은 거예요~?"
LOOP = "바다에 간다 " + "별이 진다 " * 6


def test_score_contract(tmp_path):
    inp = write_jsonl(tmp_path / "g.jsonl", [
        {"id": "a", "text": STYLED},
        {"id": 2, "text": LOOP, "keywords": ["바다", "별", "등대"]},
    ])
    out = tmp_path / "s.json"
    r = run_cli("eval", "score", inp, "--out", out)
    assert r.returncode == 0, r.stderr
    result = json.loads(out.read_text())
    a, b = result["rows"]
    assert a["id"] == "a" and set(a) == {"id", "style", "repetition"}  # no keywords -> no keywords group
    assert set(a["style"]) == {"score", "present", "markers"} and a["style"]["present"] is True
    assert isinstance(a["style"]["score"], float) and 0 <= a["style"]["score"] <= 1
    assert a["repetition"]["degenerate"] is False and b["repetition"]["degenerate"] is True
    assert b["keywords"] == {"hits": {"바다": True, "별": True, "등대": False}, "all_present": False,
                             "coverage": 2 / 3}
    s = result["summary"]
    assert s["repetition.degenerate"]["value"] == 0.5 and s["repetition.degenerate"]["n"] == 2
    assert s["repetition.degenerate"]["direction"] == "lower" and s["repetition.degenerate"]["aggregation"] == "rate"
    assert s["keywords.coverage"]["n"] == 1  # only rows with keywords
    for m in s.values():
        assert set(m) == {"value", "low", "high", "n", "direction", "aggregation"}
        assert m["low"] <= m["value"] <= m["high"]


def test_without_out_it_prints_the_summary(tmp_path):
    inp = write_jsonl(tmp_path / "g.jsonl", [{"id": "a", "text": STYLED}])
    r = run_cli("eval", "score", inp)
    assert r.returncode == 0 and "style.score" in json.loads(r.stdout)


def test_bad_rows_are_reported_by_line_and_never_crash(tmp_path):
    inp = write_jsonl(tmp_path / "g.jsonl", [
        {"id": "ok", "text": "좋아요"},
        "{not json",
        {"text": "no id"},
        {"id": "x", "text": 5},
        {"id": "y", "text": "t", "keywords": "바다"},
        "[1, 2]",
        {"id": True, "text": "t"},
    ])
    out = tmp_path / "s.json"
    r = run_cli("eval", "score", inp, "--out", out)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line for line in r.stderr.splitlines() if ": error: " in line]
    assert [e.split(":")[1] for e in errors] == ["2", "3", "4", "5", "6", "7"]
    assert "missing key 'id'" in errors[1] and "'text' must be a string" in errors[2]
    assert r.stderr.strip().splitlines()[-1].endswith("1 scored, 6 bad")
    assert [row["id"] for row in json.loads(out.read_text())["rows"]] == ["ok"]


def test_binary_garbage_and_missing_file(tmp_path):
    junk = tmp_path / "junk.jsonl"
    junk.write_bytes(b"\xff\xfe\x00garbage\n\x89PNG\n")
    r = run_cli("eval", "score", junk)
    assert r.returncode == 1 and "Traceback" not in r.stderr and f"{junk}:1: error:" in r.stderr
    r = run_cli("eval", "score", tmp_path / "missing.jsonl")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_bootstrap_by_hand():
    b = bootstrap([True, False, True, True])
    assert b["value"] == 0.75 and b["n"] == 4 and 0 <= b["low"] <= 0.75 <= b["high"] <= 1
    assert bootstrap([2.0]) == {"value": 2.0, "low": 2.0, "high": 2.0, "n": 1}
    assert bootstrap([])["value"] is None
    assert bootstrap([1, 2, 3], seed=1) == bootstrap([1, 2, 3], seed=1)  # seeded


@pytest.mark.parametrize("kind", ["rate", "rare rate", "skewed", "counts"])
def test_normal_limit_agrees_with_the_bootstrap_for_large_inputs(kind, monkeypatch):
    import numpy as np

    import eval.stats as stats

    rng = np.random.default_rng(3)
    n = stats.NORMAL_FROM
    x = {"rate": rng.random(n) < 0.3, "rare rate": rng.random(n) < 0.002, "skewed": rng.lognormal(0, 1, n),
         "counts": rng.poisson(2, n)}[kind].tolist()
    normal = bootstrap(x)
    monkeypatch.setattr(stats, "NORMAL_FROM", n + 1)
    boot = bootstrap(x)
    half = (boot["high"] - boot["low"]) / 2
    assert normal == stats._normal(np.asarray(x, dtype=float), 0.95)  # the normal limit was used
    assert normal["value"] == boot["value"] and normal["n"] == n
    assert abs(normal["low"] - boot["low"]) < half / 10 and abs(normal["high"] - boot["high"]) < half / 10
    assert all(type(normal[k]) is float for k in ("value", "low", "high"))  # JSON-ready, not numpy


def test_parallel_scoring_matches_one_process(monkeypatch):
    import eval.score as score

    rows = [{"id": i, "text": t, "keywords": ["바다", "별"]} for i, t in
            enumerate(["바다를 보았다. 별이 진다.", "음음음~ 음음음~ 음음음~ 음음음~ 음음음~", "희망이 지나간다 " * 9, ""] * 5)]
    monkeypatch.setattr(score, "PARALLEL_FROM", 4)
    assert score.score_rows(rows, workers=2) == score.score_rows(rows, workers=1)

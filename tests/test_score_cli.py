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
    assert set(a["style"]) >= {"score", "present", "markers"} and a["style"]["present"] is True
    assert a["style"]["present_unlooped"] is True and b["style"]["present_unlooped"] is None  # b loops
    assert isinstance(a["style"]["score"], float) and 0 <= a["style"]["score"] <= 1
    assert a["repetition"]["degenerate"] is False and b["repetition"]["degenerate"] is True
    assert b["keywords"] == {"hits": {"바다": True, "별": True, "등대": False}, "all_present": False,
                             "coverage": 2 / 3}
    s = result["summary"]
    assert s["repetition.degenerate"]["value"] == 0.5 and s["repetition.degenerate"]["n"] == 2
    assert s["repetition.degenerate"]["direction"] == "lower" and s["repetition.degenerate"]["aggregation"] == "rate"
    assert s["keywords.coverage"]["n"] == 1  # only rows with keywords
    for m in s.values():  # fields are only ever added: these stay
        assert set(m) >= {"value", "low", "high", "n", "direction", "aggregation"}
        assert m["low"] <= m["value"] <= m["high"]
    # a rate also has its Wilson interval: 1 of 2 -> [0.0945, 0.9055] (by hand: (p + z²/2n ± z√(p(1-p)/n + z²/4n²)) / (1 + z²/n))
    assert (s["repetition.degenerate"]["wilson_low"], s["repetition.degenerate"]["wilson_high"]) == (0.0945, 0.9055)
    assert "wilson_low" not in s["style.score"]


KW_PROMPT = "다음 세 키워드를 모두 넣어 한 편의 문학적인 글을 써 주세요.\n키워드: 등대, 편지, 새벽"


def test_echoed_prompt_gives_no_keyword_and_counts_as_echo(tmp_path):
    inp = write_jsonl(tmp_path / "g.jsonl", [
        # the base model's habit: the prompt's keyword line copied back, then something else
        {"id": "echo", "prompt_id": "kw-1", "sample": 0, "text": "키워드: 등대, 편지, 새벽\n이제야 말했다",
         "keywords": ["등대", "편지", "새벽"], "prompt": KW_PROMPT, "stopped": False, "new_tokens": 384},
        # the keywords used in sentences of its own: two words in a row never three
        {"id": "own", "prompt_id": "kw-1", "sample": 1, "text": "새벽에 등대를 보며 편지를 썼다.",
         "keywords": ["등대", "편지", "새벽"], "prompt": [{"role": "user", "content": KW_PROMPT}], "stopped": True,
         "new_tokens": 12},
    ])
    out = tmp_path / "s.json"
    assert run_cli("eval", "score", inp, "--out", out).returncode == 0
    result = json.loads(out.read_text())
    echo, own = result["rows"]
    assert echo["keywords"]["coverage"] == 0 and echo["keywords"]["echoed"] == ["등대", "편지", "새벽"]
    assert own["keywords"]["coverage"] == 1 and own["keywords"]["echoed"] == []
    # "키워드: 등대, 편지, 새벽" is 12 of the 18 non-space characters (4 + 3 + 3 + 2 of 12 + 3 + 3)
    assert echo["generation"] == {"stopped": False, "new_tokens": 384, "echo": round(12 / 18, 4)}
    assert own["generation"] == {"stopped": True, "new_tokens": 12, "echo": 0.0}
    s = result["summary"]
    assert s["generation.stopped"]["value"] == 0.5 and s["generation.echo"]["direction"] == "lower"
    # two samples of one prompt are one cluster: one resampling unit, not two
    assert s["keywords.coverage"]["clusters"] == 1 and s["keywords.coverage"]["n"] == 2


def test_bad_prompt_and_generation_fields_are_reported(tmp_path):
    inp = write_jsonl(tmp_path / "g.jsonl", [
        {"id": "a", "text": "t", "prompt": 5},
        {"id": "b", "text": "t", "stopped": "yes"},
        {"id": "c", "text": "t", "new_tokens": 1.5},
        {"id": "d", "text": "t", "prompt_id": [1]},
    ])
    r = run_cli("eval", "score", inp, "--out", tmp_path / "s.json")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    errors = [line.split(": error: ")[1] for line in r.stderr.splitlines() if ": error: " in line]
    assert errors == ["'prompt' must be a string or a list of messages with string 'content'",
                      "'stopped' must be true or false", "'new_tokens' must be an integer",
                      "'prompt_id' must be a string or an integer"]


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


@pytest.mark.parametrize("k,n", [(0, 1), (1, 2), (3, 4), (7, 40), (40, 40), (1, 5000)])
def test_wilson_is_scipys(k, n):
    from scipy.stats import binomtest

    from eval.stats import wilson

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    w = wilson([True] * k + [False] * (n - k))
    assert w["wilson_low"] == pytest.approx(ci.low, abs=1e-4) and w["wilson_high"] == pytest.approx(ci.high, abs=1e-4)


def test_cluster_bootstrap_resamples_prompts_not_rows():
    # two prompts: one always right (3 samples), one always wrong (1 sample)
    b = bootstrap([1, 1, 1, 0], clusters=["p", "p", "p", "q"])
    assert b["value"] == 0.5 and b["n"] == 4 and b["clusters"] == 2  # the mean of the prompt means
    assert bootstrap([1, 0], clusters=["p", "q"]) == bootstrap([1, 0])  # one row per prompt: as before


def test_paired_difference_by_hand():
    from eval.stats import paired_difference

    a = {f"p{i}": 1.0 for i in range(12)}
    b = {f"p{i}": float(i % 2) for i in range(12)}
    d = paired_difference([a], [b])
    assert d["value"] == 0.5 and d["prompts"] == 12 and d["low"] > 0 and d["excludes_zero"]
    # the same prompts drawn for both arms: identical arms differ by exactly 0 in every replicate
    same = paired_difference([b], [dict(b)])
    assert (same["value"], same["low"], same["high"], same["excludes_zero"]) == (0.0, 0.0, 0.0, False)
    # only shared prompts are paired; too few of them are never marked
    few = paired_difference([{"p0": 1.0, "x": 1.0}], [{"p0": 0.0}])
    assert few["prompts"] == 1 and few["value"] == 1.0 and not few["excludes_zero"]
    # seeds as a level: two seeds that disagree widen the interval
    wide = paired_difference([a, b], [b, b])
    assert wide["seeds"] == [2, 2] and wide["high"] - wide["low"] > d["high"] - d["low"]
    assert paired_difference([], [b])["value"] is None


def test_parallel_scoring_matches_one_process(monkeypatch):
    import eval.score as score

    rows = [{"id": i, "text": t, "keywords": ["바다", "별"]} for i, t in
            enumerate(["바다를 보았다. 별이 진다.", "음음음~ 음음음~ 음음음~ 음음음~ 음음음~", "희망이 지나간다 " * 9, ""] * 5)]
    monkeypatch.setattr(score, "PARALLEL_FROM", 4)
    assert score.score_rows(rows, workers=2) == score.score_rows(rows, workers=1)

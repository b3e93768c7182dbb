"""``python -m eval study report``: seeds and prompts pooled per arm, two-level bootstrap."""

import json

import numpy as np
from conftest import run_cli

from eval.study import boot2


def test_two_level_bootstrap_widens_with_disagreeing_seeds():
    rng = np.random.default_rng(0)
    same = [list(rng.normal(0.5, 0.1, 30)), list(rng.normal(0.5, 0.1, 30))]
    apart = [list(rng.normal(0.2, 0.1, 30)), list(rng.normal(0.8, 0.1, 30))]
    a, b = boot2(same), boot2(apart)
    assert a["seeds"] == b["seeds"] == 2 and a["n"] == 60
    assert a["low"] < a["value"] < a["high"] and b["low"] < b["value"] < b["high"]
    assert (b["high"] - b["low"]) > 3 * (a["high"] - a["low"])  # the seed spread counts
    assert boot2([[]])["value"] is None


def _fake_run(d, loops: list[bool], correct: list[bool], state="done"):
    d.mkdir(parents=True)
    ids = [f"kw-t-{i:03d}" for i in range(len(loops))]
    (d / "status.json").write_text(json.dumps({"state": state, "stages": {"sft": {"train_loss": 1.5}}}))
    rows = [{"id": i, "repetition": {"degenerate": lp, "seq_rep_4": 0.5 if lp else 0.0, "distinct_2": 0.9},
             "keywords": {"coverage": 1.0, "all_present": True}} for i, lp in zip(ids, loops)]
    (d / "scores.json").write_text(json.dumps({"rows": rows}))
    (d / "generations.jsonl").write_text("".join(json.dumps({"id": i, "text": "가나다"}) + "\n" for i in ids))
    (d / "preference.json").write_text(json.dumps({"rows": [{"id": i, "correct": c, "nll": 2.0, "margin": 0.1}
                                                            for i, c in zip(ids, correct)]}))


def test_report_pools_the_seeds_of_each_arm(tmp_path):
    plan = {"seeds": [0, 1], "runs_dir": str(tmp_path / "runs"), "base": True,
            "arms": {"sft": [], "dpo": []}, "eval": [],
            "groups": {"headline": ["base", "sft", "dpo"], "epochs": {5: "sft"}, "learning_curve": {}}}
    runs = tmp_path / "runs"
    _fake_run(runs / "base-trim", [False] * 4, [True, False, True, False])
    _fake_run(runs / "s004cpu-sft-s0", [True, True, False, False], [True] * 4)
    _fake_run(runs / "s004cpu-sft-s1", [True, True, True, True], [True] * 4)
    _fake_run(runs / "s004cpu-dpo-s0", [False] * 4, [True] * 4)
    _fake_run(runs / "s004cpu-dpo-s1", [False] * 4, [True] * 4, state="stopped")  # unfinished: left out
    conf = tmp_path / "conf" / "study"
    conf.mkdir(parents=True)
    import eval.study as study

    study.ROOT, root = tmp_path, study.ROOT
    try:
        (conf / "t.yaml").write_text(json.dumps(plan))
        assert study.main(["report", "--plan", "t", "--out", str(tmp_path / "rep")]) == 0
    finally:
        study.ROOT = root
    table = json.loads((tmp_path / "rep" / "study.json").read_text())["table"]
    assert table["sft"]["loop"]["value"] == 0.75 and table["sft"]["loop"]["seeds"] == 2
    assert table["dpo"]["loop"]["seeds"] == 1 and len(table["dpo"]["runs"]) == 1
    assert table["base"]["pref_acc"]["value"] == 0.5
    md = (tmp_path / "rep" / "tables.md").read_text()
    assert "| degenerate-loop rate ↓ | 0% [0%, 0%] | 75% [" in md


def test_unknown_plan_is_one_line(tmp_path):
    r = run_cli("eval", "study", "report", "--plan", "nope", "--out", tmp_path)
    assert r.returncode != 0 and r.stderr.strip().startswith("python -m eval study: error: no study plan")


def test_run_evaluates_the_base_once_and_skips_finished_arms(tmp_path, monkeypatch):
    import eval.study as study

    runs = tmp_path / "runs"
    plan = {"seeds": [0], "runs_dir": str(runs), "base": ["model=tiny", "data=keywords"],
            "arms": {"sft": ["method=sft"]}, "eval": ["limit=2"], "groups": {}}
    _fake_run(runs / "s004cpu-sft-s0", [False], [True])  # finished: not run again
    calls = []

    def fake_call(args):
        calls.append(args)
        out = next(a.split("=", 1)[1] for a in args if a.startswith("out_dir="))
        (tmp_path / out / "base-tiny-keywords").mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(study, "_call", fake_call)
    monkeypatch.setattr(study, "plan", lambda name: plan)
    assert study.cmd_run(type("A", (), {"plan": "t"})()) == 0
    assert [c[:3] for c in calls] == [["-m", "eval", "generate"], ["-m", "eval", "preference"]]
    assert calls[0][3:5] == ["model=tiny", "data=keywords"] and calls[0][-1] == "limit=2"
    assert (runs / "base-trim").is_dir() and not (runs / ".base").exists()

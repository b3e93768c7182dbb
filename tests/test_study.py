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


def _fake_run(d, loops: list[bool], correct: list[bool], state="done", samples=1):
    """A finished run: ``loops`` per prompt (each prompt's ``samples`` answers alike)."""
    d.mkdir(parents=True)
    ids = [f"kw-t-{i:03d}" for i in range(len(loops))]
    (d / "status.json").write_text(json.dumps({"state": state, "stages": {"sft": {"train_loss": 1.5}}}))
    rows = [{"id": f"{i}/{k}", "prompt_id": i,
             "repetition": {"degenerate": lp, "seq_rep_4": 0.5 if lp else 0.0, "distinct_2": 0.9},
             "keywords": {"coverage": 1.0, "all_present": True}} for i, lp in zip(ids, loops) for k in range(samples)]
    (d / "scores.json").write_text(json.dumps({"rows": rows}))
    (d / "generations.jsonl").write_text("".join(json.dumps({"id": r["id"], "prompt_id": r["prompt_id"],
                                                              "text": "가나다"}) + "\n" for r in rows))
    (d / "preference.json").write_text(json.dumps({"rows": [{"id": i, "correct": c, "nll": 2.0, "margin": 0.1}
                                                            for i, c in zip(ids, correct)]}))


def test_report_pools_the_seeds_of_each_arm(tmp_path):
    plan = {"experiment": "seed004_cpu", "run_prefix": "s004cpu", "base_name": "base-trim",
            "seeds": [0, 1], "runs_dir": str(tmp_path / "runs"), "base": True,
            "arms": {"sft": [], "dpo": []}, "eval": [], "labels": {"sft": "SFT (5 ep)"},
            "metrics": ["repetition.degenerate", "preference.accuracy"],
            "groups": {"headline": ["base", "sft", "dpo"], "epochs": {5: "sft"}, "learning_curve": {}}}
    runs = tmp_path / "runs"
    _fake_run(runs / "base-trim", [False] * 12, [True, False] * 6)
    # three samples per prompt: the pooled value is still the mean over prompts
    _fake_run(runs / "s004cpu-sft-s0", [True] * 6 + [False] * 6, [True] * 12, samples=3)
    _fake_run(runs / "s004cpu-sft-s1", [True] * 12, [True] * 12)
    _fake_run(runs / "s004cpu-dpo-s0", [False] * 12, [True] * 12)
    _fake_run(runs / "s004cpu-dpo-s1", [False] * 12, [True] * 12, state="stopped")  # unfinished: left out
    conf = tmp_path / "conf" / "study"
    conf.mkdir(parents=True)
    import eval.study as study

    study.ROOT, root = tmp_path, study.ROOT
    try:
        (conf / "t.yaml").write_text(json.dumps(plan))
        assert study.main(["report", "--plan", "t", "--out", str(tmp_path / "rep")]) == 0
    finally:
        study.ROOT = root
    result = json.loads((tmp_path / "rep" / "study.json").read_text())
    table = result["table"]
    loop = table["sft"]["repetition.degenerate"]
    assert loop["value"] == 0.75 and loop["seeds"] == 2 and loop["n"] == 24  # 12 prompts per seed, not 48 rows
    assert table["dpo"]["repetition.degenerate"]["seeds"] == 1 and len(table["dpo"]["runs"]) == 1
    assert table["base"]["preference.accuracy"]["value"] == 0.5
    # sft loops on 75% of the prompts, dpo on none; paired over the same 12 prompts
    d = result["differences"]["dpo − sft"]["repetition.degenerate"]
    assert d["value"] == -0.75 and d["prompts"] == 12 and d["high"] < 0 and d["excludes_zero"]
    md = (tmp_path / "rep" / "tables.md").read_text()
    assert "| repetition.degenerate ↓ | 0% [0%, 0%] | 75% [" in md and "| metric | base | SFT (5 ep) | dpo |" in md


def test_unknown_plan_is_one_line(tmp_path):
    r = run_cli("eval", "study", "report", "--plan", "nope", "--out", tmp_path)
    assert r.returncode != 0 and r.stderr.strip().startswith("python -m eval study: error: no study plan")


def test_run_evaluates_the_base_once_and_skips_finished_arms(tmp_path, monkeypatch):
    import eval.study as study
    import eval.sweep as sweep

    runs = tmp_path / "runs"
    plan = {"experiment": "seed004_cpu", "run_prefix": "s004cpu", "base_name": "base-trim",
            "seeds": [0], "runs_dir": str(runs), "base": ["model=tiny", "data=keywords"],
            "arms": {"sft": ["method=sft"]}, "eval": ["limit=2"], "groups": {}}
    _fake_run(runs / "s004cpu-sft-s0", [False], [True])  # finished and scored: not run again
    evals, trains = [], []

    def fake_evaluate(overrides):
        evals.append(overrides)
        out = next(a.split("=", 1)[1] for a in overrides if a.startswith("out_dir="))
        (tmp_path / out / "base-tiny-keywords").mkdir(parents=True, exist_ok=True)
        return 0

    monkeypatch.setattr(sweep, "evaluate", fake_evaluate)
    monkeypatch.setattr(sweep, "train", trains.append)
    monkeypatch.setattr(study, "plan", lambda name: plan)
    assert study.cmd_run(type("A", (), {"plan": "t"})()) == 0
    assert evals == [["model=tiny", "data=keywords", f"out_dir={runs / '.base'}", "limit=2"]]
    assert trains == []  # the arm's only run is done and scored
    assert (runs / "base-trim").is_dir() and not (runs / ".base").exists()


def test_run_trains_each_arm_over_the_seeds_in_one_sweep(tmp_path, monkeypatch):
    """The arms go through the sweep runner: one `python -m train -m` per arm over the plan's
    seeds, named as the study names them, then each finished run evaluated."""
    import eval.study as study
    import eval.sweep as sweep

    runs = tmp_path / "runs"
    # nothing of seed004_cpu is built in: the plan names the experiment and the run names
    plan = {"experiment": "demo", "run_prefix": "v2", "base_name": "start", "seeds": [0, 1], "runs_dir": str(runs),
            "base": [], "arms": {"dpo": ["method=dpo"]}, "eval": ["limit=2"], "groups": {}}
    trains, evals = [], []

    def fake_train(spec):
        trains.append(spec)
        for seed in (0, 1):
            _fake_run(runs / f"v2-dpo-s{seed}", [False], [True])

    monkeypatch.setattr(sweep, "train", fake_train)
    monkeypatch.setattr(sweep, "scored", lambda d: d in [e[0] for e in evals])
    monkeypatch.setattr(sweep, "evaluate", lambda o: evals.append([runs / o[0].split("/")[-1], *o[1:]]) or 0)
    monkeypatch.setattr(study, "plan", lambda name: plan)
    assert study.cmd_run(type("A", (), {"plan": "t"})()) == 0
    assert trains == [["experiment=demo", "method=dpo", "seed=0,1", "name=v2-dpo-s${seed}", f"out_dir={runs}"]]
    assert evals == [[runs / "v2-dpo-s0", "limit=2"], [runs / "v2-dpo-s1", "limit=2"]]


def _fake_checkpoint(run, stage: str, step: int, epoch: float, loops: list[bool], complete=True):
    ck = run / "checkpoints" / stage / f"checkpoint-{step}"
    ck.mkdir(parents=True)
    (ck / "trainer_state.json").write_text(json.dumps({"epoch": epoch, "global_step": step}))
    if complete:
        (ck / "complete.json").write_text(json.dumps({"step": step}))
    rows = [{"id": f"kw-t-{i:03d}", "prompt_id": f"kw-t-{i:03d}", "repetition": {"degenerate": lp}}
            for i, lp in enumerate(loops)]
    (ck / "scores.json").write_text(json.dumps({"rows": rows}))
    (ck / "preference.json").write_text(json.dumps({"rows": []}))
    return ck


def test_checkpoints_of_the_last_stage_are_found_by_epoch_and_reported(tmp_path):
    """plan.checkpoints: the complete checkpoints of each run's last stage (the DPO stage of
    sft_dpo) at those whole epochs; the report gives the pooled metrics per arm and epoch."""
    import eval.study as study

    runs = tmp_path / "runs"
    plan = {"experiment": "x", "run_prefix": "v2", "seeds": [0, 1], "runs_dir": str(runs), "base": [],
            "arms": {"sft_dpo": []}, "eval": [], "checkpoints": [1, 3], "final_epoch": 5,
            "metrics": ["repetition.degenerate"], "groups": {"headline": ["sft_dpo"]}}
    for seed in (0, 1):
        run = runs / f"v2-sft_dpo-s{seed}"
        _fake_run(run, [False] * 4, [True] * 4)
        (run / "config.yaml").write_text("method: {name: sft_dpo, sft: {epochs: 5}, dpo: {epochs: 5}}\n")
        _fake_checkpoint(run, "sft", 8, 1.0, [True] * 4)  # the SFT stage's: not the arm's epoch 1
        _fake_checkpoint(run, "dpo", 8, 1.0, [True, True, False, False])
        _fake_checkpoint(run, "dpo", 12, 1.5, [True] * 4)  # not a whole epoch
        _fake_checkpoint(run, "dpo", 24, 3.0, [False] * 4, complete=seed == 0)  # seed 1's was cut off
    found = study.epoch_checkpoints(runs / "v2-sft_dpo-s1", [1, 3])
    assert found == {1: runs / "v2-sft_dpo-s1" / "checkpoints" / "dpo" / "checkpoint-8"}
    result = study.aggregate(plan)
    by = result["arms"]["sft_dpo"]["by_epoch"]
    assert by[1]["repetition.degenerate"]["value"] == 0.5 and by[1]["repetition.degenerate"]["seeds"] == 2
    assert by[3]["repetition.degenerate"]["value"] == 0.0 and by[3]["repetition.degenerate"]["seeds"] == 1
    md = study.markdown(plan, result, "t")
    assert "| metric | sft_dpo @1 | sft_dpo @3 | sft_dpo @5 |" in md


def test_run_evaluates_each_runs_checkpoints_at_the_plans_epochs(tmp_path, monkeypatch):
    import eval.study as study
    import eval.sweep as sweep

    runs = tmp_path / "runs"
    plan = {"experiment": "demo", "run_prefix": "v2", "seeds": [0], "runs_dir": str(runs), "base": [],
            "arms": {"sft": ["method=sft"]}, "eval": ["limit=2"], "checkpoints": [1, 3], "groups": {}}
    run = runs / "v2-sft-s0"
    _fake_run(run, [False], [True])
    (run / "config.yaml").write_text("method: {name: sft, sft: {epochs: 5}}\n")
    e1 = _fake_checkpoint(run, "sft", 8, 1.0, [True])
    (e1 / "scores.json").unlink()  # not scored yet
    e3 = _fake_checkpoint(run, "sft", 24, 3.0, [False])  # already scored: left alone
    _fake_checkpoint(run, "sft", 16, 2.0, [False])  # not an epoch of the plan
    evals = []
    monkeypatch.setattr(sweep, "train", lambda spec: None)
    monkeypatch.setattr(sweep, "evaluate", lambda o: evals.append(o) or 0)
    monkeypatch.setattr(study, "plan", lambda name: plan)
    assert study.cmd_run(type("A", (), {"plan": "t"})()) == 0
    assert evals == [[f"run={e1}", "limit=2"]] and e3 != e1

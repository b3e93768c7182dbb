"""Slow: ``make demo`` end to end with a smaller budget (one step per stage, two prompts) into
a temporary directory — the same Makefile recipe the user runs (it builds the start model,
model=gemma3-270m-chat, on first use)."""

import subprocess

import pytest
from conftest import ROOT

pytestmark = pytest.mark.slow


def test_make_demo_small_budget(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "report"
    r = subprocess.run(
        ["make", "-s", "demo", f"DEMO_RUNS={runs}", f"DEMO_OUT={out}",
         "DEMO_TRAIN=train.max_steps=1 train.eval_steps=0 data.limit=4 data.val_fraction=0",
         "DEMO_EVAL=limit=2 generate.max_new_tokens=8"],
        cwd=ROOT, capture_output=True, text=True, timeout=3000,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().splitlines()[-1] == f"report: {out / 'report.html'}"
    for name in ("base-gemma3-270m-chat-style", "demo-sft", "demo-dpo", "demo-sft_dpo"):
        assert (runs / name / "generations.jsonl").is_file() and (runs / name / "preference.json").is_file()
    md = (out / "report.md").read_text()
    assert all(name in md for name in ("demo-sft", "demo-dpo", "demo-sft_dpo", "base-gemma3-270m-chat-style"))

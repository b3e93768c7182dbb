"""``python -m eval generate|preference`` on real tiny runs: held-out prompts in, rows out;
preference log-probs checked against a direct computation; the DPO reference is the one the
run trained against."""

import json

import pytest
import torch
from conftest import read_jsonl, run_cli, train_tiny

from eval.config import typed


@pytest.fixture(scope="module")
def sft_dpo_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("runs")
    return train_tiny(tmp, "method=sft_dpo", "data=keywords", "data.limit=8", "train.max_steps=2",
                      "method.sft.learning_rate=5e-3", "method.dpo.learning_rate=5e-3")


def eval_cfg(*overrides):
    from conftest import ROOT
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return typed(compose("eval", overrides=list(overrides)))


def test_generate_writes_one_row_per_held_out_prompt(sft_dpo_run):
    r = run_cli("eval", "generate", f"run={sft_dpo_run}", "limit=5", "generate.max_new_tokens=8",
                "generate.batch_size=2")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = read_jsonl(sft_dpo_run / "generations.jsonl")
    assert [row["id"] for row in rows] == ["kw-t-001", "kw-t-002", "kw-t-003", "kw-t-004", "kw-t-005"]
    assert all(set(row) == {"id", "prompt", "text", "keywords", "reference"} for row in rows)
    assert rows[0]["keywords"] == ["등대", "편지", "새벽"] and rows[0]["prompt"].startswith("다음 세 키워드")
    # and the score command reads them as they are
    s = run_cli("eval", "score", sft_dpo_run / "generations.jsonl", "--out", sft_dpo_run / "scores.json")
    assert s.returncode == 0, s.stderr
    assert json.loads((sft_dpo_run / "scores.json").read_text())["summary"]["keywords.coverage"]["n"] == 5


def test_base_model_gets_its_own_run_like_directory(tmp_path):
    r = run_cli("eval", "generate", "model=tiny", "data=style", f"out_dir={tmp_path}", "limit=2",
                "generate.max_new_tokens=4")
    assert r.returncode == 0, r.stderr[-2000:]
    base = tmp_path / "base-tiny-style"
    assert len(read_jsonl(base / "generations.jsonl")) == 2
    from omegaconf import OmegaConf

    assert OmegaConf.load(base / "config.yaml").method.name == "base"


def test_sequence_logps_match_a_direct_computation():
    from eval.preference import completion_tokens, sequence_logps
    from train.models import load_model

    tok, model = load_model(eval_cfg("model=tiny").model)
    prompt = [{"role": "user", "content": "바다"}]
    items = [completion_tokens(tok, prompt, [{"role": "assistant", "content": t}], 512) for t in ("별", "등대가 있다")]
    sums, counts = sequence_logps(model, tok, items, batch_size=2, device="cpu")
    for (ids, start), s, n in zip(items, sums, counts):
        with torch.no_grad():
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0, :-1], -1)
        direct = sum(logp[i - 1, ids[i]].item() for i in range(start, len(ids)))
        assert n == len(ids) - start and s == pytest.approx(direct, abs=1e-3)
    assert tok.decode(items[0][0][items[0][1]:]) == "별<end_of_turn>\n"  # the answer and its end of turn


def test_preference_uses_the_sft_policy_as_reference_for_sft_dpo(sft_dpo_run):
    from peft import PeftModel

    from eval.preference import completion_tokens, sequence_logps
    from eval.runs import _from_run, load_policy, reference
    from train.models import load_model

    t = _from_run(sft_dpo_run)
    assert t.method == "sft_dpo" and t.beta == 0.1
    tok, policy = load_policy(t, "cpu")
    items = [completion_tokens(tok, [{"role": "user", "content": "별"}], [{"role": "assistant", "content": "바다"}], 256)]
    with reference(t, policy, "cpu") as ref:
        via_ref, _ = sequence_logps(ref, tok, items, 1, "cpu")
    _, base = load_model(t.model)
    sft = PeftModel.from_pretrained(base, str(sft_dpo_run / "sft")).eval()
    direct, _ = sequence_logps(sft, tok, items, 1, "cpu")
    after, _ = sequence_logps(policy, tok, items, 1, "cpu")
    assert via_ref == pytest.approx(direct, abs=1e-4)
    assert after != pytest.approx(direct, abs=1e-4)  # the policy is back (and differs from its reference)


def test_preference_json(sft_dpo_run):
    r = run_cli("eval", "preference", f"run={sft_dpo_run}", "limit=4")
    assert r.returncode == 0, r.stderr[-2000:]
    p = json.loads((sft_dpo_run / "preference.json").read_text())
    assert p["method"] == "implicit_reward" and p["n"] == 4 and p["beta"] == 0.1
    assert p["accuracy"]["value"] == sum(row["correct"] for row in p["rows"]) / 4
    assert {"accuracy", "margin", "heldout_nll"} <= set(p) and p["heldout_nll"]["direction"] == "lower"


def test_eval_of_an_unfinished_or_missing_run_fails_in_one_line(tmp_path):
    r = run_cli("eval", "generate", f"run={tmp_path / 'nope'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("config error: run:")


def test_generate_score_report_end_to_end(sft_dpo_run, tmp_path):
    """Real generations of the tiny base model and the tiny SFT->DPO run, scored and compared."""
    base_out = tmp_path / "runs"
    for args in (["model=tiny", "data=keywords", f"out_dir={base_out}"], [f"run={sft_dpo_run}"]):
        for command in ("generate", "preference"):
            r = run_cli("eval", command, *args, "limit=3", "generate.max_new_tokens=6")
            assert r.returncode == 0, r.stderr[-2000:]
    base = base_out / "base-tiny-keywords"
    assert (base / "scores.json").is_file() and (sft_dpo_run / "scores.json").is_file()
    r = run_cli("eval", "report", base, sft_dpo_run, "--out", tmp_path / "report")
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == f"report: {tmp_path / 'report' / 'report.html'}"
    md = (tmp_path / "report" / "report.md").read_text()
    html = (tmp_path / "report" / "report.html").read_text()
    for name in ("base-tiny-keywords", sft_dpo_run.name):
        assert name in md and name in html
    for metric in ("keywords.coverage", "repetition.degenerate", "preference.accuracy", "preference.heldout_nll"):
        assert metric in md
    assert html.count("<svg") >= 3 and "kw-t-001" in html  # plots and the side-by-side samples

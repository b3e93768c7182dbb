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
    assert all(set(row) == {"id", "prompt_id", "sample", "prompt", "text", "stopped", "new_tokens", "keywords",
                            "reference"} for row in rows)
    assert all(row["prompt_id"] == row["id"] and row["sample"] == 0 for row in rows)
    # a random tiny model rarely says <end_of_turn> within 8 tokens: an answer that did not stop used them all
    assert all(row["stopped"] or row["new_tokens"] == 8 for row in rows)
    assert rows[0]["keywords"] == ["등대", "편지", "새벽"] and rows[0]["prompt"].startswith("다음 세 키워드")
    # and the score command reads them as they are
    s = run_cli("eval", "score", sft_dpo_run / "generations.jsonl", "--out", sft_dpo_run / "scores.json")
    assert s.returncode == 0, s.stderr
    assert json.loads((sft_dpo_run / "scores.json").read_text())["summary"]["keywords.coverage"]["n"] == 5


def test_several_samples_per_prompt(tmp_path):
    r = run_cli("eval", "generate", "model=tiny", "data=keywords", f"out_dir={tmp_path}", "limit=2",
                "generate.max_new_tokens=4", "generate.do_sample=true", "generate.num_samples=3",
                "generate.top_k=64", "generate.temperature=1.0")
    assert r.returncode == 0, r.stderr[-2000:]
    rows = read_jsonl(tmp_path / "base-tiny-keywords" / "generations.jsonl")
    assert [(row["id"], row["prompt_id"], row["sample"]) for row in rows] == [
        (f"kw-t-00{p}/{k}", f"kw-t-00{p}", k) for p in (1, 2) for k in range(3)]
    assert len({row["text"] for row in rows}) > 1  # sampled: the answers differ
    summary = json.loads((tmp_path / "base-tiny-keywords" / "scores.json").read_text())["summary"]
    assert summary["repetition.degenerate"]["n"] == 6 and summary["repetition.degenerate"]["clusters"] == 2
    r = run_cli("eval", "generate", "model=tiny", "data=keywords", f"out_dir={tmp_path}", "generate.num_samples=2")
    assert r.returncode == 2 and "generate.num_samples: several samples per prompt need generate.do_sample=true" in r.stderr


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
    assert p["method"] == "summed_logprob" and p["n"] == 4 and p["beta"] == 0.1
    assert p["implicit_reference"] == "SFT result"
    assert p["accuracy"]["value"] == sum(row["correct"] for row in p["rows"]) / 4
    assert p["implicit_accuracy"]["value"] == sum(row["implicit_correct"] for row in p["rows"]) / 4
    assert {"accuracy", "margin", "heldout_nll", "accuracy_per_token", "length_baseline"} <= set(p)
    assert p["heldout_nll"]["direction"] == "lower" and p["length_baseline"]["direction"] is None
    # the length-only baseline, row by row: it calls the longer answer the chosen one
    assert all(row["length_baseline"] == (row["chosen_chars"] > row["rejected_chars"]) for row in p["rows"])


def test_one_preference_rule_for_every_arm(sft_dpo_run, tmp_path):
    """The base model and a DPO-trained run are scored by the same summed log-prob margin, which
    is exactly log π(chosen) − log π(rejected) under each one's own policy."""
    from eval.generate import heldout
    from eval.preference import completion_tokens, sequence_logps
    from eval.runs import _from_run, load_policy

    base_out = tmp_path / "runs"
    assert run_cli("eval", "preference", "model=tiny", "data=keywords", f"out_dir={base_out}", "limit=3").returncode == 0
    assert run_cli("eval", "preference", f"run={sft_dpo_run}", "limit=3").returncode == 0
    for d in (base_out / "base-tiny-keywords", sft_dpo_run):
        p = json.loads((d / "preference.json").read_text())
        assert p["method"] == "summed_logprob"
        t = _from_run(d)
        tok, model = load_policy(t, "cpu")
        pair = heldout(t, 1)[0]
        (c, nc), (r, nr) = (sequence_logps(model, tok, [completion_tokens(tok, pair["prompt"], pair[k], 1024)], 1, "cpu")
                            for k in ("chosen", "rejected"))
        row = p["rows"][0]
        assert row["margin"] == pytest.approx(c[0] - r[0], abs=1e-3)
        assert row["margin_per_token"] == pytest.approx(c[0] / nc[0] - r[0] / nr[0], abs=1e-4)
        assert ("implicit_margin" in row) == (t.method == "sft_dpo")


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


def test_a_run_trained_before_a_new_training_key_stays_readable(sft_dpo_run, tmp_path):
    """The eval types only the sections it needs: a run whose config.yaml predates a later
    train.* key (here train.sigterm_grace_s) is evaluated, not refused."""
    import shutil

    import yaml

    from eval.runs import _from_run

    old = tmp_path / "old-run"
    shutil.copytree(sft_dpo_run, old)
    conf = yaml.safe_load((old / "config.yaml").read_text())
    del conf["train"]["sigterm_grace_s"]
    (old / "config.yaml").write_text(yaml.safe_dump(conf, allow_unicode=True))
    t = _from_run(old)
    assert (t.method, t.peft, t.beta) == ("sft_dpo", "lora", 0.1) and t.data.name == "keywords"


def test_a_checkpoint_is_evaluated_like_a_run(tmp_path):
    """run=<run>/checkpoints/<stage>/checkpoint-N: the run's config, that checkpoint's weights, the
    outputs written into the checkpoint; an sft_dpo run's DPO checkpoints score against run/sft; a
    checkpoint cut off while being written is refused in one line."""
    from eval.runs import load_run, target

    run = train_tiny(tmp_path, "method=sft_dpo", "data=keywords", "data.limit=8", "train.max_steps=2",
                     "train.save_steps=1", "train.save_total_limit=null",
                     "method.sft.learning_rate=5e-3", "method.dpo.learning_rate=5e-3")
    sft1, dpo1 = run / "checkpoints" / "sft" / "checkpoint-1", run / "checkpoints" / "dpo" / "checkpoint-1"
    assert sft1.is_dir() and dpo1.is_dir()
    t = target(eval_cfg(f"run={dpo1}"))
    assert (t.path, t.run_dir, t.method) == (dpo1, run, "sft_dpo")
    assert target(eval_cfg(f"run={sft1}")).method == "sft"
    for ckpt in (sft1, dpo1):
        r = run_cli("eval", "generate", f"run={ckpt}", "limit=2", "generate.max_new_tokens=4")
        assert r.returncode == 0, r.stderr[-2000:]
        assert len(read_jsonl(ckpt / "generations.jsonl")) == 2 and (ckpt / "scores.json").is_file()
    r = run_cli("eval", "preference", f"run={dpo1}", "limit=2")
    assert r.returncode == 0, r.stderr[-2000:]
    pref = json.loads((dpo1 / "preference.json").read_text())
    assert pref["accuracy"]["n"] == 2 and pref["implicit_reference"] == "SFT result"
    # the first DPO step's weights differ from the last: the checkpoint's own margins, not the run's
    run_cli("eval", "preference", f"run={run}", "limit=2")
    final = json.loads((run / "preference.json").read_text())
    assert [r_["margin"] for r_ in pref["rows"]] != [r_["margin"] for r_ in final["rows"]]
    loaded = load_run(dpo1)
    assert loaded.name.endswith("@dpo-1") and loaded.method == "sft_dpo" and loaded.config["method"]["name"] == "sft_dpo"
    (dpo1 / "complete.json").unlink()
    r = run_cli("eval", "generate", f"run={dpo1}", "limit=2")
    assert r.returncode == 2 and "cut off while being written" in r.stderr.strip().splitlines()[-1]

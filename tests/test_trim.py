"""The CPU levers of ``train/trim.py``: compact scoring of TRL's fused LM head is exact; the
trimmed vocabulary scores labels against the kept rows only, in training and in eval."""

import json

import pytest
import torch
import trl.trainer.utils as tu
from conftest import compose_config, read_jsonl, run_cli, train_tiny

from train import trim
from train.config import typed
from train.models import load_model


@pytest.fixture(scope="module")
def tiny():
    cfg = typed(compose_config("model=tiny"))
    tok, model = load_model(cfg.model)
    return cfg, tok, model


def compose_eval():
    from conftest import ROOT
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return OmegaConf.to_container(compose("eval", overrides=["model=tiny"]), resolve=True)


def _fused(model, ids, labels, keep=None):
    """TRL's fused LM head on a fresh copy of ``model`` (patches do not pile up), trimmed to ``keep``."""
    import copy

    m = copy.deepcopy(model)
    if keep is not None:
        trim.restrict(m, keep)
    tu.add_fused_lm_head(m, outputs=("log_probs", "entropy", "is_top1"))
    out = m(input_ids=ids, labels=labels, fused_lm_head=True)
    out.loss.backward()
    grads = torch.cat([p.grad.flatten() for p in m.parameters() if p.grad is not None])
    return out, grads


def _batch(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(10, model.config.vocab_size, (3, 24), generator=g)
    labels = ids.clone()
    labels[:, :10] = -100  # a prompt
    labels[2, 18:] = -100  # padding
    return ids, labels


def test_compact_scoring_on_cpu_is_exact(tiny, monkeypatch):
    trim.install()
    _, _, model = tiny
    ids, labels = _batch(model)
    monkeypatch.setattr(tu, "_use_triton", lambda device: False)  # TRL's own CPU path: every position
    full, g_full = _fused(model, ids, labels)
    monkeypatch.setattr(tu, "_use_triton", lambda device: True)  # ours: labelled positions only
    compact, g_compact = _fused(model, ids, labels)
    assert torch.allclose(full.loss, compact.loss, atol=1e-6)
    assert torch.allclose(full.entropy, compact.entropy, atol=1e-5)
    assert torch.equal(full.is_top1, compact.is_top1)
    assert torch.allclose(g_full, g_compact, atol=1e-6)


def test_trimmed_head_scores_against_the_kept_rows_only(tiny):
    import copy

    trim.install()
    _, _, model = tiny
    ids, labels = _batch(model, seed=1)
    keep = sorted(set(labels[labels >= 0].tolist()) | {0, 1, 2, 3})
    m = copy.deepcopy(model)
    trim.restrict(m, keep)
    assert trim.kept_of(m) == len(keep)
    # plain forward: -inf outside the kept rows, the same logits inside
    with torch.no_grad():
        want = model(input_ids=ids).logits
        got = m(input_ids=ids).logits
    outside = torch.ones(want.shape[-1], dtype=torch.bool)
    outside[keep] = False
    assert torch.isneginf(got[..., outside]).all()
    assert torch.allclose(got[..., keep], want[..., keep], atol=1e-5)
    # TRL's fused head: log-softmax over the kept rows, at the labels
    out, _ = _fused(model, ids, labels, keep)
    direct = torch.log_softmax(want[:, :-1][..., keep], -1)
    local = torch.tensor([keep.index(t) if t >= 0 else 0 for t in labels[:, 1:].flatten().tolist()]).view(3, -1)
    expect = direct.gather(-1, local.unsqueeze(-1)).squeeze(-1) * (labels[:, 1:] >= 0)
    assert torch.allclose(out.log_probs, expect, atol=1e-5)
    # a label outside the kept set is an error, not a silent zero
    bad = labels.clone()
    bad[0, 12] = next(i for i in range(model.config.vocab_size) if i not in keep)
    with pytest.raises(trim.TrimError, match="not in the trimmed vocabulary"):
        _fused(model, ids, bad, keep)


def test_vocabulary_covers_the_data_as_tokenized(tiny):
    cfg, tok, _ = tiny
    files = trim.data_files(cfg.data)
    keep = set(trim.vocabulary(tok, files))
    assert set(tok.all_special_ids) <= keep
    assert len(keep) < len(tok)  # something was cut, or the lever would be pointless
    text = tok.apply_chat_template([{"role": "user", "content": "빨래 건조기에 돌려도 안 줄어드는 옷"}], tokenize=False)
    assert "빨래" in text


def test_trimmed_run_trains_writes_its_vocabulary_and_eval_stays_inside_it(tmp_path):
    run = train_tiny(tmp_path, "method=dpo", "data=keywords", "data.limit=8", "train.max_steps=3",
                     "model.trim_vocab=true", "method.dpo.learning_rate=5e-3")
    vocab = json.loads((run / "vocab.json").read_text())
    status = json.loads((run / "status.json").read_text())
    assert status["trim_vocab"] == {"kept": vocab["kept"], "of": vocab["of"]} and vocab["kept"] < vocab["of"]
    losses = [m["loss"] for m in read_jsonl(run / "metrics.jsonl") if "loss" in m]
    assert len(losses) == 3 and losses[0] != losses[-1]
    r = run_cli("eval", "generate", f"run={run}", "limit=3", "generate.max_new_tokens=12", "generate.batch_size=3")
    assert r.returncode == 0, r.stderr[-2000:]
    assert len(read_jsonl(run / "generations.jsonl")) == 3
    # what eval loads is cut the same way: sampled tokens never leave the kept set
    from eval.config import EvalConfig
    from eval.runs import load_policy, target
    from train.config import structured

    t = target(structured(EvalConfig, {**compose_eval(), "run": str(run)}))
    tok, model = load_policy(t, "cpu")
    prompt = tok.apply_chat_template([{"role": "user", "content": "등대, 편지, 새벽"}], add_generation_prompt=True,
                                     return_tensors="pt", return_dict=True)
    torch.manual_seed(0)
    out = model.generate(**prompt, max_new_tokens=40, do_sample=True, temperature=5.0)
    assert set(out[0, prompt["input_ids"].shape[1]:].tolist()) <= set(vocab["ids"])
    # the base model is evaluated with the same cut, into its own directory
    b = run_cli("eval", "generate", "model=tiny", "model.trim_vocab=true", "data=keywords", f"out_dir={tmp_path}",
                "limit=2", "generate.max_new_tokens=4")
    assert b.returncode == 0, b.stderr[-2000:]
    assert json.loads((tmp_path / "base-tiny-keywords-trim" / "vocab.json").read_text())["ids"] == vocab["ids"]
    rep = run_cli("eval", "report", run, tmp_path / "base-tiny-keywords-trim", "--out", tmp_path / "rep")
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert f"output layer trimmed to {vocab['kept']:,} of {vocab['of']:,} tokens" in (tmp_path / "rep" / "report.md").read_text()


def test_trim_vocab_is_for_lora_runs(tmp_path):
    r = run_cli("train", "model=tiny", "peft=none", "model.trim_vocab=true", f"out_dir={tmp_path}")
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("config error: model.trim_vocab")

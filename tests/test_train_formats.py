"""``python -m train`` and the eval's held-out prompts on TRL's other dataset types: SFT trains on
plain texts and on unpaired rows labelled true, lists the ones labelled false as rejected, DPO
refuses unpaired data, and a held-out unpaired row is a prompt with a reference only when true."""

import json
from types import SimpleNamespace

import pytest
from conftest import read_jsonl, train_tiny, write_jsonl

from data import DataError

RECORDS = [
    {"text": "The sky is blue. The sea is blue too."},
    {"prompt": "The sky is", "completion": " blue.", "label": True},
    {"prompt": "The sky is", "completion": " green.", "label": False},
    {"messages": [{"role": "user", "content": "What color is the sky?"}, {"role": "assistant", "content": "It is blue."}]},
]


def test_sft_on_texts_and_unpaired_rows_with_skip(tmp_path):
    p = write_jsonl(tmp_path / "mixed.jsonl", RECORDS * 2)
    run = train_tiny(tmp_path, "method=sft", f"data.train=[{p}]", "data.test=[]", "data.on_error=skip",
                     "train.max_steps=2", "train.batch_size=2")
    rejected = read_jsonl(run / "rejected.jsonl")
    assert [(r["line"], r["error"]) for r in rejected] == [
        (n, "'label' is false (not preferred): SFT trains only on completions labelled true (method=kto learns from both)")
        for n in (3, 7)]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["stages"]["sft"]["steps"] == 2
    data = json.loads((run / "data.json").read_text())["stages"]["sft"]
    assert data["train_files"]["records"] == 6 and data["train_files"]["rejected"] == 2
    assert data["train_files"]["files"][0]["formats"] == {"text": 2, "unpaired": 2, "openai-chat": 2}


def test_dpo_on_unpaired_data_stops_before_the_model_loads(tmp_path, capsys):
    p = write_jsonl(tmp_path / "kto.jsonl", RECORDS[1:3])
    with pytest.raises(DataError, match="2 bad record"):
        train_tiny(tmp_path, "method=dpo", f"data.train=[{p}]", "data.test=[]")
    assert "train unpaired data with method=kto" in capsys.readouterr().err
    assert [x.name for x in tmp_path.iterdir()] == ["kto.jsonl"]  # no run directory was made


def test_heldout_prompts_from_unpaired_and_text_records(tmp_path):
    from eval.generate import heldout

    p = write_jsonl(tmp_path / "test.jsonl", RECORDS[1:3])
    rows = heldout(SimpleNamespace(data=SimpleNamespace(test=[str(p)], columns={})))
    assert [(r["prompt"][-1]["content"], r["chosen"], r["rejected"]) for r in rows] == [
        ("The sky is", [{"role": "assistant", "content": " blue.", "weight": 1}], None),
        ("The sky is", None, None)]  # no reference for an answer labelled false; never a pair
    q = write_jsonl(tmp_path / "text.jsonl", RECORDS[:1])
    with pytest.raises(ValueError, match=f"data.test: {q}:1 is a language-modeling 'text' record: no prompt to generate from"):
        heldout(SimpleNamespace(data=SimpleNamespace(test=[str(q)], columns={})))


def test_trimmed_vocabulary_covers_texts_and_unpaired_rows(tmp_path):
    from conftest import compose_model

    from train import trim
    from train.models import load_tokenizer
    from train.sft_data import tokenize_text

    tok = load_tokenizer(compose_model("tiny"))
    p = write_jsonl(tmp_path / "d.jsonl", [{"text": "ZQX"}, {"prompt": "q", "completion": "Wv", "label": False}])
    keep = set(trim.vocabulary(tok, [str(p)]))
    assert set(tokenize_text(tok, "ZQX")["input_ids"]) <= keep
    assert set(tok("Wv", add_special_tokens=False)["input_ids"]) <= keep
    assert not set(tok("Y", add_special_tokens=False)["input_ids"]) & keep  # in neither record

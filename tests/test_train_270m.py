"""Slow: the real embedded Gemma-3 270M trains SFT and DPO for a few steps on the shipped
data, and the saved adapter loads back with peft and generates."""

import json
import math

import pytest
from conftest import read_jsonl, train_tiny

pytestmark = pytest.mark.slow

SMALL = ("model=gemma3-270m", "train.batch_size=2", "train.max_length=128", "train.max_steps=2", "data.limit=4")


def _generate(run):
    from conftest import compose_model
    from peft import PeftModel
    from transformers import AutoTokenizer

    from train.models import generation_tokenizer, load_model

    tok = generation_tokenizer(AutoTokenizer.from_pretrained(run))
    _, base = load_model(compose_model("gemma3-270m"))
    model = PeftModel.from_pretrained(base, run)
    ids = tok.apply_chat_template([{"role": "user", "content": "오늘 날씨 어때요?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    return tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_270m_sft_trains_and_the_adapter_generates(tmp_path):
    run = train_tiny(tmp_path, *SMALL, "method=sft", "data=style")
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert len(rows) == 2 and all(math.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in rows)
    assert json.loads((run / "status.json").read_text())["stages"]["sft"]["steps"] == 2
    assert isinstance(_generate(run), str)


def test_270m_dpo_trains_and_the_adapter_generates(tmp_path):
    run = train_tiny(tmp_path, *SMALL, "method=dpo", "data=keywords")
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert abs(rows[0]["loss"] - math.log(2)) < 1e-3 and "rewards/margins" in rows[-1]
    assert isinstance(_generate(run), str)

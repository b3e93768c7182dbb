"""eval generate's speed levers are exact: under greedy decoding, in float32, the loop in which
finished answers leave the batch, the merged adapter and the length-sorted batches give the
tokens transformers' generate gives (on the tiny model; the 270M figures are `make bench`'s)."""

import json

import pytest
import torch
from conftest import compose_model, read_jsonl, run_cli, train_tiny

from eval.decode import decode, prepare
from train.models import encode_chat, generation_tokenizer, load_model


@pytest.fixture(scope="module")
def tiny():
    tok, model = load_model(compose_model("tiny"), "cpu")
    return generation_tokenizer(tok), model.eval()


def batch(tok, n=6):
    prompts = [[{"role": "user", "content": "바다" * k + "별" * (k % 3)}] for k in (1, 5, 12, 3, 7, 2)[:n]]
    return tok.pad({"input_ids": [encode_chat(tok, p) for p in prompts]}, return_tensors="pt")


def hf(model, enc, n, **kw):
    with torch.no_grad():
        return model.generate(**enc, max_new_tokens=n, do_sample=False, **kw)[:, enc["input_ids"].shape[1]:].tolist()


def test_greedy_loop_is_generate(tiny):
    tok, model = tiny
    enc = batch(tok)
    assert decode(model, enc["input_ids"], enc["attention_mask"], 40, {10 ** 6}) == hf(model, enc, 40)


def test_finished_rows_leave_the_batch_without_changing_the_others(tiny):
    tok, model = tiny
    enc = batch(tok)
    ref = hf(model, enc, 40)
    # a token that ends some rows at different steps and never comes in others: those rows stop there
    firsts = {t: [r.index(t) if t in r else None for r in ref] for t in {x for r in ref for x in r}}
    stop = next(t for t, p in sorted(firsts.items()) if None in p and len({x for x in p if x}) >= 2 and 0 not in p)
    mine = decode(model, enc["input_ids"], enc["attention_mask"], 40, {stop})
    expected = hf(model, enc, 40, eos_token_id=[stop], pad_token_id=tok.pad_token_id)
    cut = [r[:r.index(stop) + 1] if stop in r else r for r in expected]
    assert mine == cut
    assert len({len(m) for m in mine}) >= 3  # rows really ended at different steps


def test_sampling_is_seeded_and_follows_the_warpers(tiny):
    tok, model = tiny
    enc = batch(tok, 3)
    runs = [decode(model, enc["input_ids"], enc["attention_mask"], 12, {10 ** 6}, True, 1.0, 1, 1.0,
                   torch.Generator().manual_seed(s)) for s in (0, 0)]
    assert runs[0] == runs[1]
    # top_k=1 keeps only the most likely token: sampling is then greedy decoding
    assert runs[0] == hf(model, enc, 12)


def test_merging_the_adapter_keeps_the_outputs(tiny):
    from peft import LoraConfig, get_peft_model

    tok, _ = tiny
    _, base = load_model(compose_model("tiny"), "cpu")
    lora = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
    enc = batch(tok)
    before = decode(lora, enc["input_ids"], enc["attention_mask"], 30, {10 ** 6})
    merged = prepare(lora, merge_adapter=True, quantize=None)
    assert not hasattr(merged, "peft_config")
    assert decode(merged, enc["input_ids"], enc["attention_mask"], 30, {10 ** 6}) == before


def test_eval_generate_fast_path_writes_what_the_plain_path_writes(tmp_path):
    """The whole command on a real tiny LoRA run: loop engine + merged adapter + sorted batches
    against transformers' generate on the unmerged model in input order."""
    run = train_tiny(tmp_path, "method=sft", "data=keywords", "data.limit=8", "train.max_steps=2",
                     "method.sft.learning_rate=5e-3")
    texts = {}
    for name, args in (("fast", []), ("plain", ["generate.engine=hf", "generate.merge_adapter=false",
                                                "generate.sort_by_length=false"])):
        r = run_cli("eval", "generate", f"run={run}", "limit=6", "generate.max_new_tokens=16",
                    "generate.batch_size=4", *args)
        assert r.returncode == 0, r.stderr[-2000:]
        texts[name] = [(row["id"], row["text"], row["new_tokens"]) for row in read_jsonl(run / "generations.jsonl")]
    assert texts["fast"] == texts["plain"]
    assert json.loads((run / "scores.json").read_text())["summary"]["repetition.degenerate"]["n"] == 6


def test_options_of_the_other_engine_are_config_errors(tmp_path):
    r = run_cli("eval", "generate", "model=tiny", f"out_dir={tmp_path}", "generate.static_cache=true")
    assert r.returncode == 2 and "generate.static_cache: a transformers generate option; set generate.engine=hf" in r.stderr
    r = run_cli("eval", "generate", "model=tiny", f"out_dir={tmp_path}", "generate.quantize=int4")
    assert r.returncode == 2 and "generate.quantize: 'int4' is not one of int8" in r.stderr


def test_int8_replaces_the_linear_layers_and_still_decodes(tiny):
    tok, _ = tiny
    _, model = load_model(compose_model("tiny"), "cpu")
    q = prepare(model, merge_adapter=True, quantize="int8")
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    plain = [m for m in q.modules() if type(m) is torch.nn.Linear]
    assert not plain and any(isinstance(m, QLinear) for m in q.modules())  # dynamic int8 Linear layers
    enc = batch(tok, 3)
    out = decode(q, enc["input_ids"], enc["attention_mask"], 10, {10 ** 6})
    assert [len(r) for r in out] == [10, 10, 10]
    assert any(type(m) is torch.nn.Linear for m in model.modules())  # the loaded model is left as it was


@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 64, 0.95), (0.7, 5, 0.9), (1.3, 20, 1.0), (1.0, 3, 0.01)])
def test_top_k_sampling_is_the_warpers_distribution(temperature, top_k, top_p):
    """The shortlist sampler's probabilities are those of transformers' temperature, top-k and
    top-p warpers followed by a softmax, token for token (peaked and flat rows, 2,000 tokens)."""
    from eval.decode import top_k_distribution, warpers

    g = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 2000, generator=g) * torch.tensor([0.5, 1, 2, 4, 8, 16])[:, None]
    want = torch.softmax(warpers(True, temperature, top_k, top_p)(None, logits.clone()), dim=-1)
    ids, probs = top_k_distribution(logits, temperature, top_k, top_p)
    got = torch.zeros_like(want).scatter(-1, ids, probs)
    assert torch.allclose(got, want, atol=1e-6)
    assert ((want > 0).sum(-1) <= top_k).all() and ((want > 0).sum(-1) >= 1).all()


def test_top_k_sampling_draws_from_that_distribution():
    from eval.decode import sample_top_k

    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1, 1e-9]]))
    g = torch.Generator().manual_seed(1)
    draws = torch.cat([sample_top_k(logits.expand(4000, 4), 1.0, 3, 1.0, g) for _ in range(1)])
    freq = torch.bincount(draws, minlength=4).float() / draws.numel()
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1, 0.0]), atol=0.03)

"""Model loading and Gemma-3's quirks, on the tiny random Gemma-3 (the 270M is marked slow)."""

import dataclasses
import time
from pathlib import Path

import pytest
import torch
from conftest import ROOT, compose_model

from train.models import (
    ModelNotFound,
    encode_chat,
    generation_tokenizer,
    load_model,
    load_tokenizer,
    official_chat_template,
    stop_token_ids,
)

MSGS = [{"role": "system", "content": "시스템"}, {"role": "user", "content": "안녕하세요?"}]


@pytest.mark.parametrize("path", sorted((ROOT / "conf" / "model").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_model_config_is_valid(path):
    cfg = compose_model(path.stem)
    cfg.check()
    assert cfg.name == path.stem


def test_bad_values_name_the_key():
    cfg = compose_model("tiny")
    with pytest.raises(ValueError, match=r"^model\.dtype: 'float16' .*bfloat16"):
        dataclasses.replace(cfg, dtype="float16").check()
    with pytest.raises(ValueError, match=r"^model\.source: 'ftp'"):
        dataclasses.replace(cfg, source="ftp").check()


def test_unknown_key_in_model_config_fails():
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigKeyError

    from train.config import ModelConfig

    with pytest.raises(ConfigKeyError, match="dtyp"):
        OmegaConf.merge(OmegaConf.structured(ModelConfig), {"dtyp": "auto"})


def test_official_template_renders_gemma_turns():
    tok = load_tokenizer(compose_model("tiny"))
    text = tok.apply_chat_template(MSGS + [{"role": "assistant", "content": "네"}], tokenize=False)
    assert text == "<bos><start_of_turn>user\n시스템\n\n안녕하세요?<end_of_turn>\n<start_of_turn>model\n네<end_of_turn>\n"
    assert tok.chat_template == official_chat_template()


def test_tiny_model_quirks():
    tok, model = load_model(compose_model("tiny"))
    assert model.dtype == torch.float32
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    assert stop_token_ids(tok) == [tok.eos_token_id, eot]
    assert model.generation_config.eos_token_id == [tok.eos_token_id, eot]
    ids = encode_chat(tok, MSGS)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id  # no double BOS
    assert tok.decode(ids).endswith("<start_of_turn>model\n")  # the generation prompt
    gen = generation_tokenizer(tok)
    batch = gen.pad({"input_ids": [ids, ids[:5]]}, return_tensors="pt")
    assert batch["attention_mask"][1, 0] == 0 and batch["attention_mask"][1, -1] == 1  # left padding
    out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    assert out.shape[0] == 2


def test_token_init_copies_a_row_and_a_bad_token_names_the_key():
    """model.token_init: <end_of_turn> starts as <eos> (input and output rows); the base model's own
    rows are otherwise untouched; a name that is not one token fails when the tokenizer loads."""
    from train.config import ConfigError

    cfg = dataclasses.replace(compose_model("tiny"), token_init={"<end_of_turn>": "<eos>"})
    tok, model = load_model(cfg)
    _, plain = load_model(compose_model("tiny"))
    eot, eos = tok.convert_tokens_to_ids("<end_of_turn>"), tok.eos_token_id
    for get in ("get_input_embeddings", "get_output_embeddings"):
        w, w0 = getattr(model, get)().weight, getattr(plain, get)().weight
        assert torch.equal(w[eot], w0[eos]) and not torch.equal(w0[eot], w0[eos])
        others = [i for i in range(w.shape[0]) if i != eot]
        assert torch.equal(w[others], w0[others])
    with pytest.raises(ConfigError, match=r"^model\.token_init: '<end_of_thought>' is not one token"):
        load_tokenizer(dataclasses.replace(cfg, token_init={"<end_of_thought>": "<eos>"}))


def test_tiny_model_is_deterministic():
    _, a = load_model(compose_model("tiny"))
    _, b = load_model(compose_model("tiny"))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_missing_local_model_is_one_clear_line(tmp_path):
    cfg = dataclasses.replace(compose_model("gemma3-1b-it"), path=str(tmp_path / "nowhere"))
    with pytest.raises(ModelNotFound) as e:
        load_model(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "model.path" in msg and "model=gemma3-270m" in msg


def test_missing_hub_model_offline_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    cfg = dataclasses.replace(compose_model("gemma3-1b-it"), path="google/gemma-3-1b-it")
    t = time.perf_counter()
    with pytest.raises(ModelNotFound) as e:
        load_tokenizer(cfg)
    assert time.perf_counter() - t < 20
    assert str(e.value).startswith("model 'gemma3-1b-it' (google/gemma-3-1b-it) is not in the local Hugging Face cache")


@pytest.mark.slow
def test_embedded_gemma3_270m_converts_once_and_generates():
    cfg = compose_model("gemma3-270m")
    tok, model = load_model(cfg)
    out_dir = Path(cfg.cache_dir).expanduser() / cfg.name
    assert (out_dir / "config.json").exists() and (out_dir / "tokenizer.json").exists()
    assert model.num_parameters() == 268_098_176
    assert tok.chat_template == official_chat_template()
    assert stop_token_ids(tok) == [1, 106]
    ids = encode_chat(tok, MSGS)
    assert tok.convert_ids_to_tokens(ids[:4]) == ["<bos>", "<start_of_turn>", "user", "\n"]
    assert ids.count(tok.bos_token_id) == 1
    t = time.perf_counter()
    load_tokenizer(cfg)  # cached now: no second conversion
    assert time.perf_counter() - t < 15
    out = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)
    assert out.shape[1] > len(ids)


def test_a_warmup_model_is_built_once_merged_and_cached(tmp_path):
    """source warmup: the first load trains (python -m train <build>), merges the adapter into the
    weights and caches the result; later loads reuse it; other inputs rebuild it; model.path is
    used as it is. On the tiny model, two steps."""
    import json

    from train.models import BUILD_INFO

    cfg = dataclasses.replace(compose_model("gemma3-270m-chat"), name="tiny-chat", cache_dir=str(tmp_path),
                              build=["experiment=warmup", "model=tiny", "train.max_steps=2", "data.limit=16"])
    tok, model = load_model(cfg, "cpu")
    out = tmp_path / "tiny-chat"
    info = json.loads((out / BUILD_INFO).read_text())
    assert info["build"] == cfg.build and (out / "config.json").is_file()
    assert not (out / "adapter_config.json").exists()  # full weights, no adapter left to load
    _, base = load_model(compose_model("tiny"), "cpu")
    name = "model.layers.0.self_attn.q_proj.weight"
    merged, original = dict(model.named_parameters())[name], dict(base.named_parameters())[name]
    assert merged.shape == original.shape and not torch.allclose(merged, original)  # LoRA was merged in
    eot = tok.convert_tokens_to_ids("<end_of_turn>")  # the recipe's model.token_init, kept in the weights
    assert torch.equal(model.get_output_embeddings().weight[eot], base.get_output_embeddings().weight[tok.eos_token_id])
    ids = torch.tensor([encode_chat(tok, MSGS)])
    assert model.generate(ids, max_new_tokens=3, do_sample=False).shape[1] > ids.shape[1]

    built = (out / "config.json").stat().st_mtime_ns
    load_model(cfg, "cpu")  # the same inputs: the cached model, not a new build
    assert (out / "config.json").stat().st_mtime_ns == built
    # other overrides (or other warm-up data) are other inputs: the next load rebuilds
    from train.models import warmup_inputs

    again = dataclasses.replace(cfg, build=[*cfg.build[:-1], "data.limit=8"])
    assert warmup_inputs(again)["sha256"] != info["sha256"] == warmup_inputs(cfg)["sha256"]

    elsewhere = tmp_path / "copy"
    import shutil

    shutil.copytree(out, elsewhere)
    given = dataclasses.replace(cfg, name="other", path=str(elsewhere))
    load_model(given, "cpu")  # a given path is used as it is: nothing is built for "other"
    assert not (tmp_path / "other").exists()


def test_a_warmup_build_that_fails_is_one_line(tmp_path):
    cfg = dataclasses.replace(compose_model("gemma3-270m-chat"), name="broken", cache_dir=str(tmp_path),
                              build=["experiment=warmup", "model=tiny", "train.batch_size=0"])
    with pytest.raises(ModelNotFound, match=r"^model 'broken': building it failed \(python -m train .* exited 2"):
        load_model(cfg, "cpu")

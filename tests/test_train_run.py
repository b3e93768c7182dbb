"""``python -m train`` end to end on the tiny Gemma-3: SFT, DPO and SFT->DPO train, the loss
moves, and runs/<name>/ holds what the eval report reads."""

import hashlib
import json
import math

import pytest
import torch
from conftest import (
    RESUMABLE,
    ROOT,
    assert_resumed_like,
    compose_model,
    losses,
    read_jsonl,
    train_tiny,
    write_jsonl,
)
from omegaconf import OmegaConf
from safetensors.torch import load_file

from train.rundir import RunExists, TrainingDiverged

LOSS_MOVES = ("train.max_steps=8", "data.limit=16")


def test_sft_run_directory_contract(tmp_path):
    run = train_tiny(tmp_path, *LOSS_MOVES, "method.sft.learning_rate=5e-3", "data.val_fraction=0.1",
                     "train.eval_steps=4", "name=sft-contract")
    assert run == tmp_path / "sft-contract"
    for f in ("config.yaml", "data.json", "metrics.jsonl", "status.json", "train.log", "adapter_config.json",
              "adapter_model.safetensors", "tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (run / f).is_file(), f
    assert list((run / "tensorboard" / "sft").glob("events.out.tfevents.*"))

    cfg = OmegaConf.load(run / "config.yaml")  # fully resolved: no ${...} left
    assert cfg.name == "sft-contract" and cfg.method.name == "sft" and "${" not in OmegaConf.to_yaml(cfg)

    data = json.loads((run / "data.json").read_text())
    (f,) = data["stages"]["sft"]["train_files"]["files"]
    assert f["sha256"] == hashlib.sha256((ROOT / f["path"]).read_bytes()).hexdigest()
    assert data["stages"]["sft"]["split"] == {"train": 16, "validation": 20, "train_before_subset": 180,
                                               "val_fraction": 0.1, "fraction": 1.0, "limit": 16, "seed": 0}
    assert data["test_files"]["records"] == 40

    rows = read_jsonl(run / "metrics.jsonl")
    assert [r["step"] for r in rows if "loss" in r] == list(range(1, 9))
    assert {"stage", "step", "epoch", "loss", "learning_rate", "grad_norm"} <= set(rows[0])
    evals = losses(run, "sft", "eval_loss")
    assert len(evals) >= 2 and evals[-1] < evals[0]
    train = losses(run, "sft")
    assert train[-1] < train[0] - 0.05

    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["stages"]["sft"]["steps"] == 8
    assert status["stages"]["sft"]["effective_batch"] == 4 and status["world_size"] == 1

    # only LoRA weights were trained, and the directory loads directly with peft
    weights = load_file(run / "adapter_model.safetensors")
    assert weights and all("lora_" in k for k in weights)
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    from peft import PeftModel
    from transformers import AutoTokenizer

    from train.models import generation_tokenizer, load_model

    tok = AutoTokenizer.from_pretrained(run)
    assert tok.chat_template and "{% generation %}" not in tok.chat_template  # the inference template
    _, base = load_model(compose_model("tiny"))
    model = PeftModel.from_pretrained(base, run)
    ids = generation_tokenizer(tok).apply_chat_template([{"role": "user", "content": "안녕"}], add_generation_prompt=True,
                                                         return_tensors="pt", return_dict=True)
    out = model.generate(**ids, max_new_tokens=5, do_sample=False)
    assert out.shape[1] > ids["input_ids"].shape[1]


def test_dpo_trains_and_logs_rewards(tmp_path):
    run = train_tiny(tmp_path, "method=dpo", "data=keywords", "method.dpo.learning_rate=5e-3", "train.max_steps=4",
                     "data.limit=8")
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert abs(rows[0]["loss"] - math.log(2)) < 1e-3  # policy == reference (adapter disabled) at step 1
    assert rows[-1]["loss"] < 0.6
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen",
                "logps/rejected"):
        assert key in rows[-1], key
    assert all("lora_" in k for k in load_file(run / "adapter_model.safetensors"))


def test_sft_then_dpo_starts_dpo_from_the_sft_policy(tmp_path):
    run = train_tiny(tmp_path, "method=sft_dpo", "data=keywords", "method.sft.learning_rate=5e-3",
                     "method.dpo.learning_rate=5e-3", "train.max_steps=3", "data.limit=8")
    assert (run / "sft" / "adapter_model.safetensors").is_file()
    assert not (run / "ref").exists()  # TRL's frozen reference copy is not part of the result
    sft_loss, dpo_loss = losses(run, "sft"), losses(run, "dpo")
    assert len(sft_loss) == 3 and len(dpo_loss) == 3
    # the reference is the SFT policy: DPO starts at ln 2 with zero margin even though the
    # starting adapter is far from the base model
    first = next(r for r in read_jsonl(run / "metrics.jsonl") if r["stage"] == "dpo" and "loss" in r)
    assert abs(first["loss"] - math.log(2)) < 1e-3 and abs(first["rewards/margins"]) < 1e-4
    sft_w, dpo_w = load_file(run / "sft" / "adapter_model.safetensors"), load_file(run / "adapter_model.safetensors")
    assert set(sft_w) == set(dpo_w) and any(not torch.equal(sft_w[k], dpo_w[k]) for k in sft_w)
    assert json.loads((run / "status.json").read_text())["stages"].keys() == {"sft", "dpo"}


def test_full_fine_tuning_dpo_uses_a_frozen_copy_as_reference(tmp_path):
    run = train_tiny(tmp_path, "peft=none", "method=dpo", "data=keywords", "method.dpo.learning_rate=1e-3",
                     "train.max_steps=2", "data.limit=8")
    assert (run / "model.safetensors").is_file() and not (run / "adapter_config.json").exists()
    first = [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r][0]
    assert abs(first["loss"] - math.log(2)) < 1e-3
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(run).config.hidden_size == 64


def test_sft_trainer_of_the_recipe_masks_prompt_and_weight_zero_turns(tmp_path):
    from conftest import TINY, compose_config

    from train.config import typed
    from train.dataprep import prepare
    from train.models import load_model
    from train.recipes import sft_trainer
    from train.rundir import RunDir

    f = write_jsonl(tmp_path / "w.jsonl", [{"messages": [
        {"role": "user", "content": "PROMPT-ONE"},
        {"role": "assistant", "content": "SKIP-ME", "weight": 0},
        {"role": "user", "content": "PROMPT-TWO"},
        {"role": "assistant", "content": "LEARN-ME", "weight": 1},
    ]}] * 4)
    cfg = typed(compose_config(*TINY, f"out_dir={tmp_path}", f"data.train=[{f}]"))
    train, val, _ = prepare(cfg, "sft")
    tok, model = load_model(cfg.model)
    trainer = sft_trainer(cfg, RunDir(cfg, True), tok, model, train, val, [])
    batch = next(iter(trainer.get_train_dataloader()))
    trained = tok.decode(batch["input_ids"][0][batch["labels"][0] != -100])
    assert trained == "LEARN-ME<end_of_turn>\n"


def test_an_existing_run_is_never_overwritten_silently(tmp_path):
    args = ("train.max_steps=1", "data.limit=4", "name=once")
    run = train_tiny(tmp_path, *args)
    before = (run / "adapter_model.safetensors").read_bytes()
    with pytest.raises(RunExists, match=r"once already exists \(finished\); resume=true .* overwrite=true"):
        train_tiny(tmp_path, *args)
    assert (run / "adapter_model.safetensors").read_bytes() == before
    with pytest.raises(RunExists, match="already finished"):
        train_tiny(tmp_path, *args, "resume=true")
    train_tiny(tmp_path, *args, "overwrite=true", "seed=1")
    assert (run / "adapter_model.safetensors").read_bytes() != before


def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, uninterrupted):
    part = train_tiny(tmp_path, *RESUMABLE, "name=part", "train.stop_at_step=3")
    status = json.loads((part / "status.json").read_text())
    assert status["state"] == "stopped" and not (part / "adapter_model.safetensors").exists()
    assert (part / "checkpoints" / "sft" / "checkpoint-3" / "complete.json").is_file()
    with pytest.raises(RunExists, match=r"stopped before the end"):
        train_tiny(tmp_path, *RESUMABLE, "name=part")
    with pytest.raises(RunExists, match=r"^method\.sft\.learning_rate: 0\.001 differs"):
        train_tiny(tmp_path, *RESUMABLE, "name=part", "resume=true", "method.sft.learning_rate=1e-3")
    train_tiny(tmp_path, *RESUMABLE, "name=part", "resume=true")
    assert_resumed_like(part, uninterrupted)  # no step logged twice, none missing, same weights


def test_a_nan_loss_stops_the_run_with_a_clear_message(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"sft: loss became nan at step 2; lower lr\.sft"):
        train_tiny(tmp_path, "method.sft.learning_rate=1e30", "train.max_steps=6", "data.limit=24", "name=nan")
    status = json.loads((tmp_path / "nan" / "status.json").read_text())
    assert status["state"] == "diverged" and "nan" in status["error"]
    assert len(losses(tmp_path / "nan", "sft")) == 2  # stopped at once, not after six steps


def test_no_secret_reaches_the_run_directory(tmp_path, monkeypatch):
    secrets = {"HF_TOKEN": "hf_SECRETsecret123", "OPENAI_API_KEY": "sk-SECRETsecret456",
               "WANDB_API_KEY": "SECRETwandb789"}
    for k, v in secrets.items():
        monkeypatch.setenv(k, v)
    run = train_tiny(tmp_path, "train.max_steps=1", "data.limit=4")
    for f in run.rglob("*"):
        if f.is_file():
            blob = f.read_bytes()
            assert not any(v.encode() in blob for v in secrets.values()), f


def test_sft_dpo_resumes_inside_the_dpo_stage_from_the_saved_sft_adapter(tmp_path):
    args = ("method=sft_dpo", "data=keywords", "data.limit=8", "method.sft.epochs=1", "method.dpo.epochs=2",
            "method.sft.learning_rate=5e-3", "method.dpo.learning_rate=5e-3")
    full = train_tiny(tmp_path, *args, "name=full")
    part = train_tiny(tmp_path, *args, "name=part", "train.stop_at_step=3")
    status = json.loads((part / "status.json").read_text())
    # SFT (2 steps) done, DPO at 3 of 4: started, with its reference recorded, not done
    assert status["state"] == "stopped" and [s for s, v in status["stages"].items() if v["done"]] == ["sft"]
    assert status["stages"]["dpo"]["reference"]["kind"] == "sft"
    train_tiny(tmp_path, *args, "name=part", "resume=true")
    assert losses(part, "dpo") == pytest.approx(losses(full, "dpo"), abs=1e-5)
    a, b = load_file(full / "adapter_model.safetensors"), load_file(part / "adapter_model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_dpo_with_precomputed_reference_log_probs(tmp_path):
    run = train_tiny(tmp_path, "method=dpo", "data=keywords", "method.dpo.precompute_ref_log_probs=true",
                     "method.dpo.learning_rate=5e-3", "train.max_steps=3", "data.limit=8")
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert abs(rows[0]["loss"] - math.log(2)) < 1e-3 and rows[-1]["loss"] < rows[0]["loss"]


def test_early_stopping_stops_and_keeps_the_best_checkpoint(tmp_path):
    run = train_tiny(tmp_path, "lr.sft=0.3", "train.early_stopping_patience=2", "train.eval_steps=1",
                     "data.val_fraction=0.2", "train.max_steps=20", "data.limit=16", "name=es")
    evals = losses(run, "sft", "eval_loss")
    best = evals.index(min(evals))
    assert len(evals) == best + 3 < 20  # two evaluations without improvement, then stop
    status = json.loads((run / "status.json").read_text())
    assert status["stages"]["sft"]["steps"] == len(evals)
    kept = load_file(run / "adapter_model.safetensors")  # the best model, not the last one
    best_ckpt = load_file(run / "checkpoints" / "sft" / f"checkpoint-{best + 1}" / "adapter_model.safetensors")
    assert all(torch.equal(kept[k], best_ckpt[k]) for k in kept)

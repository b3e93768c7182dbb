"""The CUDA code paths, checked where a CPU can reach them (issue #20): the checkpointing field
for the installed transformers, float32 master weights under bf16 autocast for full fine-tuning,
trimmed-vocabulary tensors that follow the weight's device, one process on several GPUs refused,
timings that wait for the GPU, packing that keeps the SFT masks, float32 preference scoring."""

import types
import warnings

import pytest
import torch
from conftest import ROOT, TINY, compose_config

from train import config as config_module
from train import trim
from train.config import ConfigError, typed


class Handed(Exception):
    """Raised by the stand-in TRL trainer: what our recipe handed to TRL, before any step."""

    def __init__(self, model, args):
        super().__init__("handed to TRL")
        self.model, self.config = model, args


def handed_to_trl(monkeypatch, tmp_path, stage: str, *overrides: str, device: str = "cuda") -> Handed:
    """Run the real recipe with ``device=auto`` resolving to ``device`` and TRL's config and
    trainer replaced by recorders: the model and the config kwargs it would have trained with."""
    import trl

    from train.recipes import run

    monkeypatch.setattr(config_module, "resolve_device", lambda d: device if d == "auto" else d)
    config_cls, trainer_cls = {"sft": ("SFTConfig", "SFTTrainer"), "dpo": ("DPOConfig", "DPOTrainer")}[stage]
    monkeypatch.setattr(trl, config_cls, lambda **kw: types.SimpleNamespace(**kw))

    def trainer(model, args, **kw):
        raise Handed(model, args)

    monkeypatch.setattr(trl, trainer_cls, trainer)
    cfg = typed(compose_config(*TINY, "device=auto", "model.dtype=auto", f"method={stage}", "data.limit=8", f"out_dir={tmp_path}",
                               *overrides))
    with pytest.raises(Handed) as got:
        run(cfg)
    return got.value


# --- 1. activation checkpointing: the field the installed transformers has ----------------------


@pytest.mark.parametrize("on", [True, False])
def test_checkpointing_uses_the_installed_transformers_field(tmp_path, on):
    from transformers import TrainingArguments
    from trl import SFTConfig

    from train.recipes import checkpointing

    (field,) = checkpointing(on)
    assert field in TrainingArguments.__dataclass_fields__
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # the deprecated alias would warn where both exist
        args = SFTConfig(output_dir=str(tmp_path), use_cpu=True, **checkpointing(on))
    # TRL defaults to checkpointing on; ours is what the config says, under either name
    assert args.gradient_checkpointing is on


# --- 2. full fine-tuning: float32 master weights, bf16 autocast on CUDA --------------------------


@pytest.mark.parametrize("stage", ["sft", "dpo"])
def test_full_fine_tuning_on_cuda_keeps_float32_masters_under_bf16_autocast(monkeypatch, tmp_path, stage):
    got = handed_to_trl(monkeypatch, tmp_path, stage, "peft=none")
    assert {p.dtype for p in got.model.parameters()} == {torch.float32}
    assert got.config.bf16 is True and got.config.use_cpu is False


def test_lora_on_cuda_keeps_its_frozen_base_in_bf16(monkeypatch, tmp_path):
    got = handed_to_trl(monkeypatch, tmp_path, "sft", "peft=lora")
    assert {p.dtype for p in got.model.parameters()} == {torch.bfloat16}
    assert got.config.bf16 is True


def test_on_cpu_everything_is_float32_without_autocast(monkeypatch, tmp_path):
    got = handed_to_trl(monkeypatch, tmp_path, "sft", "peft=none", device="cpu")
    assert {p.dtype for p in got.model.parameters()} == {torch.float32}
    assert got.config.bf16 is False and got.config.use_cpu is True


# --- 3. the trimmed vocabulary follows the weight's device ---------------------------------------


def test_trimmed_head_follows_the_model_to_another_device():
    from train.models import load_model

    _, model = load_model(typed(compose_config("model=tiny")).model)
    keep = list(range(0, 120, 3))
    trim.restrict(model, keep)
    hidden = torch.randn(2, 5, model.config.hidden_size)
    on_cpu = model.get_output_embeddings()(hidden)
    assert torch.isinf(on_cpu[..., 1]).all() and torch.isfinite(on_cpu[..., 3]).all()

    model.to("meta")  # made after restricting: the lookup tensors must move with the weight
    head = model.get_output_embeddings()
    out = head(hidden.to("meta"))
    assert out.device.type == "meta" and out.shape == on_cpu.shape
    assert trim.kept_of(model) == len(keep)
    kept, lookup = getattr(head.weight, trim._ATTR).on(head.weight.device)  # what TRL's fused head reads
    assert kept.device.type == lookup.device.type == "meta"


# --- 7. one process on several GPUs -------------------------------------------------------------


def test_several_gpus_in_one_process_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(ConfigError, match=r"^device: 4 GPUs are visible to one process.*accelerate launch "
                                          r"--config_file conf/accelerate/ddp\.yaml --num_processes 4"):
        typed(compose_config("model=tiny", "device=cuda"))
    monkeypatch.setenv("LOCAL_RANK", "0")  # one rank of an accelerate / torchrun launch
    assert typed(compose_config("model=tiny", "device=cuda")).resolved_device() == "cuda"


# --- 9. the suite itself runs on the CPU --------------------------------------------------------


def test_the_suite_forces_the_cpu():
    assert typed(compose_config("model=tiny")).device == "cpu"  # conftest's SFTDPO_DEVICE, not auto


# --- 10. step timings wait for the GPU ----------------------------------------------------------


def test_step_timings_synchronise_cuda(monkeypatch, tmp_path):
    from train.rundir import metrics_callback

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(str(device)))
    cb = metrics_callback(None, "sft")
    for device, expected in (("cpu", []), ("cuda:0", ["cuda:0", "cuda:0"])):
        calls.clear()
        args = types.SimpleNamespace(device=torch.device(device))
        cb.on_step_begin(args, None, None)
        cb.on_step_end(args, None, None)
        assert calls == expected
    assert len(cb.step_seconds) == 2


# --- packing keeps the SFT masks ----------------------------------------------------------------


def test_packing_trains_exactly_the_masked_tokens(tmp_path):
    """train.packing=true packs what TRL trains on (the labels from our masks) into full rows: the
    same tokens are trained as without packing, in fewer rows, and the sequences stay apart."""
    from collections import Counter

    from train.dataprep import prepare
    from train.models import load_model
    from train.recipes import sft_trainer
    from train.rundir import RunDir

    def trained(packing: bool):
        cfg = typed(compose_config(*TINY, "data.limit=12", "train.max_length=2048", "train.max_steps=1",
                                   f"train.packing={packing}", f"out_dir={tmp_path}", f"name=p{packing}"))
        tok, model = load_model(cfg.model)
        train, val, _ = prepare(cfg, "sft")
        trainer = sft_trainer(cfg, RunDir(cfg, True), tok, model, train, val, [])
        rows = trainer.train_dataset
        labels = Counter(t for r in rows for t in r["labels"] if t != -100)
        return rows, labels, trainer

    plain_rows, plain, _ = trained(False)
    packed_rows, packed, trainer = trained(True)
    assert len(packed_rows) < len(plain_rows) and sum(plain.values()) > 0
    assert packed == plain  # the same tokens trained, no prompt or weight-0 token added
    batch = trainer.data_collator([packed_rows[0]])
    assert "attention_mask" not in batch and (batch["position_ids"] == 0).sum() == len(packed_rows[0]["seq_lengths"])
    trainer.args.per_device_train_batch_size = 1  # one packed row of 2048 tokens: a quick step on a CPU
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses and all(0 < x < 20 for x in losses)


def test_packing_picks_a_kernel_that_keeps_sequences_apart(monkeypatch):
    import importlib.util

    from train.recipes import packed_attention

    assert packed_attention("cpu") == "sdpa"  # exact: transformers masks the pack block by block
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert packed_attention("cuda") == "flex_attention"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object() if name == "flash_attn" else None)
    assert packed_attention("cuda") == "flash_attention_2"


# --- 10. preference scores in float32 on every device -------------------------------------------


def test_preference_scores_in_float32_whatever_the_model_dtype(monkeypatch, tmp_path):
    from hydra import compose, initialize_config_dir

    from eval import preference as pref
    from eval.config import typed as eval_typed

    seen = []
    real = pref.sequence_logps

    def spy(model, *args, **kw):
        seen.append({p.dtype for p in model.parameters()})
        return real(model, *args, **kw)

    monkeypatch.setattr(pref, "sequence_logps", spy)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("eval", overrides=["model=tiny", "model.dtype=bfloat16", "limit=2", f"out_dir={tmp_path}"])
    pref.preference(eval_typed(cfg))
    assert seen and all(s == {torch.float32} for s in seen)

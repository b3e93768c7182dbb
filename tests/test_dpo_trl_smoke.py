"""TRL's DPOTrainer on our loader's rows (tiny Gemma-3, LoRA), and the SFT->DPO reference:
a PeftModel that already carries the SFT adapter gets a frozen copy of it as the reference."""

import torch
from conftest import ROOT, compose_model
from peft import LoraConfig, get_peft_model
from trl import DPOConfig, DPOTrainer

from data import load
from train.models import load_model

LORA = dict(r=8, lora_alpha=16, target_modules="all-linear")


def _data(n=8):
    ds = load(ROOT / "data" / "keywords" / "train.jsonl", task="dpo").select(range(n))
    return ds.select_columns(["prompt", "chosen", "rejected"])


def _args(tmp_path, steps):
    return DPOConfig(output_dir=str(tmp_path), max_steps=steps, per_device_train_batch_size=2, learning_rate=5e-3,
                     logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", max_length=256, beta=0.1, seed=0)


def test_dpo_lora_loss_moves_and_rewards_are_logged(tmp_path):
    tok, model = load_model(compose_model("tiny"))
    trainer = DPOTrainer(model=model, args=_args(tmp_path, 4), train_dataset=_data(), processing_class=tok,
                         peft_config=LoraConfig(**LORA))
    trainer.train()
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert abs(logs[0]["loss"] - 0.6931) < 1e-3  # policy == reference at step 0
    assert logs[-1]["loss"] < 0.65  # moved down from ln 2
    assert {"rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen"} <= set(logs[-1])


def test_sft_then_dpo_uses_the_sft_policy_as_reference(tmp_path):
    tok, base = load_model(compose_model("tiny"))
    model = get_peft_model(base, LoraConfig(**LORA))
    with torch.no_grad():  # stand-in for a trained SFT adapter: non-zero LoRA B matrices
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    trainer = DPOTrainer(model=model, args=_args(tmp_path, 1), train_dataset=_data(4), processing_class=tok)
    assert set(trainer.model.peft_config) == {"default", "ref"}
    trainer.train()
    first = next(h for h in trainer.state.log_history if "loss" in h)
    # reference = the SFT adapter (not the base model), so the implicit rewards start at zero
    assert abs(first["rewards/margins"]) < 1e-4 and abs(first["loss"] - 0.6931) < 1e-3

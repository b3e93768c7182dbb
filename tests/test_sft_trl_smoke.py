"""TRL's SFTTrainer accepts our pre-tokenized weighted examples: the loss moves, only LoRA
weights change, and the labels it trains on are exactly our assistant masks."""

import torch
from conftest import ROOT, compose_model
from peft import LoraConfig
from trl import SFTConfig, SFTTrainer

from data import load
from train.models import load_model
from train.sft_data import tokenize_weighted, training_template


def test_sft_lora_trains_on_assistant_tokens_only(tmp_path):
    tok, model = load_model(compose_model("tiny"))
    ds = load(ROOT / "data" / "style" / "train.jsonl", task="sft").select(range(16))
    tpl = training_template(tok)
    ds = ds.map(lambda r: tokenize_weighted(tok, r["messages"], tpl, 768), remove_columns=ds.column_names)
    args = SFTConfig(output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=4, learning_rate=5e-3,
                     logging_steps=1, report_to=[], use_cpu=True, save_strategy="no", seed=0)
    trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=tok,
                         peft_config=LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    batch = next(iter(trainer.get_train_dataloader()))
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        trained = tok.decode(ids[labels != -100])
        assert trained.endswith("<end_of_turn>\n") and "들어오는 문장을" not in trained  # no prompt tokens
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert losses[-1] < losses[0] - 0.1
    changed = {n for n, p in trainer.model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and all("lora_" in n for n in changed)


def test_a_text_record_is_tokenized_as_trl_does_and_trained_on_every_token(tmp_path):
    """TRL's language-modeling type (``{"text": ...}``): TRL's own preparation of the raw text and
    our pre-tokenized row give the same ids, and the labels SFTTrainer builds cover every token."""
    from datasets import Dataset

    from train.sft_data import tokenize_text

    tok, model = load_model(compose_model("tiny"))
    args = SFTConfig(output_dir=str(tmp_path), report_to=[], use_cpu=True, save_strategy="no", max_length=64)
    ours = tokenize_text(tok, "The sky is blue.", 64)
    assert tok.decode(ours["input_ids"]) == "The sky is blue.<eos>"
    trl_own = SFTTrainer(model=model, args=args, processing_class=tok,
                         train_dataset=Dataset.from_list([{"text": "The sky is blue."}])).train_dataset[0]
    assert trl_own["input_ids"] == ours["input_ids"]
    trainer = SFTTrainer(model=model, args=args, processing_class=tok, train_dataset=Dataset.from_list([ours]))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    assert batch["labels"].tolist() == batch["input_ids"].tolist() and -100 not in batch["labels"].tolist()[0]
    assert len(batch["labels"][0]) == len(ours["input_ids"]) == 17

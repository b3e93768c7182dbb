"""The baseline a user would write by hand: plain TRL on the embedded Gemma-3 270M.

    python bench/trl_baseline.py sft|dpo --model-dir DIR --data FILE [--steps 3 --batch 4 --max-length 128]

No framework code: ``from_pretrained`` on the converted model directory, the shipped style
data read with ``json`` into TRL's prompt/completion (SFT) or prompt/chosen/rejected (DPO)
columns, LoRA r 16 on all linear layers, the same learning rates as our defaults. Prints
one JSON line with the seconds of every optimizer step (from a callback), so that
``bench/run.py`` can compare it with ``python -m train`` on the same job.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer


class StepTimes(TrainerCallback):
    def __init__(self):
        self.times, self._t = [], None

    def on_step_begin(self, args, state, control, **kw):
        self._t = time.perf_counter()

    def on_step_end(self, args, state, control, **kw):
        self.times.append(time.perf_counter() - self._t)


def rows(path: str, method: str) -> list[dict]:
    out = []
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)  # OpenAI DPO format, as shipped
        prompt = r["input"]["messages"]
        if method == "sft":
            out.append({"prompt": prompt, "completion": r["preferred_output"]})
        else:
            out.append({"prompt": prompt, "chosen": r["preferred_output"], "rejected": r["non_preferred_output"]})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=["sft", "dpo"])
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--trl-defaults", action="store_true", help="keep TRL's bf16 + checkpointing defaults")
    ap.add_argument("--compact", action="store_true",
                    help="apply sftdpo's compact CPU scoring of TRL's fused LM head (train/trim.py), so the "
                         "comparison with python -m train isolates the framework")
    a = ap.parse_args()

    if a.compact:
        import sys
        from pathlib import Path

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from train.trim import install

        install()
    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    ds = Dataset.from_list(rows(a.data, a.method))
    timer = StepTimes()
    with tempfile.TemporaryDirectory() as out:
        common = dict(output_dir=out, max_steps=a.steps, per_device_train_batch_size=a.batch,
                      max_length=a.max_length, logging_steps=1, save_strategy="no", report_to=[],
                      use_cpu=True, seed=a.seed,
                      # TRL's defaults are bf16 autocast and activation checkpointing; on a CPU without
                      # bf16 units (AVX2 only here) that is several times slower, so the baseline
                      # matches our CPU settings and the comparison isolates the framework.
                      bf16=a.trl_defaults, gradient_checkpointing=a.trl_defaults)
        if a.method == "sft":
            trainer = SFTTrainer(model=model, args=SFTConfig(learning_rate=2e-4, **common), train_dataset=ds,
                                 processing_class=tok, peft_config=lora, callbacks=[timer])
        else:
            trainer = DPOTrainer(model=model, args=DPOConfig(learning_rate=5e-6, **common), train_dataset=ds,
                                 processing_class=tok, peft_config=lora, callbacks=[timer])
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    print(json.dumps({"method": a.method, "seconds_per_step": seconds / a.steps, "step_seconds": timer.times}))


if __name__ == "__main__":
    main()

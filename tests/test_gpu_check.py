"""bench/gpu_check.py (make gpu-check): its checks on made-up runs, and (slow) the whole rehearsal
on a CPU, `make gpu-check DEVICE=cpu`, in the venv that mirrors the GPU machine."""

import importlib.util
import json
import subprocess

import pytest
import torch
from conftest import ROOT
from safetensors.torch import save_file

spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
gc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gc)


def metrics(run, rows):
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_loss_that_did_not_move_fails_the_check(tmp_path):
    metrics(tmp_path, [{"stage": "sft", "loss": 2.0}, {"stage": "sft", "loss": 1.5}, {"stage": "dpo", "loss": 0.6931},
                       {"stage": "dpo", "loss": 0.6931}])
    assert gc.moved(tmp_path, "sft") == {"sft_loss": [2.0, 1.5]}
    with pytest.raises(AssertionError, match="dpo: the loss did not move"):
        gc.moved(tmp_path, "dpo")


def test_full_weights_must_be_float32_and_changed(tmp_path):
    base, run = tmp_path / "base", tmp_path / "run"
    base.mkdir()
    init = {"a": torch.ones(3, dtype=torch.bfloat16), "b": torch.zeros(2, dtype=torch.bfloat16)}
    save_file(init, base / "model.safetensors")
    metrics(run, [{"stage": "sft", "loss": 3.0}, {"stage": "sft", "loss": 2.0}])
    save_file({"a": torch.full((3,), 1.5), "b": torch.ones(2)}, run / "model.safetensors")
    assert gc.verify_full(run, base, stages=("sft",))["changed_from_init"] == 1.0
    save_file({k: v.float() for k, v in init.items()}, run / "model.safetensors")  # upcast, not trained
    with pytest.raises(AssertionError, match="only 0% of the tensors changed"):
        gc.verify_full(run, base, stages=("sft",))
    save_file({"a": torch.full((3,), 2, dtype=torch.bfloat16), "b": torch.ones(2, dtype=torch.bfloat16)},
              run / "model.safetensors")
    with pytest.raises(AssertionError, match=r"saved weights are \['bfloat16'\], not float32 master weights"):
        gc.verify_full(run, base, stages=("sft",))


def test_the_bench_check_reads_the_bench_lines_not_its_own(tmp_path):
    (tmp_path / "gpu-check-2026-01-01.jsonl").write_text(json.dumps({"step": "lora", "ok": True}) + "\n")
    rows = [{"variant": "sft-full-trl", "tokens_per_s": 100.0, "attn_implementation": "sdpa", "peak_mem_gb": 9.0},
            {"variant": "sft-full-tuned", "tokens_per_s": 150.0, "attn_implementation": "flex_attention",
             "peak_mem_gb": 8.0, "mfu": 0.4}]
    (tmp_path / "gpu-2026-01-01.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = gc.verify_bench(tmp_path)
    assert got["tuned_over_plain_tokens_per_s"] == 1.5 and got["attn"] == ["sdpa", "flex_attention"]
    (tmp_path / "gpu-2026-01-01.jsonl").write_text(json.dumps({"variant": "sft-full-trl", "error": "timed out"}))
    with pytest.raises(AssertionError, match="timed out"):
        gc.verify_bench(tmp_path)


def test_a_failed_step_reports_its_traceback_not_the_launcher_summary():
    log = "\n".join(["loading", "Traceback (most recent call last):", '  File "x.py", line 1', "    boom()",
                     "ValueError: the real cause", "", "=" * 20, "train FAILED", "exitcode  : 1"])
    assert gc.error_lines(log).endswith("ValueError: the real cause")


@pytest.mark.slow
def test_gpu_check_rehearses_on_cpu_in_the_mirrored_venv(tmp_path):
    """make gpu-check DEVICE=cpu: Python 3.12, torch 2.11, transformers 5.17 and the carried
    wheels; every step passes but QLoRA, which says why it cannot run on a CPU."""
    r = subprocess.run(["make", "gpu-check", "DEVICE=cpu", f"GPU_CHECK=--out {tmp_path}"], cwd=ROOT,
                       capture_output=True, text=True, timeout=3600)
    (out,) = tmp_path.glob("gpu-check-*-cpu.jsonl")
    rows = {r["step"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert r.returncode == 0, out.read_text()[-3000:] + r.stderr[-2000:]
    env = rows["environment"]
    assert env["python"].startswith("3.12.") and env["wheels"]
    assert env["versions"]["torch"].startswith("2.11.") and env["versions"]["transformers"] == "5.17.0"
    for step in ("model", "lora", "full", "fsdp", "eval-generate", "eval-preference", "bench"):
        assert rows[step]["ok"] is True, rows[step]
    assert rows["qlora"]["skipped"].startswith("QLoRA needs a CUDA GPU")
    assert rows["full"]["checks"]["saved_dtype"] == "float32"
    assert rows["done"]["ok"] is True

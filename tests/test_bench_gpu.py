"""bench/gpu.py: its FLOPs count against a built model, its ratios, and the harness end to end
on CPU with the tiny model (the GPU figures themselves come from a GPU machine)."""

import importlib.util
import json

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
gpu = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu)


def test_matmul_weights_count_the_built_architecture():
    from torch import nn
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = gpu.TINY
    model = Gemma3ForCausalLM(Gemma3TextConfig(**cfg))
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear))
    # lm_head is an nn.Linear tied to the embedding: counted once, as the formula does
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert linear == gpu.matmul_weights(cfg)
    assert gpu.matmul_weights(gpu.GEMMA3_1B) == 999_751_680  # Gemma-3 "1B", embedding included


def test_flops_by_hand():
    cfg = dict(gpu.TINY, num_hidden_layers=6, sliding_window=4)  # 5 sliding layers, 1 global
    q, head = cfg["num_attention_heads"] * cfg["head_dim"], cfg["vocab_size"] * cfg["hidden_size"]
    layers = gpu.matmul_weights(cfg) - head
    # one sequence of 8 tokens, 2 of them the trained answer: global layer attends 1+2+...+8 = 36
    # positions in all (4.5 per token); a sliding layer (window 4) 1+2+3+4+4+4+4+4 = 26 (3.25 per
    # token); the LM head runs for the 2 labelled tokens only (a quarter of the tokens)
    fwd = 2 * layers + 2 * head * 2 / 8 + 4 * q * (1 * 4.5 + 5 * 3.25)
    assert gpu.model_flops_per_token(cfg, [8], [2], ref_forward=False) == pytest.approx(3 * fwd)
    assert gpu.model_flops_per_token(cfg, [8], [2], ref_forward=True) == pytest.approx(4 * fwd)
    # every token trained: the head for all of them, as the weights count it
    everything = 2 * gpu.matmul_weights(cfg) + 4 * q * (1 * 4.5 + 5 * 3.25)
    assert gpu.model_flops_per_token(cfg, [8], [8], ref_forward=False) == pytest.approx(3 * everything)


def test_a_variant_past_its_timeout_is_recorded_and_the_run_goes_on(monkeypatch, tmp_path):
    import subprocess

    def slow(cmd, timeout, **kw):
        spec = json.loads(cmd[-1])
        if spec["variant"] == "sft-full-trl":
            raise subprocess.TimeoutExpired(cmd, timeout)
        return subprocess.CompletedProcess(cmd, 0, stdout=json.dumps({"skipped": "stand-in"}) + "\n", stderr="")

    monkeypatch.setattr(gpu, "run_killable", slow)
    monkeypatch.setattr(gpu, "save_model", lambda *a: None)
    assert gpu.main(["--tiny", "--device", "cpu", "--seq", "64", "--variant-timeout", "7", "--variants", "sft-full-trl", "sft-lora-trl",
                     "--out", str(tmp_path)]) == 0
    (lines,) = tmp_path.glob("gpu-*.jsonl")
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    assert [(r["variant"], r.get("error"), r.get("skipped")) for r in rows] == [
        ("sft-full-trl", "timed out after 7 s", None), ("sft-lora-trl", None, "stand-in")]


def test_ratios_name_met_and_missed_targets():
    rows = [
        {"variant": "sft-full-trl", "seq": 2048, "tokens_per_s": 1000.0, "peak_mem_gb": 40.0},
        {"variant": "sft-full-tuned", "seq": 2048, "tokens_per_s": 1500.0, "peak_mem_gb": 30.0, "mfu": 0.41},
        {"variant": "dpo-full-trl", "seq": 2048, "tokens_per_s": 500.0, "peak_mem_gb": 50.0},
        {"variant": "dpo-full-tuned", "seq": 2048, "tokens_per_s": 600.0, "peak_mem_gb": 35.0},
        {"variant": "sft-lora-trl", "seq": 2048, "error": "out of memory"},
    ]
    got = {r["what"]: (r["value"], r["met"]) for r in gpu.ratios(rows)}
    assert got == {
        "tuned / plain TRL SFT tokens/s (full)": (1.5, True),
        "tuned / plain TRL DPO peak memory (full)": (0.7, False),
        "MFU, full-parameter SFT (tuned)": (0.41, False),
    }


def test_a_timed_out_variant_takes_its_own_children_with_it(tmp_path):
    import os
    import subprocess
    import sys
    import time

    pid_file = tmp_path / "grandchild"
    code = ("import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(120)")
    with pytest.raises(subprocess.TimeoutExpired):
        gpu.run_killable([sys.executable, "-c", code], timeout=8)
    pid = int(pid_file.read_text())
    for _ in range(50):  # killed: gone, or a zombie until init reaps it
        status = f"/proc/{pid}/status"
        if not os.path.exists(status) or "zombie" in open(status).read():
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the variant's own child outlived the timeout")


def test_harness_runs_on_cpu(tmp_path):
    """Two variants of each method on the tiny model: every figure is there and plausible."""
    assert gpu.main(["--tiny", "--device", "cpu", "--seq", "64", "--steps", "2", "--warmup", "1", "--tokens-per-step", "256",
                     "--variants", "sft-full-trl", "sft-full-tuned", "dpo-full-trl", "dpo-full-tuned",
                     "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("gpu-*-tiny-cpu.json")
    report = json.loads(path.read_text())
    lines = [json.loads(x) for x in path.with_suffix(".jsonl").read_text().splitlines()]
    assert [r["variant"] for r in lines] == [r["variant"] for r in report["results"]]  # one line each, as it went
    assert report["device"]["device"].startswith("CPU only") and report["tiny"]
    rows = {r["variant"]: r for r in report["results"]}
    assert set(rows) == {"sft-full-trl", "sft-full-tuned", "dpo-full-trl", "dpo-full-tuned"}
    for r in rows.values():
        assert "error" not in r, r
        assert r["steps_measured"] == 2 and r["tokens_per_s"] > 0 and r["step_s_median"] > 0
        assert 0 < r["tokens_per_step"] <= r["batch"] * 64 * (2 if r["method"] == "dpo" else 1)
        assert r["model_tflops_per_s"] >= 0 and r["mfu"] is None  # no peak for a CPU
    assert rows["sft-full-trl"]["gradient_checkpointing"] and not rows["sft-full-trl"]["padding_free"]
    assert rows["sft-full-tuned"]["padding_free"] and not rows["sft-full-tuned"]["gradient_checkpointing"]
    # the kernel is recorded; on a CPU packing runs on sdpa, which masks the pack block by block
    assert {r["attn_implementation"] for r in rows.values()} == {"sdpa"}
    # packing fills each row: more real tokens per step than padded batches of the same size
    assert rows["sft-full-tuned"]["tokens_per_step"] > rows["sft-full-trl"]["tokens_per_step"]
    # no GPU memory figure on a CPU, so only the SFT ratio can be formed
    assert [r["what"] for r in report["ratios"]] == ["tuned / plain TRL SFT tokens/s (full)"]
    assert (tmp_path / path.name.replace(".json", ".md")).read_text().startswith("# GPU benchmark")

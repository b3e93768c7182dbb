"""GPU benchmark (issue #7): how fast SFT and DPO train a Gemma-3-1B-sized model, plain TRL
defaults against the settings we would make our defaults, side by side in one run.

    python bench/gpu.py [--seq 1024 2048] [--steps 10] [--warmup 3] [--only sft dpo] [--variants NAME ...]
    python bench/gpu.py --tiny --device cpu --seq 128 --steps 2 --warmup 1   # the harness itself, in seconds

The model is the Gemma-3 1B architecture (``GEMMA3_1B``: 26 layers, hidden 1152, 262,144-token
vocabulary) with random weights, saved once to a scratch directory and loaded from there by
every variant, as a user's run loads a checkpoint (speed and memory do not depend on the
weights; the GPU machine has no model hub). Text is random ASCII through the byte-level
tokenizer of the tests (one character, one token), so every length is exact; lengths vary
between examples, as real data does, so padding costs what it costs in practice.

Every variant runs in its own process (peak memory is per process) and reports: the median
optimizer step after ``--warmup`` steps, real (non-padding) tokens per second over the
measured steps, peak allocated GPU memory, and for full fine-tuning the model-FLOPs
utilisation (MFU) against the card's dense bf16 peak (``PEAK_TFLOPS``). Model FLOPs per
token: 6 x the weights of every matrix product of the layers, plus 6 x the LM head (tied to
the embedding) for the labelled (completion) tokens only, as TRL's fused head scores only
those, plus 12 x the attended positions x the attention width per layer (causal; the sliding
layers see at most their window); a DPO step with the reference forward inside it counts a
third more. Each result also names the attention kernel that ran.

Variants (``VARIANTS``): ``trl`` = TRL's own defaults (bf16, gradient checkpointing on, each
batch padded to its longest, sdpa, the reference model as a frozen copy or the disabled
adapter); ``tuned`` = packing (best-fit decreasing, padding-free) for SFT, with an attention
kernel that keeps the packed sequences apart without a dense mask over the whole pack
(``train.recipes.packed_attention``: flash-attention where installed, else flex attention; on
CPU sdpa, exact but dense), precomputed reference log-probs for DPO, and gradient
checkpointing off where memory allows (``-gc`` keeps it on).
TRL 1.x already scores the LM head in chunks (its fused log-prob kernel on CUDA), which is
what Liger's fused linear cross-entropy gave older TRL; ``use_liger_kernel`` is deprecated
there, so it is not a separate lever here.

Writes one JSON line per finished variant to ``bench/results/gpu-<date>.jsonl`` as it goes (a
variant that passes ``--variant-timeout`` is stopped and recorded as timed out), and at the end
``gpu-<date>.json`` (raw, with the device line and versions) and a Markdown table beside it,
with the ratios the issue asks for:
tuned SFT tokens/s >= 1.3 x plain TRL; tuned DPO peak memory <= 0.6 x plain TRL at the same
batch; MFU >= 45 % for full-parameter SFT at 2048.

On the lent GPU machine the packages it lacks travel as wheels (``make wheels``; the README's
GPU section); ``make gpu-check`` runs plain vs tuned full SFT at 1024 tokens after its smoke
runs. A variant whose package is missing is reported as skipped with the reason. A device
command runs 10 minutes at most, so run one ``--seq`` per call (``--out $OUT`` there, then copy
the files into bench/results/): results of the same day and card are merged into one file.

What the settings map to in ``conf/``: ``train.packing`` (SFT, default false),
``train.gradient_checkpointing`` (default false) and ``method.dpo.precompute_ref_log_probs``
(default false). Make a setting the default only where the measured ratio holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# google/gemma-3-1b-it's text config (layer pattern: five sliding-window layers, then one global)
GEMMA3_1B = dict(
    vocab_size=262_144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26, num_attention_heads=4,
    num_key_value_heads=1, head_dim=256, sliding_window=512, max_position_embeddings=32_768,
    query_pre_attn_scalar=256, rms_norm_eps=1e-6,
    rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1_000_000.0},
                     "sliding_attention": {"rope_type": "default", "rope_theta": 10_000.0}},
)
TINY = dict(GEMMA3_1B, vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
            num_attention_heads=2, head_dim=32, sliding_window=32)

# dense bf16 peak of the card, by a substring of its name (TFLOP/s, the vendors' data sheets)
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "L40S": 362.0}

# name -> (method, peft, settings); batch sizes come from --tokens-per-step
VARIANTS = {
    "sft-full-trl": ("sft", "full", {}),
    "sft-full-trl-nogc": ("sft", "full", {"gradient_checkpointing": False}),
    "sft-full-tuned-gc": ("sft", "full", {"packing": True}),
    "sft-full-tuned": ("sft", "full", {"packing": True, "gradient_checkpointing": False}),
    "sft-lora-trl": ("sft", "lora", {}),
    "sft-lora-tuned": ("sft", "lora", {"packing": True, "gradient_checkpointing": False}),
    "sft-qlora-tuned": ("sft", "qlora", {"packing": True}),
    "dpo-full-trl": ("dpo", "full", {}),
    "dpo-full-tuned": ("dpo", "full", {"precompute_ref_log_probs": True}),
    "dpo-full-tuned-nogc": ("dpo", "full", {"precompute_ref_log_probs": True, "gradient_checkpointing": False}),
    "dpo-lora-trl": ("dpo", "lora", {}),
    "dpo-lora-tuned": ("dpo", "lora", {"precompute_ref_log_probs": True}),
}


# --- data -----------------------------------------------------------------------------------------


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("abcdefghij klmnopqrst") for _ in range(n))


def make_data(method: str, seq: int, n: int, seed: int = 0) -> list[dict]:
    """``n`` examples of at most ``seq`` tokens with the EOS (SFT: prompt + completion; DPO:
    prompt + chosen and prompt + rejected), lengths spread like chat data: 1/8 to all of it."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = rng.randint(seq // 16, seq // 4)
        if method == "sft":
            rows.append({"prompt": _text(rng, prompt), "completion": _text(rng, rng.randint(seq // 16, seq - prompt - 2))})
        else:
            rows.append({"prompt": _text(rng, prompt), "chosen": _text(rng, rng.randint(seq // 16, seq - prompt - 2)),
                         "rejected": _text(rng, rng.randint(seq // 16, seq - prompt - 2))})
    return rows


def matmul_weights(cfg: dict) -> int:
    """Weights that take part in a matrix product per token: every projection of every layer and
    the LM head (tied to the embedding; the embedding lookup itself is no product). About
    1.0e9 for Gemma-3 1B."""
    h = cfg["hidden_size"]
    q, kv = cfg["num_attention_heads"] * cfg["head_dim"], cfg["num_key_value_heads"] * cfg["head_dim"]
    return cfg["num_hidden_layers"] * (h * (q + 2 * kv) + q * h + 3 * h * cfg["intermediate_size"]) + cfg["vocab_size"] * h


def model_flops_per_token(cfg: dict, lengths: list[int], completions: list[int], ref_forward: bool) -> float:
    """Training FLOPs per real token of full fine-tuning (see the module doc), averaged over
    sequences of ``lengths`` tokens of which ``completions`` are trained (labelled). TRL's fused
    LM head scores only the labelled positions, so the head counts for those alone."""
    layers, w = cfg["num_hidden_layers"], cfg["sliding_window"]
    q = cfg["num_attention_heads"] * cfg["head_dim"]
    head = cfg["vocab_size"] * cfg["hidden_size"]
    # positions each token attends to, summed over a sequence of n tokens (causal; sliding: <= w)
    tokens = sum(lengths)
    full = sum(n * (n + 1) / 2 for n in lengths) / tokens
    sliding = sum(n * (n + 1) / 2 if n <= w else w * (w + 1) / 2 + (n - w) * w for n in lengths) / tokens
    n_full = layers // 6
    fwd = (2 * (matmul_weights(cfg) - head) + 2 * head * sum(completions) / tokens
           + 4 * q * (n_full * full + (layers - n_full) * sliding))
    return 3 * fwd + (fwd if ref_forward else 0)  # backward = 2 x forward; DPO's reference: 1 more


# --- one variant (a child process) ----------------------------------------------------------------


def one(spec: dict) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback

    method, peft_kind, settings = VARIANTS[spec["variant"]]
    cuda = spec["cuda"]
    if peft_kind == "qlora" and not cuda:
        return {"skipped": "QLoRA needs a CUDA GPU (bitsandbytes)"}
    if peft_kind == "qlora":
        try:
            import bitsandbytes  # noqa: F401
        except ImportError:
            return {"skipped": "bitsandbytes is not installed"}
    from peft import LoraConfig
    from transformers import BitsAndBytesConfig
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from train.recipes import checkpointing, packed_attention

    settings = dict(settings)
    if "gradient_checkpointing" in settings:  # the field's name depends on the transformers version
        settings.update(checkpointing(settings.pop("gradient_checkpointing")))
    seq, batch = spec["seq"], spec["batch"]
    tok = AutoTokenizer.from_pretrained(spec["model"])
    steps = spec["warmup"] + spec["steps"]
    rows = make_data(method, seq, n=batch * steps * (3 if settings.get("packing") else 1) + batch, seed=spec["seed"])
    times, seen = [], []

    class Timer(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter())
            seen.append(state.num_input_tokens_seen)

    dtype = torch.bfloat16 if cuda else torch.float32
    init = {"dtype": dtype}
    if settings.get("packing"):
        # one padding-free row per batch: sdpa would attend densely across the whole pack
        init["attn_implementation"] = packed_attention("cuda" if cuda else "cpu")
    if peft_kind == "qlora":
        init["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                         bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
    common = dict(output_dir=spec["tmp"], max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-5,
                  logging_steps=1000, save_strategy="no", report_to=[], bf16=cuda, seed=spec["seed"],
                  include_num_input_tokens_seen="non_padding", model_init_kwargs=init, max_length=seq,
                  use_cpu=not cuda, dataloader_num_workers=0, **settings)
    peft = None if peft_kind == "full" else LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                                       task_type="CAUSAL_LM")
    if method == "sft":
        args = SFTConfig(**common)
        trainer = SFTTrainer(model=spec["model"], args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tok, peft_config=peft, callbacks=[Timer()])
    else:
        args = DPOConfig(**common)
        trainer = DPOTrainer(model=spec["model"], args=args, train_dataset=Dataset.from_list(rows),
                             processing_class=tok, peft_config=peft, callbacks=[Timer()])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - started
    start = max(spec["warmup"] - 1, 0)  # measured: the steps after the warm-up (and never the first)
    step_s = [b - a for a, b in zip(times[start:], times[start + 1:])]
    tokens, span = seen[-1] - seen[start], times[-1] - times[start]
    out = {"steps_measured": len(step_s), "step_s_median": round(statistics.median(step_s), 4),
           "tokens_per_step": round(tokens / max(len(step_s), 1)), "tokens_per_s": round(tokens / span, 1),
           "train_wall_s": round(wall, 2),
           "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
           "gradient_checkpointing": trainer.args.gradient_checkpointing,
           "padding_free": bool(getattr(trainer, "padding_free", False)),
           "attn_implementation": getattr(trainer.model.config, "_attn_implementation", None)}
    if peft_kind == "full":
        keys = ("completion",) if method == "sft" else ("chosen", "rejected")
        seqs = [(len(r["prompt"]), len(r[k]) + 1) for r in rows for k in keys]  # (prompt, answer + EOS)
        flops = model_flops_per_token(spec["config"], [p + a for p, a in seqs], [a for _, a in seqs],
                                      ref_forward=method == "dpo" and not settings.get("precompute_ref_log_probs"))
        out["model_tflops_per_s"] = round(flops * out["tokens_per_s"] / 1e12, 2)
        out["mfu"] = round(out["model_tflops_per_s"] / spec["peak_tflops"], 4) if spec.get("peak_tflops") else None
    return out


# --- the run ----------------------------------------------------------------------------------------


def device(cuda: bool) -> dict:
    import importlib.metadata as md

    import torch

    versions = {}
    for p in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "bitsandbytes"):
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = None
    if cuda:
        name = torch.cuda.get_device_name()
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
        mem = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        line = f"{name}, {mem} GiB, CUDA {torch.version.cuda}"
    else:
        name, peak, line = "cpu", None, f"CPU only ({os.cpu_count()} cores): the harness, not a GPU figure"
    return {"device": line, "name": name, "peak_bf16_tflops": peak, "versions": versions}


def save_model(cfg: dict, path: Path, dtype_name: str, device: str = "cpu") -> None:
    """A random Gemma-3 of ``cfg`` with the byte-level tokenizer, saved to ``path`` (initialised
    on ``device``: a 1B model initialises in seconds on a GPU, in tens of seconds on a CPU)."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from train.models import _tiny_tokenizer  # the byte-level tokenizer of the tests: exact lengths

    tok = _tiny_tokenizer()
    layer_types = ["full_attention" if (i + 1) % 6 == 0 else "sliding_attention" for i in range(cfg["num_hidden_layers"])]
    config = Gemma3TextConfig(**cfg, layer_types=layer_types, pad_token_id=tok.pad_token_id,
                              bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    with torch.device(device):
        model = Gemma3ForCausalLM(config)
    model.to(getattr(torch, dtype_name)).save_pretrained(path)
    tok.save_pretrained(path)


def ratios(results: list[dict]) -> list[dict]:
    """The issue's targets, per sequence length, from whichever variants ran."""
    by = {(r["variant"], r["seq"]): r for r in results if "tokens_per_s" in r}
    out = []
    for seq in sorted({r["seq"] for r in results}):
        for plain, tuned, what, key, target, better in (
            ("sft-full-trl", "sft-full-tuned", "tuned / plain TRL SFT tokens/s (full)", "tokens_per_s", 1.3, "higher"),
            ("sft-lora-trl", "sft-lora-tuned", "tuned / plain TRL SFT tokens/s (LoRA)", "tokens_per_s", 1.3, "higher"),
            ("dpo-full-trl", "dpo-full-tuned", "tuned / plain TRL DPO peak memory (full)", "peak_mem_gb", 0.6, "lower"),
            ("dpo-lora-trl", "dpo-lora-tuned", "tuned / plain TRL DPO peak memory (LoRA)", "peak_mem_gb", 0.6, "lower"),
        ):
            a, b = by.get((plain, seq)), by.get((tuned, seq))
            if a and b and a.get(key) and b.get(key) is not None:
                v = round(b[key] / a[key], 3)
                out.append({"seq": seq, "what": what, "value": v, "target": target,
                            "met": v >= target if better == "higher" else v <= target})
        full = by.get(("sft-full-tuned", seq))
        if seq == 2048 and full and full.get("mfu") is not None:
            out.append({"seq": seq, "what": "MFU, full-parameter SFT (tuned)", "value": full["mfu"], "target": 0.45,
                        "met": full["mfu"] >= 0.45})
    return out


def markdown(report: dict) -> str:
    lines = [f"# GPU benchmark {report['date']}", "", f"Device: {report['device']['device']}; peak dense bf16 "
             f"{report['device']['peak_bf16_tflops']} TFLOP/s; versions {report['device']['versions']}", "",
             f"Model: Gemma-3 1B architecture, random weights{' (TINY: harness check)' if report['tiny'] else ''}; "
             f"{report['steps']} measured steps after {report['warmup']} warm-up steps.", "",
             "| variant | seq | batch | step s | tokens/s | peak GB | MFU | grad ckpt | padding-free | note |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        if "tokens_per_s" in r:
            mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "–"
            lines.append(f"| {r['variant']} | {r['seq']} | {r['batch']} | {r['step_s_median']} | {r['tokens_per_s']:,} | "
                         f"{r['peak_mem_gb'] if r['peak_mem_gb'] is not None else '–'} | {mfu} | "
                         f"{r['gradient_checkpointing']} | {r['padding_free']} | |")
        else:
            lines.append(f"| {r['variant']} | {r['seq']} | {r['batch']} | | | | | | | {r.get('skipped') or r.get('error', '')[:80]} |")
    lines += ["", "| target | seq | value | target | met |", "|---|---|---|---|---|"]
    lines += [f"| {t['what']} | {t['seq']} | {t['value']} | {t['target']} | {'yes' if t['met'] else 'no'} |"
              for t in report["ratios"]]
    return "\n".join(lines) + "\n"


def run_killable(cmd: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` in a process group of its own, killed whole at ``timeout`` (raising
    TimeoutExpired) or on an interrupt: a child's own children (torch.compile's workers, a
    launcher's ranks) would otherwise outlive it and keep the GPU."""
    with subprocess.Popen(cmd, start_new_session=True, **kwargs) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            os.killpg(p.pid, signal.SIGKILL)
            p.communicate()
            raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def run_variant(spec: dict, timeout: float) -> dict:
    """One variant in its own process (peak memory is per process), stopped after ``timeout`` s."""
    name = spec["variant"]
    row = {"variant": name, "method": VARIANTS[name][0], "peft": VARIANTS[name][1], "seq": spec["seq"],
           "batch": spec["batch"], "settings": VARIANTS[name][2]}
    try:
        p = run_killable([sys.executable, __file__, "_one", json.dumps(spec)], timeout, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except subprocess.TimeoutExpired:
        return {**row, "error": f"timed out after {timeout:g} s"}
    if p.returncode:
        err = (p.stderr.strip().splitlines() or ["?"])[-1]
        return {**row, "error": "out of memory" if "OutOfMemoryError" in p.stderr else err[-300:]}
    return {**row, **json.loads(p.stdout.strip().splitlines()[-1])}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/gpu.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seq", type=int, nargs="+", default=[1024, 2048])
    ap.add_argument("--steps", type=int, default=10, help="measured optimizer steps per variant")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--tokens-per-step", type=int, default=16_384,
                    help="batch = this / seq for SFT, half of it (pairs) for DPO")
    ap.add_argument("--only", nargs="+", choices=["sft", "dpo"])
    ap.add_argument("--variants", nargs="+", choices=sorted(VARIANTS))
    ap.add_argument("--tiny", action="store_true", help="a tiny model of the same shape family: checks the harness")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variant-timeout", type=float, default=300, help="seconds one variant may take")
    ap.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto", help="auto: CUDA when present")
    a = ap.parse_args(argv)

    import torch

    cuda = a.device == "cuda" or a.device == "auto" and torch.cuda.is_available()
    info = device(cuda)
    names = [v for v in (a.variants or VARIANTS) if not a.only or VARIANTS[v][0] in a.only]
    cfg = TINY if a.tiny else GEMMA3_1B
    date = dt.date.today().isoformat()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"gpu-{date}" + ("-tiny" if a.tiny else "") + ("-cpu" if info["name"] == "cpu" else "")
    results = []
    with tempfile.TemporaryDirectory(prefix="sftdpo-gpu-bench-") as tmp:
        model = Path(tmp) / "model"
        save_model(cfg, model, "bfloat16" if cuda else "float32", "cuda" if cuda else "cpu")
        for seq in a.seq:
            for name in names:
                method = VARIANTS[name][0]
                batch = max(1, a.tokens_per_step // seq // (2 if method == "dpo" else 1))
                spec = {"variant": name, "seq": seq, "batch": batch, "steps": a.steps, "warmup": a.warmup,
                        "seed": a.seed, "model": str(model), "config": cfg, "cuda": cuda,
                        "peak_tflops": info["peak_bf16_tflops"], "tmp": str(Path(tmp) / name)}
                print(f"[{time.strftime('%H:%M:%S')}] {name} seq {seq} batch {batch}", flush=True)
                row = run_variant(spec, a.variant_timeout)
                print("   ", json.dumps({k: v for k, v in row.items() if k not in ("settings",)}), flush=True)
                # one line per finished variant, at once: a command killed at the device's limit
                # still leaves every variant it finished
                with open(out / f"{stem}.jsonl", "a", encoding="utf-8") as f:
                    f.write(json.dumps({"date": date, "device": info["device"], **row}) + "\n")
                results.append(row)
    # one device call holds about one sequence length (10 minutes): later calls on the same day and
    # card add their rows to the file, replacing the variants they re-ran
    earlier = out / f"{stem}.json"
    if earlier.is_file():
        old = json.loads(earlier.read_text())
        if old["device"]["device"] == info["device"]:
            ran = {(r["variant"], r["seq"]) for r in results}
            results = [r for r in old["results"] if (r["variant"], r["seq"]) not in ran] + results
    report = {"date": date, "device": info, "tiny": a.tiny, "model_config": cfg, "steps": a.steps, "warmup": a.warmup,
              "tokens_per_step": a.tokens_per_step, "results": results}
    report["ratios"] = ratios(results)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / f"{stem}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_one":
        print(json.dumps(one(json.loads(sys.argv[2]))))
    else:
        sys.exit(main())

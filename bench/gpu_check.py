"""make gpu-check: the first run on a GPU machine, as one command of at most 5 minutes on one
H100/H200, that writes what it finds as it goes.

    python bench/gpu_check.py [--device cuda|cpu] [--wheels .whl] [--out bench/results] [--budget S]

It trains a random-initialised Gemma-3-1B-sized model (``bench/gpu.py``'s ``GEMMA3_1B``: the
26 layers and the 262k vocabulary; ``--device cpu`` takes its tiny sibling, which rehearses
every step on a CPU) through the ordinary commands, each in its own process with its own
timeout:

1. ``lora``, ``qlora``, ``full``: ``python -m train method=sft_dpo`` with LoRA, QLoRA and full
   fine-tuning, a few steps per stage. Checked: the losses moved, the weights changed (LoRA's
   B matrices left zero, the DPO stage moved the SFT result), full fine-tuning saved float32
   master weights. These and ``fsdp`` run side by side: they only check, they do not time.
2. ``fsdp``: full SFT through ``accelerate launch --config_file conf/accelerate/fsdp.yaml``, one
   process. Checked: the loss moved, whole tensors saved, weights changed.
3. ``eval-generate``, ``eval-preference``: ``python -m eval`` on the LoRA run.
4. ``bench``: ``bench/gpu.py`` plain TRL vs tuned full SFT at 1024 tokens, alone on the GPU.

Every finished step is one JSON line in ``<out>/gpu-check-<date>[-cpu].jsonl`` (the first line:
device and versions); ``bench/gpu.py`` writes its own files beside it. A step that cannot run
here (QLoRA without CUDA or bitsandbytes) is skipped with the reason; a step that would pass
``--budget`` is skipped as out of time. Exit 0 when no step failed.

``--wheels DIR``: install the wheels in DIR first (``--no-index --no-deps``, into a scratch
directory put first on every step's ``PYTHONPATH``), as on the lent GPU machine, which lacks TRL,
datasets and Hydra: ``make wheels`` prepares them (the README's GPU section).
Standard library only until the wheels are in place.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LORA_RUN = "lora"
# bench/gpu.py: the model shapes, the random model, run_killable (standard library at import)
_spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "bench" / "gpu.py")
bench_gpu = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_gpu)

# a few steps per stage; learning rates high enough that a few steps move the loss of a random model
TRAIN = ("data=style", "data.limit=16", "data.val_fraction=0", "train.eval_steps=0", "train.logging_steps=1",
         "train.warmup=0", "train.lr_scheduler=constant", "train.save_steps=1000")
SIZE = {"cuda": ("train.max_steps=4", "train.batch_size=4", "train.max_length=1024"),
        "cpu": ("train.max_steps=3", "train.batch_size=2", "train.max_length=384")}
RATES = {"lora": {"sft": 1e-3, "dpo": 1e-4}, "none": {"sft": 1e-4, "dpo": 1e-5}}


class Check:
    """The steps' shared settings, the output file and the clock."""

    def __init__(self, a, env: dict, scratch: Path):
        self.a, self.env, self.scratch = a, env, scratch
        self.started = time.monotonic()
        self.lock = threading.Lock()
        self.failed = 0
        self.out = Path(a.out) / f"gpu-check-{dt.date.today().isoformat()}{'-cpu' if a.device == 'cpu' else ''}.jsonl"
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("")
        self.model = scratch / "model"
        self.slow = 1 if a.device == "cuda" else 4  # timeouts on a (shared, 2-core) CPU

    def left(self) -> float:
        return self.a.budget - (time.monotonic() - self.started)

    def write(self, row: dict) -> None:
        row = {"at_s": round(time.monotonic() - self.started, 1), **row}
        with self.lock:
            self.failed += row.get("ok") is False
            with open(self.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)

    def run(self, step: str, cmd: list[str], timeout: float) -> tuple[bool, str]:
        """Run a step's command; (finished with 0, the end of its output). Logs go to the scratch dir."""
        timeout = min(timeout, self.left())
        if timeout < 10:
            return False, "out of time (--budget)"
        log = self.scratch / f"{step}.log"
        with open(log, "w", encoding="utf-8") as f:
            try:
                rc = bench_gpu.run_killable(cmd, timeout, cwd=ROOT, env=self.env, stdout=f,
                                            stderr=subprocess.STDOUT).returncode
            except subprocess.TimeoutExpired:
                return False, f"timed out after {timeout:.0f} s"
        return rc == 0, error_lines(log.read_text(encoding="utf-8", errors="replace"))

    def step(self, name: str, cmd: list[str], timeout: float, verify) -> bool:
        """One step: run, then ``verify()`` -> dict of checks (raises AssertionError on a failed one)."""
        t = time.monotonic()
        ok, tail = self.run(name, cmd, timeout)
        row = {"step": name, "ok": ok, "seconds": round(time.monotonic() - t, 1)}
        if ok:
            try:
                row["checks"] = verify()
            except (AssertionError, OSError, ValueError, KeyError) as e:
                row.update(ok=False, error=f"check failed: {e}")
        else:
            row["error"] = tail
        self.write(row)
        return row["ok"]

    def train(self, name: str, peft: str, method: str = "sft_dpo") -> list[str]:
        """``python -m train`` overrides for a smoke run of the random model."""
        rates = RATES["none" if peft == "none" else "lora"]
        return ["model=gemma3-1b-it", f"model.path={self.model}", "model.name=random-1b", "model.chat_template=gemma3",
                "model.allow_cpu=true", f"method={method}", f"peft={peft}", f"device={self.a.device}",
                f"out_dir={self.scratch / 'runs'}", f"name={name}", *TRAIN, *SIZE[self.a.device],
                *[f"method.{stage}.learning_rate={rates[stage]}" for stage in ("sft", "dpo") if stage in method]]


def error_lines(log: str) -> str:
    """What a failed step's output says: the lines before its first traceback (a launcher's
    traceback comes after the child's own message) and the last line of each traceback."""
    lines = [x for x in log.strip().splitlines() if x.strip()]
    starts = [i for i, x in enumerate(lines) if x.startswith("Traceback (most recent call last)")]
    if not starts:
        return "\n".join(lines[-12:])
    causes = [next((x for x in lines[i + 1:] if not x[0].isspace() and not x.startswith("Traceback")), "")
              for i in starts]
    return "\n".join(lines[max(0, starts[0] - 6):starts[0]] + list(dict.fromkeys(causes)))


# --- checks ---------------------------------------------------------------------------------------


def losses(run: Path, stage: str) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [r["loss"] for r in rows if r.get("stage") == stage and r.get("loss") is not None]


def moved(run: Path, stage: str) -> dict:
    got = losses(run, stage)
    assert len(got) >= 2 and all(math.isfinite(x) for x in got), f"{stage}: losses {got}"
    assert abs(got[-1] - got[0]) > 1e-4, f"{stage}: the loss did not move ({got})"
    return {f"{stage}_loss": [round(got[0], 4), round(got[-1], 4)]}


def tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def changed(a: dict, b: dict) -> float:
    """The share of the tensors ``a`` and ``b`` have in common that differ."""
    common = [k for k in a if k in b]
    assert common, "no tensors in common"
    return sum(not a[k].float().equal(b[k].float()) for k in common) / len(common)


def verify_adapter(run: Path) -> dict:
    sft, dpo = tensors(run / "sft" / "adapter_model.safetensors"), tensors(run / "adapter_model.safetensors")
    b = [v for k, v in sft.items() if "lora_B" in k]
    assert b and all(v.abs().sum() > 0 for v in b), "SFT left LoRA B matrices at zero"
    share = changed(sft, dpo)
    assert share > 0, "DPO did not change the SFT adapter"
    return {**moved(run, "sft"), **moved(run, "dpo"), "dpo_changed_adapter_tensors": round(share, 3)}


def verify_full(run: Path, base: Path, stages=("sft", "dpo")) -> dict:
    init = tensors(base / "model.safetensors")
    final = tensors(run / "model.safetensors")
    dtypes = sorted({str(v.dtype).removeprefix("torch.") for v in final.values()})
    assert dtypes == ["float32"], f"saved weights are {dtypes}, not float32 master weights"
    out = {"saved_dtype": dtypes[0], "changed_from_init": round(changed(init, final), 3)}
    assert out["changed_from_init"] > 0.5, f"only {out['changed_from_init']:.0%} of the tensors changed"
    for stage in stages:
        out.update(moved(run, stage))
    return out


def verify_eval(run: Path, n: int) -> dict:
    rows = [json.loads(x) for x in (run / "generations.jsonl").read_text().splitlines() if x.strip()]
    assert len(rows) == n and all(isinstance(r["text"], str) for r in rows), f"{len(rows)} generations"
    return {"generations": len(rows), "mean_chars": round(sum(len(r["text"]) for r in rows) / n, 1)}


def verify_preference(run: Path, n: int) -> dict:
    p = json.loads((run / "preference.json").read_text())
    assert p["n"] == n and all(math.isfinite(r["margin"]) for r in p["rows"]), "preference rows"
    return {"accuracy": p["accuracy"]["value"], "method": p["method"]}


def verify_bench(out: Path) -> dict:
    rows = {}  # the latest line of each variant in bench/gpu.py's files (not this script's)
    for f in sorted(f for f in out.glob("gpu-*.jsonl") if not f.name.startswith("gpu-check-")):
        for line in f.read_text().splitlines():
            r = json.loads(line)
            rows[r["variant"]] = r
    got = {k: rows.get(k, {}) for k in ("sft-full-trl", "sft-full-tuned")}
    bad = {k: r.get("error", "missing") for k, r in got.items() if "tokens_per_s" not in r}
    assert not bad, f"variants without a result: {bad}"
    plain, tuned = got["sft-full-trl"], got["sft-full-tuned"]
    return {"tuned_over_plain_tokens_per_s": round(tuned["tokens_per_s"] / plain["tokens_per_s"], 3),
            "attn": [plain["attn_implementation"], tuned["attn_implementation"]],
            "mfu": [plain.get("mfu"), tuned.get("mfu")], "peak_mem_gb": [plain["peak_mem_gb"], tuned["peak_mem_gb"]]}


# --- set-up ---------------------------------------------------------------------------------------


def install_wheels(wheels: Path) -> Path | None:
    """The wheels in ``wheels`` installed once into a scratch directory (by their names and sizes)."""
    files = sorted(wheels.glob("*.whl"))
    if not files:
        return None
    key = hashlib.sha256("".join(f"{f.name}{f.stat().st_size}" for f in files).encode()).hexdigest()[:12]
    site = Path(tempfile.gettempdir()) / f"sftdpo-site-{key}"
    if not (site / ".done").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--no-cache-dir", "--upgrade", "--target", str(site), *map(str, files)], check=True)
        (site / ".done").touch()
    return site


def environment(env: dict) -> dict:
    """Python, the package versions and the device, as every step's process sees them."""
    probe = r"""
import importlib.metadata as md, json, platform, torch
v = {}
for p in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "hydra-core",
          "tokenizers", "safetensors", "huggingface-hub", "numpy", "pyarrow", "fsspec"):
    try: v[p] = md.version(p)
    except md.PackageNotFoundError: v[p] = None
gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
print(json.dumps({"python": platform.python_version(), "versions": v, "gpu": gpu, "cuda": torch.version.cuda}))
"""
    r = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode:
        raise SystemExit(f"gpu-check: the environment does not import: {r.stderr.strip().splitlines()[-1]}")
    return json.loads(r.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/gpu_check.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--wheels", help="a directory of wheels to install first (make wheels)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--budget", type=float, help="seconds for the whole check (default: 300 on CUDA, 2400 on CPU)")
    a = ap.parse_args(argv)
    a.budget = a.budget or (300 if a.device == "cuda" else 2400)

    env = dict(os.environ, PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    site = install_wheels(Path(a.wheels)) if a.wheels else None
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site) if site else "", str(ROOT), env.get("PYTHONPATH")) if p)
    sys.path[:0] = [p for p in (str(site) if site else None,) if p]
    info = environment(env)
    if a.device == "cuda" and not info["gpu"]:
        print("gpu-check: torch sees no CUDA GPU here; rehearse with --device cpu (make gpu-check DEVICE=cpu)",
              file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory(prefix="sftdpo-gpu-check-") as tmp:
        c = Check(a, env, Path(tmp))
        c.write({"step": "environment", "ok": True, "device": a.device, "wheels": site is not None, **info})
        tiny = ["--tiny"] if a.device == "cpu" else []
        if not c.step("model", [sys.executable, __file__, "_model", str(c.model), a.device], 120 * c.slow,
                      lambda: {"files": sorted(p.name for p in c.model.iterdir())}):
            return 1
        runs = c.scratch / "runs"
        py = [sys.executable, "-m"]
        smoke = {
            "lora": (py + ["train", *c.train("lora", "lora")], lambda: verify_adapter(runs / "lora")),
            "full": (py + ["train", *c.train("full", "none")], lambda: verify_full(runs / "full", c.model)),
            "fsdp": (py + ["accelerate.commands.launch", "--config_file", "conf/accelerate/fsdp.yaml",
                           "--num_processes", "1", "-m", "train", *c.train("fsdp", "none", method="sft")],
                     lambda: verify_full(runs / "fsdp", c.model, stages=("sft",))),
        }
        why = qlora_missing(a.device, env)
        if why:
            c.write({"step": "qlora", "ok": None, "skipped": why})
        else:
            smoke["qlora"] = (py + ["train", *c.train("qlora", "qlora")], lambda: verify_adapter(runs / "qlora"))
        # side by side on a GPU: the smoke runs only check (the GPU holds them all, and their start-up
        # is CPU work for 16 cores); one by one on a CPU, where they would only slow each other down
        with concurrent.futures.ThreadPoolExecutor(len(smoke) if a.device == "cuda" else 1) as pool:
            done = dict(zip(smoke, pool.map(lambda k: c.step(k, smoke[k][0], 240 * c.slow, smoke[k][1]), smoke)))
        if done["lora"]:
            n = 4
            ev = ["run=" + str(runs / LORA_RUN), f"limit={n}", f"device={a.device}"]
            with concurrent.futures.ThreadPoolExecutor(2 if a.device == "cuda" else 1) as pool:
                list(pool.map(lambda s: c.step(*s), [
                    ("eval-generate", py + ["eval", "generate", *ev, "generate.max_new_tokens=16",
                                            f"generate.batch_size={n}"], 150 * c.slow, lambda: verify_eval(runs / LORA_RUN, n)),
                    ("eval-preference", py + ["eval", "preference", *ev, "preference.max_length=512"], 150 * c.slow,
                     lambda: verify_preference(runs / LORA_RUN, n)),
                ]))
        else:
            c.write({"step": "eval", "ok": None, "skipped": "the LoRA run failed"})
        bench = ([sys.executable, "bench/gpu.py", *tiny, "--device", a.device, "--out", str(Path(a.out)), "--variants", "sft-full-trl",
                  "sft-full-tuned"]
                 + (["--seq", "64", "--steps", "2", "--warmup", "1", "--tokens-per-step", "256"] if tiny else
                    ["--seq", "1024", "--steps", "4", "--warmup", "3"])
                 # each variant may take what is left but a margin: the first is quick, the tuned one
                 # compiles its flex-attention kernel in its warm-up steps
                 + ["--variant-timeout", str(max(30, int(c.left()) - 30))])
        c.step("bench", bench, c.left(), lambda: verify_bench(Path(a.out)))
        c.write({"step": "done", "ok": c.failed == 0, "failed": c.failed, "results": str(c.out)})
    return 0 if c.failed == 0 else 1


def qlora_missing(device: str, env: dict) -> str | None:
    """Why QLoRA cannot run here, or None."""
    if device != "cuda":
        return "QLoRA needs a CUDA GPU (bitsandbytes 4-bit)"
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('bitsandbytes') is None)"
    if subprocess.run([sys.executable, "-c", probe], env=env).returncode:
        return "bitsandbytes is not installed (not in the carried wheels?)"
    return None


def save_model(path: str, device: str) -> None:
    """The random model every step trains: bench/gpu.py's Gemma-3 1B shape, its tiny sibling on CPU."""
    cuda = device == "cuda"
    bench_gpu.save_model(bench_gpu.GEMMA3_1B if cuda else bench_gpu.TINY, Path(path),
                         "bfloat16" if cuda else "float32", device)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "_model":
        save_model(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "_site":  # make test-min: where the wheels are installed
        print(install_wheels(Path(sys.argv[2])))
    else:
        sys.exit(main())

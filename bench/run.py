"""``make bench``: what the framework costs on CPU, measured side by side in one run.

    python bench/run.py [--reps 2] [--steps 4] [--batch 2] [--max-length 96] [--out bench/results]

Writes ``bench/results/cpu-<date>.json`` and ``cpu-<date>.md``. Every job runs in its own
process (peak RSS from ``wait4``), one at a time, on an otherwise idle machine:

1. framework overhead — the same job (embedded Gemma-3 270M, LoRA r 16 all-linear, the shipped
   style data, fixed steps / batch / length) through ``python -m train`` and through the plain
   TRL script ``bench/trl_baseline.py``, interleaved (the order alternates per repetition);
   seconds per step = the median optimizer step after the first (forward, backward, optimizer;
   a callback in both), so set-up inside ``trainer.train()`` (TensorBoard, say) is not counted
   per step; ``train_seconds_per_step`` (train() wall / steps) is kept too;
2. data — ``data validate`` and ``data.load`` records/s on a generated 100,000-record file;
3. eval — ``eval score`` texts/s on 20,000 realistic generations, and ``eval generate`` with its
   speed levers against the path before them (bench/generate.py: sampled answers with EOS stops
   from an SFT LoRA run of the 270M, full and trimmed vocabulary);
4. peak RSS of each;
5. the CPU lever — ``model.trim_vocab=true`` on the same SFT / DPO jobs as (1), and the
   output layer's share of a step.

Ratios only: absolute CPU times depend on the machine (see the machine block in the JSON).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
STYLE = ROOT / "data" / "style" / "train.jsonl"


def child(cmd: list[str], env: dict | None = None, stderr: bool = False) -> tuple[str, float, int]:
    """Run ``cmd``; (stdout, wall seconds, peak RSS in MB); stdout and stderr together with
    ``stderr=True``. On failure the end of stderr is shown."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text, errs = out.read().decode(), err.read().decode(errors="replace")
    if p.returncode:
        sys.exit(f"bench: {' '.join(cmd[:6])} ... failed (exit {p.returncode}):\n{errs[-3000:]}")
    return text + errs if stderr else text, wall, round(usage.ru_maxrss / 1024)


def progress(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- 1 + 5: training jobs ------------------------------------------------------------------------


def ours(method: str, a, tmp: Path, *extra: str) -> dict:
    name = f"bench-{method}-{len(extra)}"
    _, wall, rss = child([PY, "-m", "train", "model=gemma3-270m", f"method={method}", "data=style",
                          f"train.max_steps={a.steps}", f"train.batch_size={a.batch}",
                          f"train.max_length={a.max_length}", "data.val_fraction=0", "train.eval_steps=0",
                          "train.save_steps=100000", "train.logging_steps=1", f"out_dir={tmp}", f"name={name}",
                          "overwrite=true", *extra])
    st = json.loads((tmp / name / "status.json").read_text())["stages"][method]
    return {"seconds_per_step": st["step_seconds_median"], "train_seconds_per_step": st["seconds_per_step"],
            "peak_rss_mb": rss, "process_seconds": round(wall, 1)}


def plain(method: str, a, model_dir: str, *extra: str) -> dict:
    out, wall, rss = child([PY, str(ROOT / "bench" / "trl_baseline.py"), method, "--model-dir", model_dir,
                            "--data", str(STYLE), "--steps", str(a.steps), "--batch", str(a.batch),
                            "--max-length", str(a.max_length), *extra])
    from train.rundir import steady_step_seconds  # the rule status.json uses for `python -m train`

    r = json.loads(out.strip().splitlines()[-1])
    return {"seconds_per_step": steady_step_seconds(r["step_seconds"]), "train_seconds_per_step": round(r["seconds_per_step"], 3),
            "peak_rss_mb": rss, "process_seconds": round(wall, 1)}


def overhead(a, tmp: Path, model_dir: str) -> dict:
    """ours vs the plain script with the same CPU scoring (interleaved, ``reps`` each): the
    framework's own cost; plus stock TRL once (what our compact scoring saves)."""
    res = {}
    for method in ("sft", "dpo"):
        runs = {"ours": [], "plain_trl": [], "stock_trl": []}
        for rep in range(a.reps):
            order = ("ours", "plain_trl") if rep % 2 == 0 else ("plain_trl", "ours")
            for impl in order:
                progress(f"overhead {method} rep {rep + 1}/{a.reps}: {impl}")
                runs[impl].append(ours(method, a, tmp) if impl == "ours" else plain(method, a, model_dir, "--compact"))
        progress(f"overhead {method}: stock TRL (no compact scoring)")
        runs["stock_trl"].append(plain(method, a, model_dir))
        med = {k: statistics.median(r["seconds_per_step"] for r in v) for k, v in runs.items()}
        res[method] = {"runs": runs, "median_seconds_per_step": med,
                       "ratio_ours_over_plain": round(med["ours"] / med["plain_trl"], 3),
                       "ratio_ours_over_stock_trl": round(med["ours"] / med["stock_trl"], 3),
                       "peak_rss_mb": {k: max(r["peak_rss_mb"] for r in v) for k, v in runs.items()}}
    return res


def lever(a, tmp: Path, full: dict) -> dict:
    res = {}
    for method in ("sft", "dpo"):
        progress(f"trimmed vocabulary: {method}")
        t = ours(method, a, tmp, "model.trim_vocab=true")
        vocab = json.loads((tmp / f"bench-{method}-1" / "vocab.json").read_text())
        base = full[method]["median_seconds_per_step"]["ours"]
        res[method] = {**t, "kept_tokens": vocab["kept"], "vocab": vocab["of"],
                       "speedup_over_full_vocab": round(base / t["seconds_per_step"], 2),
                       # the trimmed head costs ~nothing, so the time saved is (close to) the head's share
                       "output_layer_share_of_step": round(1 - t["seconds_per_step"] / base, 3)}
    return res


# --- 2: data ---------------------------------------------------------------------------------------


def data_bench() -> dict:
    progress("data: validate / load on 100,000 records")
    out, _, rss = child([PY, str(ROOT / "bench" / "data_throughput.py"), "--n", "100000", "--repeat", "3"])
    r = json.loads(out)
    r["peak_rss_mb"] = rss
    return r


# --- 3: eval ---------------------------------------------------------------------------------------


def generations(n: int, path: Path) -> None:
    """``n`` rows shaped like ``eval generate`` output, from the shipped answers (incl. loops)."""
    texts = []
    for f in ("style/train.jsonl", "keywords/train.jsonl"):
        for line in open(ROOT / "data" / f, encoding="utf-8"):
            r = json.loads(line)
            for key in ("preferred_output", "non_preferred_output", "chosen", "rejected"):
                v = r.get(key)
                if v:
                    texts.append((v[-1]["content"] if isinstance(v, list) else str(v), r.get("keywords") or []))
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            text, kw = rng.choice(texts)
            f.write(json.dumps({"id": f"g{i}", "prompt": "p", "text": text, "keywords": kw,
                                "reference": None}, ensure_ascii=False) + "\n")


def eval_bench(tmp: Path) -> dict:
    progress("eval: score 20,000 generations")
    rows = tmp / "generations.jsonl"
    generations(20_000, rows)
    code = ("import json,sys,time;from eval.score import read_rows,score_rows;rows,_=read_rows(sys.argv[1]);"
            "t=time.perf_counter();score_rows(rows,workers=int(sys.argv[2]) or None);"
            "print(json.dumps({'n':len(rows),'s':time.perf_counter()-t}))")
    # this machine's speed drifts by a third from minute to minute: 3 runs, the median reported
    runs, rss = [], 0
    for workers in (0, 1, 0, 0):  # 0 = one process per core (the default), 1 = a single process
        out, _, r = child([PY, "-c", code, str(rows), str(workers)])
        runs.append((workers, json.loads(out)))
        rss = max(rss, r)
    n = runs[0][1]["n"]
    rates = [round(n / o["s"]) for w, o in runs if w == 0]
    _, wall, rss_cli = child([PY, "-m", "eval", "score", str(rows), "--out", str(tmp / "scores.json")])
    res = {"score": {"texts": n, "texts_per_s": statistics.median(rates), "runs_texts_per_s": rates,
                     "one_process_texts_per_s": round(n / next(o["s"] for w, o in runs if w == 1)),
                     "cli_texts_per_s_incl_startup": round(n / wall), "peak_rss_mb": max(rss, rss_cli)}}
    # generation: eval generate's speed levers against the path before issue #16 (bench/generate.py;
    # `python bench/generate.py --levers all` measures each lever on its own)
    import generate as gen_bench  # bench/ is on sys.path: this file runs as a script

    res["generate"] = gen_bench.bench(*GEN_WORKLOAD, levers="bench", trimmed_levers="key")
    return res


# prompts, samples per prompt, max new tokens: a reduced workload so that make bench stays under
# 12 minutes; every lever on its own and the study's workload: `make bench-generate` (README)
GEN_WORKLOAD = (8, 2, 128)


# --- report ---------------------------------------------------------------------------------------


def machine() -> dict:
    import importlib.metadata as md

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    mem = next((line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")), "0")
    versions = {p: md.version(p) for p in ("torch", "transformers", "trl", "peft", "datasets", "accelerate")}
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(int(mem) / 2**20, 1),
            "avx512": "avx512f" in flags, "bf16_units": "avx512_bf16" in flags or "amx_bf16" in flags,
            "python": platform.python_version(), "platform": platform.platform(), "versions": versions,
            "gpu": None}


def markdown(r: dict) -> str:
    o, lv, d, e = r["overhead"], r["lever"], r["data"], r["eval"]
    s = r["settings"]
    rerun = "".join(f"; re-measured {', '.join(x['parts'])} at {x['at']}" for x in r.get("rerun", []))
    lines = [f"# CPU benchmark {r['date']}{rerun}", "",
             f"{r['machine']['cpu']}, {r['machine']['cores']} cores, {r['machine']['memory_gb']} GB; "
             + ", ".join(f"{k} {v}" for k, v in r["machine"]["versions"].items()), "",
             f"Training jobs: embedded Gemma-3 270M, LoRA r 16 all-linear, shipped style data, {s['steps']} steps, "
             f"batch {s['batch']}, max length {s['max_length']}, {s['reps']} interleaved repetitions (median).", "",
             "`plain TRL` = bench/trl_baseline.py with the same compact CPU scoring (the framework's own cost); "
             "`stock TRL` = the same script with TRL as installed (one run).", "",
             "| job | ours s/step | plain TRL s/step | ratio (target ≤ 1.05) | stock TRL s/step | ours / stock | "
             "peak RSS ours / plain / stock (MB) |",
             "|---|---|---|---|---|---|---|"]
    for m in ("sft", "dpo"):
        x, t = o[m], o[m]["median_seconds_per_step"]
        lines.append(f"| {m.upper()} | {t['ours']:.2f} | {t['plain_trl']:.2f} | {x['ratio_ours_over_plain']:.2f} | "
                     f"{t['stock_trl']:.2f} | {x['ratio_ours_over_stock_trl']:.2f} | "
                     f"{x['peak_rss_mb']['ours']} / {x['peak_rss_mb']['plain_trl']} / {x['peak_rss_mb']['stock_trl']} |")
    lines += ["", "| CPU lever: `model.trim_vocab=true` | s/step | speed-up vs full vocabulary | kept tokens | "
              "output layer share of a step | peak RSS (MB) |", "|---|---|---|---|---|---|"]
    for m in ("sft", "dpo"):
        x = lv[m]
        lines.append(f"| {m.upper()} | {x['seconds_per_step']:.2f} | {x['speedup_over_full_vocab']:.2f}× | "
                     f"{x['kept_tokens']:,} of {x['vocab']:,} | {x['output_layer_share_of_step']:.0%} | {x['peak_rss_mb']} |")
    lines += ["", "| data / eval | rate | target | peak RSS (MB) |", "|---|---|---|---|",
              f"| `data validate` | {d['validate_records_per_s']:,} records/s (best {d['validate_records_per_s_best']:,}) "
              f"| ≥ 50,000 | {d['peak_rss_mb']} |",
              f"| `data.load` | {d['load_records_per_s']:,} records/s | – | {d['peak_rss_mb']} |",
              f"| `eval score` | {e['score']['texts_per_s']:,} texts/s, median of "
              f"{', '.join(f'{x:,}' for x in e['score'].get('runs_texts_per_s', [e['score']['texts_per_s']]))} "
              f"(one process {e['score'].get('one_process_texts_per_s', '–'):,}; "
              f"{e['score']['cli_texts_per_s_incl_startup']:,} incl. process start) | ≥ 5,000 (issue #14) | {e['score']['peak_rss_mb']} |"]
    if "generate" in e:
        import generate as gen_bench

        lines += ["", gen_bench.markdown(e["generate"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--only", nargs="+", choices=["training", "data", "eval"],
                    help="re-measure these parts only, into today's results file (the others are kept, "
                         "and the file says which parts were re-run when)")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from omegaconf import OmegaConf

    from train.config import ModelConfig, structured
    from train.models import build_warmup, convert_gguf

    # one-time preparation, cached for every later run: the GGUF converted to an HF directory, and
    # the generate section's start model (model=gemma3-270m-chat, built from it: ~6 min once)
    prep = time.perf_counter()
    model_dir = str(convert_gguf(structured(ModelConfig, OmegaConf.load(ROOT / "conf" / "model" / "gemma3-270m.yaml"))))
    if "eval" in set(a.only or ["eval"]):
        build_warmup(structured(ModelConfig, OmegaConf.load(ROOT / "conf" / "model" / "gemma3-270m-chat.yaml")))
    prep = round(time.perf_counter() - prep)
    started = time.perf_counter()
    date = dt.date.today().isoformat()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"cpu-{date}"
    parts = set(a.only or ["training", "data", "eval"])
    if a.only:
        if not stem.with_suffix(".json").is_file():
            sys.exit(f"bench: --only needs an existing {stem}.json (run the whole bench first)")
        res = json.loads(stem.with_suffix(".json").read_text())
        res.setdefault("rerun", []).append({"parts": sorted(parts), "at": time.strftime("%Y-%m-%d %H:%M")})
    else:
        res = {"date": date, "machine": machine(),
               "settings": {"reps": a.reps, "steps": a.steps, "batch": a.batch, "max_length": a.max_length}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if "training" in parts:
            res["overhead"] = overhead(a, tmp, model_dir)
            res["lever"] = lever(a, tmp, res["overhead"])
        if "data" in parts:
            res["data"] = data_bench()
        if "eval" in parts:
            res["eval"] = eval_bench(tmp)
    res["seconds" if not a.only else "rerun_seconds"] = round(time.perf_counter() - started)
    res["preparation_seconds"] = prep  # once per machine (cached); not part of "seconds"
    stem.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))
    print(f"bench: {round(time.perf_counter() - started)} s; wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()

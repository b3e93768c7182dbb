"""The generate section of ``make bench``: ``eval generate``'s speed levers against today's path,
side by side in one run, on the study's kind of workload (issue #16).

    python bench/generate.py [--prompts 4] [--samples 4] [--new-tokens 384] [--levers all|bench|key]
                             [--trimmed-levers all|bench|key] [--vocab full|trimmed|both] [--out FILE]

Workload: an SFT LoRA run (2 steps) on the keyword task from the studies' start model,
``model=gemma3-270m-chat`` (the embedded 270M after the warm-up: its answers stop, as the
studies' do; a base model would run every answer to the cap), its held-out prompts × samples, sampled with
Gemma-3's settings (T 1.0, top-k 64, top-p 0.95), up to ``--new-tokens`` tokens, EOS stops.
Every variant is a whole ``python -m eval generate`` in its own process (model load included,
as a user waits for it); tokens are counted up to each answer's own stop token. The same run is
measured with the full vocabulary and with the trimmed one, each against today's path with the
same vocabulary. "Today's path" is the eval before issue #16: transformers' ``generate`` on the
unmerged adapter, batches of 8 in input order.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

from run import PY, ROOT, child, progress  # noqa: E402  (bench/ is on sys.path when run as a script)

SAMPLING = ["generate.do_sample=true", "generate.temperature=1.0", "generate.top_k=64", "generate.top_p=0.95"]
# "today": eval generate before issue #16 (transformers' generate, the adapter unmerged, batches of 8
# in input order). Each lever is one change to today; then the defaults of conf/eval.yaml (every
# exact lever), and the defaults with the approximate one.
TODAY = {"generate.engine": "hf", "generate.merge_adapter": "false", "generate.sort_by_length": "false",
         "generate.batch_size": "8"}
LEVERS = [
    ("today", TODAY),
    ("merged adapter", {**TODAY, "generate.merge_adapter": "true"}),
    ("one sorted batch (64)", {**TODAY, "generate.sort_by_length": "true", "generate.batch_size": "64"}),
    ("finished leave the batch", {**TODAY, "generate.engine": "loop"}),
    ("static cache", {**TODAY, "generate.static_cache": "true"}),
    ("static cache + compile", {**TODAY, "generate.static_cache": "true", "generate.compile": "true"}),
    ("the defaults, 1 thread", {"generate.threads": "1"}),
    ("the defaults (every exact lever)", {}),
    ("the defaults + int8 (approximate)", {"generate.quantize": "int8"}),
]
SETS = {"all": [name for name, _ in LEVERS],
        "bench": ["today", "the defaults (every exact lever)", "the defaults + int8 (approximate)"],
        "key": ["today", "the defaults (every exact lever)"]}


def train_run(tmp: Path, trimmed: bool) -> Path:
    name = "bench-gen-trim" if trimmed else "bench-gen"
    child([PY, "-m", "train", "model=gemma3-270m-chat", "method=sft", "data=keywords", "train.max_steps=2",
           "train.batch_size=2", "train.max_length=256", "train.eval_steps=0", "data.val_fraction=0",
           f"model.trim_vocab={str(trimmed).lower()}", f"out_dir={tmp}", f"name={name}"])
    return tmp / name


def measure(run: Path, workload: list[str], overrides: dict) -> dict:
    args = [f"{k}={v}" for k, v in overrides.items()]
    err, wall, rss = child([PY, "-m", "eval", "generate", f"run={run}", *workload, *args], stderr=True)
    rows = [json.loads(line) for line in (run / "generations.jsonl").read_text(encoding="utf-8").splitlines()]
    tokens = sum(r["new_tokens"] for r in rows)
    decoding = float(re.search(r"in ([0-9.]+) s of decoding", err).group(1))  # eval generate's own log line
    return {"seconds": round(wall, 1), "decoding_seconds": round(decoding, 1), "tokens": tokens,
            "tokens_per_s": round(tokens / wall, 1), "decoding_tokens_per_s": round(tokens / decoding, 1),
            "answers": len(rows), "stopped": sum(r["stopped"] for r in rows), "peak_rss_mb": rss}


def bench(prompts: int, samples: int, new_tokens: int, levers: str = "key", vocabs: tuple = ("full", "trimmed"),
          trimmed_levers: str = "key") -> dict:
    """The levers of ``SETS[levers]`` on the full vocabulary and of ``SETS[trimmed_levers]`` on
    the trimmed one (``vocabs`` picks the vocabularies), each a whole ``eval generate``."""
    workload = [f"limit={prompts}", f"generate.num_samples={samples}", f"generate.max_new_tokens={new_tokens}",
                "seed=0", *SAMPLING]
    out = {"workload": {"prompts": prompts, "samples": samples, "max_new_tokens": new_tokens,
                        "sampling": SAMPLING, "today": TODAY,
                        "levers": {name: overrides for name, overrides in LEVERS}}, "vocabularies": {}}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for vocab in vocabs:
            trimmed = vocab == "trimmed"
            which = trimmed_levers if trimmed else levers
            chosen = [lv for lv in LEVERS if lv[0] in SETS[which]]
            progress(f"generate: training the SFT LoRA run ({vocab} vocabulary)")
            run = train_run(tmp, trimmed)
            res = {}
            for name, overrides in chosen:
                progress(f"generate ({vocab}): {name}")
                res[name] = measure(run, workload, overrides)
            base, dec = res["today"]["seconds"], res["today"]["decoding_seconds"]
            for r in res.values():  # (sampled answers differ between levers: batches draw in another order;
                r["speedup_vs_today"] = round(base / r["seconds"], 2)  # exactness is tested greedy, tests/test_decode.py)
                r["decoding_speedup_vs_today"] = round(dec / r["decoding_seconds"], 2)
            out["vocabularies"][vocab] = res
    return out


def markdown(g: dict) -> str:
    w = g["workload"]
    lines = [f"`eval generate`, {w['prompts']} keyword prompts × {w['samples']} samples, up to {w['max_new_tokens']} "
             "new tokens, sampled (T 1.0, top-k 64, top-p 0.95), on an SFT LoRA run of model=gemma3-270m-chat; whole command "
             "(model load included), one process each:", "",
             "| lever | vocabulary | command s | decoding s | tokens | decoding tokens/s | speed-up vs today "
             "(command / decoding) | answers that stopped | peak RSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for vocab, res in g["vocabularies"].items():
        for name, r in res.items():
            lines.append(f"| {name} | {vocab} | {r['seconds']} | {r['decoding_seconds']} | {r['tokens']} | "
                         f"{r['decoding_tokens_per_s']} | {r['speedup_vs_today']}× / {r['decoding_speedup_vs_today']}× | "
                         f"{r['stopped']}/{r['answers']} | {r['peak_rss_mb']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=384)
    ap.add_argument("--levers", choices=sorted(SETS), default="all")
    ap.add_argument("--trimmed-levers", choices=sorted(SETS), default="key")
    ap.add_argument("--vocab", choices=["full", "trimmed", "both"], default="both")
    ap.add_argument("--out", help="write the JSON here (and a .md beside it)")
    a = ap.parse_args()
    vocabs = ("full", "trimmed") if a.vocab == "both" else (a.vocab,)
    g = bench(a.prompts, a.samples, a.new_tokens, a.levers, vocabs, a.trimmed_levers)
    print(markdown(g))
    if a.out:
        Path(a.out).write_text(json.dumps(g, indent=2) + "\n")
        Path(a.out).with_suffix(".md").write_text(markdown(g))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()

"""``python -m eval study run|report``: a multi-seed study (conf/study/<name>.yaml) and its report.

``run`` trains and evaluates every arm × seed of the plan through the ordinary commands
(``python -m train``, ``python -m eval generate|preference``), skipping arms already done and
scored, so an interrupted study goes on where it stopped. ``report`` pools the per-prompt
figures of every seed of an arm and gives 95% intervals from a two-level bootstrap (seeds,
then prompts within each drawn seed): the interval covers both the prompt sample and the
run-to-run variation, which a single-run bootstrap hides.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# (key in the table, where it comes from, direction, label)
METRICS = [
    ("loop", ("scores", "repetition", "degenerate"), "lower", "degenerate-loop rate"),
    ("seq_rep_4", ("scores", "repetition", "seq_rep_4"), "lower", "seq-rep-4"),
    ("distinct_2", ("scores", "repetition", "distinct_2"), "higher", "distinct-2"),
    ("coverage", ("scores", "keywords", "coverage"), "higher", "keyword coverage"),
    ("all_kw", ("scores", "keywords", "all_present"), "higher", "all 3 keywords"),
    ("chars", ("gen", "chars"), None, "length (chars)"),
    ("pref_acc", ("pref", "correct"), "higher", "held-out preference accuracy"),
    ("nll", ("pref", "nll"), "lower", "held-out NLL (chosen, per token)"),
]


def plan(name: str) -> dict:
    from omegaconf import OmegaConf

    path = ROOT / "conf" / "study" / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"python -m eval study: error: no study plan {path}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def run_dir(p: dict, arm: str, seed: int | None) -> Path:
    return Path(p["runs_dir"]) / ("base-trim" if arm == "base" else f"s004cpu-{arm}-s{seed}")


def _done(d: Path) -> bool:
    from train.rundir import effective_state, state_note

    try:
        status = json.loads((d / "status.json").read_text())
    except (OSError, ValueError):
        return False
    state = effective_state(status)
    if state == "crashed":  # said out loud, never taken for done or running
        print(f"study: {d}: crashed ({state_note(status)})", file=sys.stderr, flush=True)
    return state == "done" and (d / "scores.json").is_file() and (d / "preference.json").is_file()


def _call(args: list[str]) -> None:
    print("+ python " + " ".join(args), flush=True)
    r = subprocess.run([sys.executable, *args], cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"python -m eval study: error: `python {' '.join(args[:3])} ...` exited {r.returncode}")


def cmd_run(a) -> int:
    p = plan(a.plan)
    jobs = [("base", None)] if p.get("base") else []
    for arm in p["arms"]:
        jobs += [(arm, s) for s in p["seeds"]]
    started = time.perf_counter()
    for i, (arm, seed) in enumerate(jobs, 1):
        d = run_dir(p, arm, seed)
        if _done(d):
            print(f"[{i}/{len(jobs)}] {d}: done, skipped", flush=True)
            continue
        print(f"[{i}/{len(jobs)}] {d} ({(time.perf_counter() - started) / 60:.0f} min so far)", flush=True)
        if arm == "base":
            # the base model, as the plan's overrides load it, written where eval puts a base
            # (base-<model>-<data>[-trim]) inside a scratch folder, then moved to its study name
            scratch = d.parent / ".base"
            for cmd in ("generate", "preference"):
                _call(["-m", "eval", cmd, *p["base"], f"out_dir={scratch}", *p["eval"]])
            (made,) = list(scratch.iterdir())
            if d.exists():
                shutil.rmtree(d)
            made.rename(d)
            scratch.rmdir()
            continue
        _call(["-m", "train", "experiment=seed004_cpu", *p["arms"][arm], f"seed={seed}", f"name={d.name}",
               f"out_dir={d.parent}", "overwrite=true"])
        for cmd in ("generate", "preference"):
            _call(["-m", "eval", cmd, f"run={d}", *p["eval"]])
    print(f"study: all {len(jobs)} runs done in {(time.perf_counter() - started) / 60:.0f} min", flush=True)
    return 0


# --- report ----------------------------------------------------------------------------------------


def per_prompt(d: Path) -> dict[str, dict[str, float]]:
    """{prompt id: {metric: value}} for one run."""
    scores = {r["id"]: r for r in json.loads((d / "scores.json").read_text())["rows"]}
    gens = {}
    for line in (d / "generations.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            g = json.loads(line)
            gens[g["id"]] = {"chars": len(g["text"])}
    pref = {r["id"]: r for r in json.loads((d / "preference.json").read_text())["rows"]}
    out = {}
    for pid in scores:
        row = {}
        for key, (src, *path), _, _ in METRICS:
            v = {"scores": scores, "gen": gens, "pref": pref}[src].get(pid)
            for k in path:
                v = v.get(k) if isinstance(v, dict) else None
            if v is not None:
                row[key] = float(v)
        out[pid] = row
    return out


def boot2(per_seed: list[list[float]], n_boot: int = 2000, seed: int = 0) -> dict:
    """Mean over seeds and prompts, and a 95% interval from resampling seeds, then prompts."""
    per_seed = [np.asarray(x, float) for x in per_seed if len(x)]
    if not per_seed:
        return {"value": None, "low": None, "high": None, "seeds": 0, "n": 0}
    rng = np.random.default_rng(seed)
    value = float(np.mean([x.mean() for x in per_seed]))
    means = np.empty(n_boot)
    for b in range(n_boot):
        picks = rng.integers(0, len(per_seed), len(per_seed))
        means[b] = np.mean([per_seed[i][rng.integers(0, per_seed[i].size, per_seed[i].size)].mean() for i in picks])
    return {"value": round(value, 4), "low": round(float(np.quantile(means, 0.025)), 4),
            "high": round(float(np.quantile(means, 0.975)), 4), "seeds": len(per_seed),
            "n": int(sum(x.size for x in per_seed))}


def aggregate(p: dict) -> dict:
    arms = (["base"] if p.get("base") else []) + list(p["arms"])
    table = {}
    for arm in arms:
        dirs = [run_dir(p, arm, None)] if arm == "base" else [run_dir(p, arm, s) for s in p["seeds"]]
        dirs = [d for d in dirs if _done(d)]
        rows = [per_prompt(d) for d in dirs]
        entry = {"runs": [str(d) for d in dirs]}
        for key, *_ in METRICS:
            entry[key] = boot2([[r[key] for r in run.values() if key in r] for run in rows])
        entry["train_loss"] = _train_loss(dirs)
        table[arm] = entry
    return table


def _train_loss(dirs: list[Path]) -> float | None:
    vals = []
    for d in dirs:
        stages = json.loads((d / "status.json").read_text()).get("stages", {})
        vals += [s["train_loss"] for s in stages.values() if s.get("train_loss") is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def fmt(e: dict, pct: bool) -> str:
    if not e or e.get("value") is None:
        return "–"
    f = (lambda v: f"{100 * v:.0f}%") if pct else (lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}")
    return f"{f(e['value'])} [{f(e['low'])}, {f(e['high'])}]"


PCT = {"loop", "all_kw", "pref_acc", "coverage"}


def markdown(p: dict, table: dict, title: str) -> str:
    label = {"base": "base", "sft": "SFT (5 ep)", "dpo": "DPO (2 ep)", "sft_dpo": "SFT→DPO (3+2 ep)",
             "sft-e1": "SFT 1 ep", "sft-e3": "SFT 3 ep", "sft-n16": "SFT, 50% data", "dpo-n16": "DPO, 50% data"}
    lines = [f"# {title}", ""]

    def block(arms: list[str], head: str) -> None:
        arms = [a for a in arms if a in table]
        lines.extend([f"## {head}", "", "| metric | " + " | ".join(label.get(a, a) for a in arms) + " |",
                      "|---" * (len(arms) + 1) + "|"])
        for key, _, direction, name in METRICS:
            arrow = {"lower": " ↓", "higher": " ↑"}.get(direction, "")
            lines.append(f"| {name}{arrow} | " + " | ".join(fmt(table[a][key], key in PCT) for a in arms) + " |")
        lines.append("| runs (seeds) | " + " | ".join(str(len(table[a]["runs"])) for a in arms) + " |")
        lines.append("")

    g = p["groups"]
    block(g["headline"], "Headline: base, SFT, DPO, SFT→DPO")
    block([g["epochs"][k] for k in sorted(g["epochs"])], "SFT epoch sweep (does repetition grow with epochs?)")
    lc = [arm for m in g["learning_curve"].values() for _, arm in sorted(m.items())]
    block(lc, "Learning curve: 50% and 100% of the training pairs")
    return "\n".join(lines)


def cmd_report(a) -> int:
    p = plan(a.plan)
    table = aggregate(p)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"plan": p, "table": table}, indent=1) + "\n", encoding="utf-8")
    md = markdown(p, table, a.title)
    (out / "tables.md").write_text(md, encoding="utf-8")
    print(md)
    print(f"study: wrote {out / 'study.json'} and {out / 'tables.md'}")
    return 0


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval study")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="train + evaluate every arm and seed of the plan (finished ones are skipped)")
    r.add_argument("--plan", default="seed004_cpu")
    r.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="pool seeds and prompts per arm; two-level bootstrap intervals")
    rep.add_argument("--plan", default="seed004_cpu")
    rep.add_argument("--out", default="reports/seed004")
    rep.add_argument("--title", default="Seed 004 study on CPU: embedded Gemma-3 270M, keyword task")
    rep.set_defaults(func=cmd_report)
    a = ap.parse_args(argv)
    return a.func(a)

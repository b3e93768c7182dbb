"""``python -m eval study run|report``: a multi-seed study (conf/study/<name>.yaml) and its report.

``run`` trains and evaluates every arm × seed of the plan through the sweep runner
(eval/sweep.py: ``python -m train -m ... resume=auto``, then ``eval generate|preference``),
skipping arms already done and scored, so an interrupted study goes on where it stopped. ``report`` pools the per-prompt
figures of every seed of an arm (the metrics the plan lists, read through the shared run reader
and directed by the metric registry) and gives 95% intervals from a two-level bootstrap (seeds,
then prompts within each drawn seed): the interval covers both the prompt sample and the
run-to-run variation, which a single-run bootstrap hides. Between the headline arms it gives
paired differences (the same prompts drawn for both arms, seeds resampled as a level).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from .metrics.registry import REGISTRY, direction
from .runs import RunError, load_run, read_json
from .stats import paired_difference

ROOT = Path(__file__).resolve().parents[1]

# when a plan lists no metrics: what seed 004's question turns on
DEFAULT_METRICS = ["repetition.degenerate", "generation.stopped", "generation.echo", "repetition.distinct_2",
                   "keywords.coverage", "keywords.all_present", "generation.new_tokens", "preference.accuracy",
                   "preference.accuracy_per_token", "preference.length_baseline", "preference.heldout_nll"]


# what a plan file must say (the study knows no experiment, run name or arm of its own)
PLAN_KEYS = ("experiment", "run_prefix", "base_name", "runs_dir", "seeds", "arms", "eval")


def plan(name: str) -> dict:
    from omegaconf import OmegaConf

    # a name in conf/study/, or the plan file of a sweep (eval/sweep.py writes <sweep>/plan.yaml)
    path = Path(name) if name.endswith(".yaml") else ROOT / "conf" / "study" / f"{name}.yaml"
    if not path.is_file():
        raise SystemExit(f"python -m eval study: error: no study plan {path}")
    p = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    optional = {"experiment", "run_prefix"} if "dirs" in p else set()  # a sweep's plan names its runs' dirs
    if not p.get("base"):
        optional.add("base_name")
    missing = [k for k in PLAN_KEYS if k not in p and k not in optional]
    if missing:
        raise SystemExit(f"python -m eval study: error: {path}: the plan does not say {', '.join(missing)}")
    return p


def run_dir(p: dict, arm: str, seed: int | None) -> Path:
    if "dirs" in p and arm != "base":  # a sweep's plan lists the directory of every arm and seed
        return Path(p["dirs"][arm][seed])
    return Path(p["runs_dir"]) / (p["base_name"] if arm == "base" else f"{p['run_prefix']}-{arm}-s{seed}")


def _done(d: Path) -> bool:
    from train.rundir import effective_state, state_note

    try:
        status = read_json(d / "status.json")
    except RunError:
        return False
    state = effective_state(status)
    if state == "crashed":  # said out loud, never taken for done or running
        print(f"study: {d}: crashed ({state_note(status)})", file=sys.stderr, flush=True)
    return state == "done" and (d / "scores.json").is_file() and (d / "preference.json").is_file()


def cmd_run(a) -> int:
    """Every arm × seed of the plan through the sweep runner (eval/sweep.py): one multirun per arm
    over the plan's seeds, resume=auto (finished runs are skipped, interrupted ones resume), then
    eval generate + preference on each run not yet scored; the base model evaluated once."""
    from .sweep import evaluate, run_specs, scored

    p = plan(a.plan)
    started = time.perf_counter()
    base = run_dir(p, "base", None) if p.get("base") else None
    if base and _done(base):
        print(f"{base}: done, skipped", flush=True)
    elif base:
        # the base model, as the plan's overrides load it, written where eval puts a base
        # (base-<model>-<data>[-trim]) inside a scratch folder, then moved to its study name
        scratch = base.parent / ".base"
        if evaluate([*p["base"], f"out_dir={scratch}", *p["eval"]]):
            raise SystemExit("python -m eval study: error: the base model's eval failed")
        (made,) = list(scratch.iterdir())
        if base.exists():
            shutil.rmtree(base)
        made.rename(base)
        scratch.rmdir()
    seeds = ",".join(str(s) for s in p["seeds"])
    specs = [[f"experiment={p['experiment']}", *p["arms"][arm], f"seed={seeds}",
              "name=" + run_dir(p, arm, "${seed}").name, f"out_dir={p['runs_dir']}"] for arm in p["arms"]]
    jobs = run_specs(specs, p["eval"])
    missing = [j for j in jobs if not (j.state == "done" and j.evaluated in ("scored", "already scored"))]
    for j in missing:
        print(f"study: {j.run_dir}: {j.state}, {j.evaluated}", file=sys.stderr, flush=True)
    # the plan's checkpoints: each earlier epoch of every finished run, evaluated like the run
    failed = []
    for j in jobs:
        if j.state != "done":
            continue
        for epoch, ckpt in sorted(epoch_checkpoints(Path(j.run_dir), p.get("checkpoints") or []).items()):
            if not scored(ckpt) and evaluate([f"run={ckpt}", *p["eval"]]):
                print(f"study: {ckpt}: epoch {epoch}: eval failed", file=sys.stderr, flush=True)
                failed.append(ckpt)
    print(f"study: {len(jobs) - len(missing)} of {len(jobs)} runs done and scored in "
          f"{(time.perf_counter() - started) / 60:.0f} min", flush=True)
    return 1 if missing or failed else 0


def epoch_checkpoints(run: Path, epochs: list[int]) -> dict[int, Path]:
    """``{epoch: checkpoint}``: the complete checkpoints of the run's last stage (the DPO stage of
    sft_dpo) saved at the end of the whole epochs asked (trainer_state.json's epoch)."""
    import yaml

    from train.config import STAGE_KINDS
    from train.rundir import COMPLETE

    try:
        method = (yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}).get("method") or {}
    except (OSError, yaml.YAMLError):
        return {}
    stages = [s for s in STAGE_KINDS if method.get(s)]
    if not stages or not epochs:
        return {}
    out = {}
    for ckpt in (run / "checkpoints" / stages[-1]).glob("checkpoint-*"):
        if not (ckpt / COMPLETE).is_file():
            continue
        try:
            epoch = float(read_json(ckpt / "trainer_state.json").get("epoch"))
        except (RunError, TypeError, ValueError):
            continue
        if abs(epoch - round(epoch)) < 1e-6 and int(round(epoch)) in epochs:
            out[int(round(epoch))] = ckpt
    return out


# --- report ----------------------------------------------------------------------------------------


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


def _metrics(p: dict) -> list[str]:
    names = p.get("metrics") or DEFAULT_METRICS
    unknown = [m for m in names if m not in REGISTRY]
    if unknown:
        raise SystemExit(f"python -m eval study: error: metrics: {', '.join(unknown)} not registered (eval/metrics)")
    return names


def _arm_runs(p: dict, arm: str) -> list:
    dirs = [run_dir(p, arm, None)] if arm == "base" else [run_dir(p, arm, s) for s in p["seeds"]]
    return [load_run(d) for d in dirs if _done(d)]


def aggregate(p: dict) -> dict:
    """Per arm and metric: the pooled value with its two-level interval; per pair of headline
    arms: the paired difference."""
    arms = (["base"] if p.get("base") else []) + list(p["arms"])
    metrics = _metrics(p)
    per_arm = {arm: _arm_runs(p, arm) for arm in arms}
    table = {}
    for arm, runs in per_arm.items():
        entry = {"runs": [str(r.path) for r in runs]}
        for m in metrics:
            entry[m] = boot2([list(r.per_prompt(m).values()) for r in runs])
        entry["train_loss"] = _train_loss(runs)
        if arm != "base" and p.get("checkpoints"):
            entry["by_epoch"] = _by_epoch(p, arm, metrics)
        table[arm] = entry
    headline = [a for a in (p.get("groups") or {}).get("headline", []) if per_arm.get(a)]
    diffs = {}
    for i, a in enumerate(headline):
        for b in headline[i + 1:]:
            # seed s of two arms trained on the same subset: the seeds pair too (not the lone base run)
            paired = "base" not in (a, b)
            diffs[f"{b} − {a}"] = {m: paired_difference([r.per_prompt(m) for r in per_arm[b]],
                                                        [r.per_prompt(m) for r in per_arm[a]], paired_seeds=paired)
                                   for m in metrics}
    return {"arms": table, "differences": diffs}


def _by_epoch(p: dict, arm: str, metrics: list[str]) -> dict:
    """``{epoch: {metric: pooled}}`` over the seeds' checkpoints of that epoch that were scored."""
    found = [epoch_checkpoints(run_dir(p, arm, s), p["checkpoints"]) for s in p["seeds"]]  # per seed
    out = {}
    for epoch in p["checkpoints"]:
        runs = [load_run(f[epoch]) for f in found if epoch in f and (f[epoch] / "scores.json").is_file()]
        if runs:
            out[epoch] = {m: boot2([list(r.per_prompt(m).values()) for r in runs]) for m in metrics}
    return out


def _train_loss(runs: list) -> float | None:
    vals = [s["train_loss"] for r in runs for s in (r.status.get("stages") or {}).values()
            if s.get("train_loss") is not None]
    return round(float(np.mean(vals)), 4) if vals else None


def fmt(e: dict, pct: bool) -> str:
    if not e or e.get("value") is None:
        return "–"
    f = (lambda v: f"{100 * v:.0f}%") if pct else (lambda v: f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}")
    return f"{f(e['value'])} [{f(e['low'])}, {f(e['high'])}]"


def _pct(metric: str) -> bool:
    return REGISTRY[metric].aggregation == "rate" or metric == "keywords.coverage"


def _arrow(metric: str) -> str:
    return {"lower": " ↓", "higher": " ↑"}.get(direction(metric), "")


def markdown(p: dict, result: dict, title: str) -> str:
    table, labels, metrics = result["arms"], p.get("labels") or {}, _metrics(p)
    lines = [f"# {title}", ""]

    def block(arms: list[str], head: str) -> None:
        arms = [a for a in arms if a in table]
        if not arms:
            return
        lines.extend([f"## {head}", "", "| metric | " + " | ".join(labels.get(a, a) for a in arms) + " |",
                      "|---" * (len(arms) + 1) + "|"])
        for m in metrics:
            lines.append(f"| {m}{_arrow(m)} | " + " | ".join(fmt(table[a][m], _pct(m)) for a in arms) + " |")
        lines.append("| runs (seeds) | " + " | ".join(str(len(table[a]["runs"])) for a in arms) + " |")
        lines.append("")

    g = p.get("groups") or {}
    block(g.get("headline", []), "Headline")
    if g.get("epochs"):
        block([g["epochs"][k] for k in sorted(g["epochs"])], "SFT epoch sweep (does repetition grow with epochs?)")
    if g.get("learning_curve"):
        block([arm for m in g["learning_curve"].values() for _, arm in sorted(m.items())], "Learning curve")
    tracked = [a for a in table if table[a].get("by_epoch")]  # arms with scored checkpoints
    epochs = [(a, e) for a in tracked for e in sorted(table[a]["by_epoch"])]
    if epochs:
        final = p.get("final_epoch", "final")
        lines.extend(["## By epoch (checkpoints of each arm's last stage, seeds pooled)", "",
                      "| metric | " + " | ".join(f"{labels.get(a, a)} @{e}" for a, e in epochs) + " | "
                      + " | ".join(f"{labels.get(a, a)} @{final}" for a in tracked) + " |",
                      "|---" * (len(epochs) + len(tracked) + 1) + "|"])
        for m in metrics:
            cells = [fmt(table[a]["by_epoch"][e][m], _pct(m)) for a, e in epochs]
            cells += [fmt(table[a][m], _pct(m)) for a in tracked]
            lines.append(f"| {m}{_arrow(m)} | " + " | ".join(cells) + " |")
        lines.append("")
    if result["differences"]:
        pairs = list(result["differences"])
        lines.extend(["## Differences between arms (paired over prompts, seeds resampled; * = interval excludes 0)",
                      "", "| metric | " + " | ".join(pairs) + " |", "|---" * (len(pairs) + 1) + "|"])
        for m in metrics:
            cells = []
            for pair in pairs:
                d = result["differences"][pair][m]
                cells.append("–" if d["value"] is None else fmt(d, _pct(m)) + (" *" if d["excludes_zero"] else ""))
            lines.append(f"| {m}{_arrow(m)} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def cmd_report(a) -> int:
    p = plan(a.plan)
    result = aggregate(p)
    if not (a.out or p.get("report_dir")):
        raise SystemExit("python -m eval study: error: report: give --out or the plan's report_dir")
    out = Path(a.out or p["report_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "study.json").write_text(json.dumps({"plan": p, "table": result["arms"],
                                                "differences": result["differences"]}, indent=1) + "\n",
                                    encoding="utf-8")
    md = markdown(p, result, a.title or p.get("title") or f"Study {a.plan}")
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
    rep.add_argument("--out", default=None, help="default: the plan's report_dir")
    rep.add_argument("--title", default=None, help="default: the plan's title")
    rep.set_defaults(func=cmd_report)
    a = ap.parse_args(argv)
    return a.func(a)

"""``python -m eval sweep [--name NAME] [--eval "..."] OVERRIDE...`` (``make sweep``): every job of a
Hydra sweep trained, evaluated, and compared in one report, arms pooled over seeds.

    make sweep SWEEP="method=sft,dpo,sft_dpo seed=0,1,2" ARGS="model=gemma3-270m train.max_steps=50"

1. **Jobs.** The overrides as Hydra's basic sweeper expands them (each comma list or range is a
   dimension); every job's config is composed, checked and named here (``name`` in
   conf/config.yaml: the seed and every override that differs from the default), so a bad config
   fails before any model loads. Runs go to ``<out_dir>/<sweep name>/<run name>``; the sweep's
   name defaults to its swept keys (``method-seed``).
2. **Train.** One ``python -m train -m ... resume=auto``: finished runs are skipped, interrupted
   ones resume, and the launcher is whatever the overrides choose (``hydra/launcher=joblib``,
   ``hydra/launcher=submitit_slurm``; Hydra's basic one by default).
3. **Evaluate.** ``eval generate`` and ``eval preference`` on every finished run that has no
   scores yet, in this process, one after the other (``--eval`` passes their overrides).
4. **Report.** The jobs grouped into arms (a job's swept overrides without its seed), written as a
   study plan (``<sweep>/plan.yaml``), then ``eval study report`` on it: each arm pooled over its
   seeds with two-level intervals and the paired differences between arms (``report/tables.md``,
   ``study.json``); and ``eval report`` of every run side by side (``report/report.html``).

``eval study run`` trains and evaluates its plan through :func:`run_specs` too: a study is a sweep
plus a plan file.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


class SweepError(Exception):
    """A sweep that cannot start (a bad override or config): one line, exit 2."""


@dataclass
class Job:
    overrides: list[str]  # the job's own overrides, as ``python -m train`` gets them
    name: str
    run_dir: Path
    seed: int
    arm: str = ""
    state: str = "not run"  # the training state afterwards (status.json, crashed when its writer is gone)
    evaluated: str = ""  # "", "scored", "already scored" or why not
    swept: list[str] = field(default_factory=list)  # the overrides that vary across the sweep


# --- jobs ----------------------------------------------------------------------------------------

def expand(overrides: list[str]) -> tuple[list[list[str]], list[str]]:
    """(the jobs' override lists, the swept keys), in Hydra's basic sweeper's order."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as e:
        raise SweepError(str(e).splitlines()[0]) from None
    dims, swept = [], []
    for o in parsed:
        if o.is_sweep_override():
            dims.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
            swept.append(o.key_or_group)
        else:
            dims.append([o.input_line])
    return [list(x) for x in itertools.product(*dims)], swept


def compose_jobs(overrides: list[str]) -> list[Job]:
    """Every job of the sweep, composed, checked and named as ``python -m train`` will name it."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.errors import HydraException
    from omegaconf import open_dict

    from train.config import ConfigError, typed

    combos, swept = expand(overrides)
    jobs = []
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        try:
            for combo in combos:
                try:
                    cfg = compose("config", overrides=combo, return_hydra_config=True)
                except HydraException as e:
                    raise SweepError(f"{' '.join(combo)}: {str(e).splitlines()[0]}") from None
                HydraConfig.instance().set_config(cfg)  # what a job of `python -m train -m` sees (run names)
                with open_dict(cfg):
                    del cfg["hydra"]
                try:
                    c = typed(cfg)
                except ConfigError as e:
                    raise SweepError(f"config error: {e} (job: {' '.join(combo)})") from None
                vary = [o for o in combo if o.split("=", 1)[0].lstrip("+~") in swept]
                jobs.append(Job(combo, c.name, Path(c.run_dir), c.seed, swept=vary,
                                arm=" ".join(o for o in vary if o.split("=", 1)[0] != "seed") or c.method.name))
        finally:
            HydraConfig.instance().cfg = None  # no later config of this process takes these overrides
    return jobs


# --- train and evaluate ----------------------------------------------------------------------------

def train(overrides: list[str]) -> int:
    """``python -m train -m OVERRIDES resume=auto``; its exit status (1 when any job failed)."""
    cmd = [sys.executable, "-m", "train", "-m", *[o for o in overrides if not o.startswith("resume=")], "resume=auto"]
    print("+ python " + " ".join(shlex.quote(c) for c in cmd[1:]), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def evaluate(overrides: list[str]) -> int:
    """``eval generate`` then ``eval preference`` with ``overrides`` (``run=DIR ...``, or a base model's
    ``model=... data=... out_dir=...``), in this process; 0, or the first failing exit status.
    In-process because a fresh Python process costs more to start than the eval of a small model."""
    from hydra import compose, initialize_config_dir

    from .cli import run

    print(f"+ python -m eval generate|preference {' '.join(overrides)}", flush=True)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        for command in ("generate", "preference"):
            rc = run(command, compose("eval", overrides=overrides))
            _free_memory()
            if rc:
                return rc
    return 0


def _free_memory() -> None:
    """The model of one eval is gone before the next one loads (a GPU holds one at a time)."""
    gc.collect()
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        sys.modules["torch"].cuda.empty_cache()


def _state(d: Path) -> str:
    from train.rundir import effective_state

    from .runs import RunError, read_json

    try:
        return effective_state(read_json(d / "status.json")) if (d / "status.json").exists() else "not run"
    except RunError:
        return "unreadable status.json"


def scored(d: Path) -> bool:
    return (d / "scores.json").is_file() and (d / "preference.json").is_file()


def run_specs(specs: list[list[str]], eval_args: list[str]) -> list[Job]:
    """Train (one multirun per spec) and evaluate every job; finished and scored runs are skipped."""
    jobs_of = [compose_jobs(spec) for spec in specs]  # every config checked before anything trains
    done = []
    for spec, jobs in zip(specs, jobs_of):
        if not all(_state(j.run_dir) == "done" for j in jobs):
            train(spec)
        for j in jobs:
            j.state = _state(j.run_dir)
            if j.state != "done":
                j.evaluated = "not evaluated (training did not finish)"
            elif scored(j.run_dir):
                j.evaluated = "already scored"
            else:
                rc = evaluate([f"run={j.run_dir}", *eval_args])
                j.evaluated = "scored" if rc == 0 else f"eval failed (exit {rc})"
        done += jobs
    return done


# --- the report ------------------------------------------------------------------------------------

def write_plan(jobs: list[Job], sweep_dir: Path, eval_args: list[str]) -> Path:
    """A study plan (conf/study/*.yaml's keys) for the sweep: the arms, their seeds and run directories."""
    import yaml

    from .metrics.registry import REGISTRY
    from .runs import load_run

    arms: dict[str, list[str]] = {}
    dirs: dict[str, dict[int, str]] = {}
    for j in jobs:
        arms.setdefault(j.arm, [o for o in j.swept if o.split("=", 1)[0] != "seed"])
        dirs.setdefault(j.arm, {})[j.seed] = str(j.run_dir)
    runs = [load_run(j.run_dir) for j in jobs if j.state == "done" and scored(j.run_dir)]
    metrics = [m for m in REGISTRY if any(r.per_prompt(m) for r in runs)]  # the ones this data has
    plan = {"seeds": sorted({j.seed for j in jobs}), "runs_dir": str(sweep_dir), "base": [], "arms": arms,
            "dirs": dirs, "eval": eval_args, "groups": {"headline": list(arms)}, "metrics": metrics}
    path = sweep_dir / "plan.yaml"
    path.write_text("# written by `python -m eval sweep`: its jobs as a study plan (eval study report --plan "
                    f"{path})\n" + yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def report(jobs: list[Job], sweep_dir: Path, eval_args: list[str], title: str) -> int:
    from . import report as runs_report
    from . import study

    finished = [j for j in jobs if j.state == "done" and scored(j.run_dir)]
    if not finished:
        print("sweep: no finished and scored run; no report", file=sys.stderr)
        return 1
    plan = write_plan(jobs, sweep_dir, eval_args)
    out = sweep_dir / "report"
    rc = study.main(["report", "--plan", str(plan), "--out", str(out), "--title", title])
    return rc or runs_report.main([*(str(j.run_dir) for j in finished), "--out", str(out)])


# --- the command -----------------------------------------------------------------------------------

def sweep_dir(overrides: list[str], name: str | None, swept: list[str]) -> Path:
    """``<out_dir>/<name>``: out_dir as the overrides set it (default: conf/config.yaml's)."""
    from hydra import compose, initialize_config_dir

    given = [o.split("=", 1)[1] for o in overrides if o.startswith("out_dir=")]
    if given:
        base = given[-1]
    else:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            base = compose("config").out_dir
    name = name or "-".join(k.replace("/", "_") for k in swept) or "sweep"
    if "/" in name or name in (".", ".."):
        raise SweepError(f"--name {name!r} is not a usable directory name")
    return Path(base) / name


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m eval sweep", description=__doc__.split("\n\n")[0])
    ap.add_argument("overrides", nargs="+", metavar="OVERRIDE",
                    help="python -m train overrides, sweeps included (method=sft,dpo seed=0,1,2 hydra/launcher=joblib)")
    ap.add_argument("--name", help="the sweep's folder under out_dir (default: the swept keys, e.g. method-seed)")
    ap.add_argument("--eval", default="", metavar='"K=V ..."', help="overrides for eval generate / preference")
    a = ap.parse_args(argv)
    eval_args = shlex.split(a.eval)
    try:
        _, swept = expand(a.overrides)
        where = sweep_dir(a.overrides, a.name, swept)
        spec = [o for o in a.overrides if not o.startswith("out_dir=")] + [f"out_dir={where}"]
        jobs = run_specs([spec], eval_args)
    except SweepError as e:
        print(f"python -m eval sweep: error: {e}", file=sys.stderr)
        return 2
    rc = report(jobs, where, eval_args, f"Sweep {where.name}: {' '.join(a.overrides)}")
    width = max(len(j.name) for j in jobs)
    print(f"\nsweep {where}: {len(jobs)} run(s)", flush=True)
    for j in jobs:
        print(f"  {j.name:<{width}}  {j.state}, {j.evaluated}  {j.run_dir}")
    if rc == 0:
        print(f"report: {where / 'report' / 'tables.md'} (arms pooled over seeds), {where / 'report' / 'report.html'}")
    ok = all(j.state == "done" and j.evaluated in ("scored", "already scored") for j in jobs)
    return 0 if ok and rc == 0 else 1

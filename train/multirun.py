"""``python -m train -m ...``: every job of a sweep runs, whatever happens to the others.

A single run exits with its code (0, 1, 2, 130, 143: train/cli.py). In a multirun the task
returns its :class:`~train.cli.Outcome` instead of exiting: ``sys.exit`` inside a Hydra task
ends the whole sweep after the first job. The sweeper (hydra_plugins/sftdpo) hands every
outcome to :func:`summarize`, which prints one line per job and sets the exit status: 0 when
every job ended well, 130/143 when Ctrl-C / SIGTERM stopped the sweep, 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import asdict

log = logging.getLogger("sftdpo")

# One process runs the jobs of the basic launcher one after another: after Ctrl-C or SIGTERM the
# rest of them do not start (the scheduler or the person wants the process to end).
_stopped: dict = {}
_exit: dict = {"code": 0}
_gpu: dict = {}  # joblib: the GPU this worker process holds for its life


def job(cfg):
    """The Hydra task: one run. Exits in a single run; returns the outcome in a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .cli import Outcome, run_job

    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:
        sys.exit(run_job(cfg).rc)
    overrides = " ".join(hc.overrides.task)  # names the job when its config does not even check
    if _stopped:
        return asdict(Outcome(_stopped["rc"], "not started (the sweep was interrupted)", overrides))
    _claim_gpu(hc)
    out = run_job(cfg, catch_all=True)
    if out.name == "?":
        out.name = overrides
    if out.rc in (130, 143):
        _stopped["rc"] = out.rc
    return asdict(out)


def summarize(returns) -> None:
    """One line per job: name, state, run directory; then the exit status of the sweep."""
    from hydra.core.utils import JobStatus

    rows = []
    for r in returns:
        value = r._return_value  # .return_value re-raises a failed job's exception
        if r.status == JobStatus.COMPLETED and isinstance(value, dict):
            rows.append(value)
        else:  # an exception the task did not catch (a launcher or Hydra error)
            rows.append({"rc": 1, "state": f"failed ({type(value).__name__}: {value})", "name": "?", "run_dir": ""})
    bad = [r for r in rows if r["rc"]]
    width = max([len(r["name"]) for r in rows] + [4])
    states = max([len(r["state"]) for r in rows] + [5])
    print(f"\nsweep: {len(rows)} job(s), {len(rows) - len(bad)} ended well, {len(bad)} did not", flush=True)
    for r in rows:
        print(f"  {r['name']:<{width}}  {r['state']:<{states}}  {r['run_dir'] or '-'}", flush=True)
    stop = [r["rc"] for r in bad if r["rc"] in (130, 143)]
    _exit["code"] = stop[0] if stop else 1 if bad else 0


def exit_code() -> int:
    return _exit["code"]


def _claim_gpu(hc) -> None:
    """joblib launcher: pin this worker process to one GPU, for its whole life.

    Hydra's joblib launcher runs jobs in loky worker processes that are reused from job to job,
    and CUDA reads CUDA_VISIBLE_DEVICES once per process, so the GPU belongs to the worker, not
    to the job: the first job of a worker takes a free GPU (a lock file per GPU, held until the
    worker exits) among those in CUDA_VISIBLE_DEVICES (else 0 .. n_jobs-1) and every later job of
    that worker uses it. Neither Hydra nor joblib assigns devices, hence this function."""
    if "joblib" not in str(hc.launcher.get("_target_", "")) or _gpu:
        return
    from filelock import FileLock, Timeout

    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    n_jobs = hc.launcher.get("n_jobs") or 0
    gpus = [g.strip() for g in visible.split(",") if g.strip()] or [str(i) for i in range(max(0, n_jobs))]
    if not gpus:
        return
    for g in gpus:
        lock = FileLock(os.path.join(tempfile.gettempdir(), f"sftdpo-{os.getuid()}-gpu-{g}.lock"), blocking=False)
        try:
            lock.acquire()
        except Timeout:
            continue
        _gpu.update(id=g, lock=lock)
        break
    else:  # more workers than GPUs: share one rather than wait for a worker that never exits
        _gpu["id"] = gpus[os.getpid() % len(gpus)]
        log.warning("joblib: more workers (hydra.launcher.n_jobs) than GPUs (%s); sharing GPU %s",
                    ",".join(gpus), _gpu["id"])
    os.environ["CUDA_VISIBLE_DEVICES"] = _gpu["id"]

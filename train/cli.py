"""Turns every expected failure into one line and an exit code (no traceback):
2 = bad configuration, 1 = bad data / missing model / diverged / run exists / the run directory
is being written by another process / cannot be written (full disk), 130 = Ctrl-C,
143 = SIGTERM (checkpoint saved). :func:`run_job` also says how the job ended, for the summary
of a multirun (train/multirun.py)."""

from __future__ import annotations

import json
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Outcome:
    """How one training job ended: the exit code, a state for people and where it wrote."""

    rc: int
    state: str  # done | stopped | done (skipped) | interrupted | diverged | failed | refused | <kind> error
    name: str = "?"
    run_dir: str = ""


def run_from_hydra(cfg) -> int:
    return run_job(cfg).rc


def run_job(cfg, catch_all: bool = False) -> Outcome:
    """Train one composed config. ``catch_all`` (multirun): an unexpected exception is printed with
    its traceback and ends this job only, as failed, instead of the whole sweep."""
    from data import DataError

    from .config import ConfigError, typed
    from .models import ModelNotFound
    from .preempt import EXIT_SIGTERM
    from .rundir import AlreadyDone, Interrupted, RunExists, RunWriteError, TrainingDiverged

    try:
        config = typed(cfg)  # before any data or model is touched
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return Outcome(2, "config error")
    from .recipes import run

    out = Outcome(1, "failed", config.name, config.run_dir)
    try:
        out.rc = run(config)
        out.state = _state(config.run_dir) or "done"
    except AlreadyDone as e:
        print(f"skipped: {e}", flush=True)
        out.rc, out.state = 0, "done (skipped)"
    except DataError as e:
        print(f"data error: {e}", file=sys.stderr)
        out.state = "data error"
    except ModelNotFound as e:
        print(f"model error: {e}", file=sys.stderr)
        out.state = "model error"
    except RunWriteError as e:
        print(f"error: {e}", file=sys.stderr)
    except RunExists as e:  # includes a run directory locked by another process
        print(f"error: {e}", file=sys.stderr)
        out.state = "refused"
    except TrainingDiverged as e:
        print(f"\ntraining stopped: {e}", file=sys.stderr)
        out.state = "diverged"
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        out.rc, out.state = EXIT_SIGTERM, "interrupted"
    except KeyboardInterrupt:
        print("interrupted; continue with resume=true", file=sys.stderr)
        out.rc, out.state = 130, "interrupted"
    except Exception:
        if not catch_all:
            raise
        traceback.print_exc()
    return out


def _state(run_dir: str) -> str | None:
    try:
        return json.loads((Path(run_dir) / "status.json").read_text(encoding="utf-8")).get("state")
    except (OSError, ValueError):
        return None

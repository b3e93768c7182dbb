"""Turns every expected failure into one line and an exit code (no traceback):
2 = bad configuration, 1 = bad data / missing model / diverged / run exists / the run directory
cannot be written (full disk), 130 = Ctrl-C, 143 = SIGTERM (checkpoint saved)."""

from __future__ import annotations

import sys


def run_from_hydra(cfg) -> int:
    from data import DataError

    from .config import ConfigError, typed
    from .models import ModelNotFound
    from .preempt import EXIT_SIGTERM
    from .rundir import Interrupted, RunExists, RunWriteError, TrainingDiverged

    try:
        config = typed(cfg)  # before any data or model is touched
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    from .recipes import run

    try:
        return run(config)
    except DataError as e:
        print(f"data error: {e}", file=sys.stderr)
    except ModelNotFound as e:
        print(f"model error: {e}", file=sys.stderr)
    except (RunExists, RunWriteError) as e:
        print(f"error: {e}", file=sys.stderr)
    except TrainingDiverged as e:
        print(f"\ntraining stopped: {e}", file=sys.stderr)
    except Interrupted as e:
        print(f"interrupted: {e}", file=sys.stderr)
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        print("interrupted; continue with resume=true", file=sys.stderr)
        return 130
    return 1

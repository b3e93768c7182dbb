"""SIGTERM (a scheduler's preemption, ``kill PID``): finish the step, save a checkpoint, exit 143.

Slurm, Kubernetes and most schedulers send SIGTERM, wait a grace period, then SIGKILL. The
handler only raises a flag; at the next step boundary ``train.rundir.step_control`` makes every
rank agree on it and has the Trainer save a checkpoint and stop. When that does not happen within
``train.sigterm_grace_s`` (a step or a save longer than the grace period), a watchdog records the
state and exits first, so the SIGKILL never finds status.json saying "running".
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

log = logging.getLogger("sftdpo")

EXIT_SIGTERM = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


class Preemption:
    """``with Preemption(grace_s, on_timeout) as p:`` — ``p.requested`` turns true on SIGTERM;
    ``grace_s`` later, unless the block has ended, ``on_timeout()`` runs and the process exits 143."""

    def __init__(self, grace_s: float, on_timeout: Callable[[], None], exit: Callable[[int], None] = os._exit):
        self.grace_s = grace_s
        self.requested = False
        self._on_timeout, self._exit = on_timeout, exit
        self._previous = None
        self._timer: threading.Timer | None = None

    def __enter__(self) -> Preemption:
        # Python lets only the main thread set handlers; elsewhere (a notebook's worker thread)
        # SIGTERM keeps its default action and the run reads as crashed afterwards
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)
            self._previous = None

    def _handle(self, signum, frame) -> None:
        if self.requested:
            return
        self.requested = True
        log.warning("SIGTERM: stopping at the end of this step with a checkpoint (train.sigterm_grace_s=%g)",
                    self.grace_s)
        self._timer = threading.Timer(self.grace_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        try:
            self._on_timeout()
        finally:
            self._exit(EXIT_SIGTERM)


def agree(flag: bool) -> bool:
    """True on every rank when ``flag`` is true on any: SIGTERM may reach one rank only (a
    scheduler that signals one process, ``kill`` by hand), and ranks that stop at different steps
    hang in the next collective. Every rank must call it at the same point; one process: ``flag``."""
    import torch
    from accelerate import PartialState
    from accelerate.utils import reduce

    return bool(reduce(torch.tensor([float(flag)], device=PartialState().device), reduction="max").item())

"""Hydra's basic sweeper plus a summary. Hydra keeps the jobs' return values inside the sweep
(``hydra.main`` returns nothing in multirun mode), and only the sweeper sees them for every
launcher: in-process (basic), worker processes (joblib) or Slurm jobs (submitit)."""

from __future__ import annotations

from typing import Any

# Hydra's default sweeper lives in hydra._internal (stable through Hydra 1.x); extending it keeps
# its sweep syntax and batching exactly as they are
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class JobSummarySweeper(BasicSweeper):
    def sweep(self, arguments: list[str]) -> Any:
        returns = super().sweep(arguments)
        from train.multirun import summarize  # the printing and the exit status live with the task

        summarize([job for batch in returns for job in batch])
        return returns

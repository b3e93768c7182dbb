"""``train.report_to``: the trackers that get the training logs (transformers' integrations), and
where they write. With ``train.report_online=false`` (the default) nothing goes over the network:

* tensorboard: ``<run>/tensorboard/<stage>/`` (always local);
* trackio: its local database (``TRACKIO_DIR``, default ``~/.cache/huggingface/trackio``; view with
  ``trackio show``), never a Space or a server even if ``TRACKIO_SPACE_ID`` / ``TRACKIO_SERVER_URL``
  are set in the environment;
* wandb: offline mode, files under ``<run>/wandb/`` (``wandb sync`` uploads them later);
* mlflow: a file store under ``<run>/mlruns/``.

``train.report_online=true`` hands each tool back its own settings (the environment variables
above, ``WANDB_MODE``, ``MLFLOW_TRACKING_URI``). transformers reads these only from the
environment, so they are set while a stage trains and the user's own values restored afterwards.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

PROJECT = "sftdpo"  # trackio's project (the runs inside it are named <run name>/<stage>)


def trainer_fields(cfg, stage: str) -> dict:
    """The TrainingArguments fields for ``train.report_to``."""
    return {"report_to": list(cfg.train.report_to) or "none", "run_name": f"{cfg.name}/{stage}", "project": PROJECT}


@contextmanager
def environment(cfg, run, stage: str):
    """The trackers' environment while a stage's trainer is built and trained; the user's own
    values come back afterwards."""
    env: dict[str, str | None] = {"TENSORBOARD_LOGGING_DIR": run.tensorboard(stage)}  # no argument for it in transformers 5
    if not cfg.train.report_online:
        env.update(TRACKIO_SPACE_ID=None, TRACKIO_SERVER_URL=None, WANDB_MODE="offline",
                   WANDB_DIR=str(run.path.resolve()), MLFLOW_TRACKING_URI=(run.path / "mlruns").resolve().as_uri())
    before = {key: os.environ.get(key) for key in env}
    try:
        for key, value in env.items():
            _set(key, value)
        yield
    finally:
        for key, value in before.items():
            _set(key, value)


def _set(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value

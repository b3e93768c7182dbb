"""``runs/<name>/``: the contract the eval report reads.

    config.yaml      the fully resolved config          data.json    files, sha256, counts, splits
    metrics.jsonl    one object per logging step         status.json  stages done, step times, world size
    train.log        the log                             tensorboard/ events per stage
    adapter (adapter_model.safetensors + adapter_config.json) or full weights, + tokenizer and
    chat template, so peft / transformers load the directory directly;
    sft/             sft_dpo only: the SFT stage's result;  checkpoints/<stage>/  for resume=true

Only the main process writes here; every process runs the existence checks first, so no rank
races another into "already exists".
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path

from omegaconf import OmegaConf

from .config import Config

log = logging.getLogger("sftdpo")

# the root logger (ours) and the libraries whose warnings matter in a post-mortem
LOGGERS = ("", "transformers", "trl", "peft")
# keys that may differ between a run and its resumption
RESUME_FREE = {"resume", "overwrite", "train.stop_at_step"}


class RunExists(Exception):
    """The run directory exists and neither resume nor overwrite was asked for."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


class RunDir:
    def __init__(self, cfg: Config, is_main: bool):
        self.cfg = cfg
        self.path = Path(cfg.run_dir)
        self.is_main = is_main
        self.status: dict = {"state": "running", "stages": {}}

    # --- opening ------------------------------------------------------------------------------

    def check(self) -> None:
        """Decide fresh / resume / refuse. Runs on every rank before anyone writes."""
        cfg, p = self.cfg, self.path
        exists = p.exists() and any(p.iterdir())
        if not exists:
            if cfg.resume:
                raise RunExists(f"resume: nothing to resume in {p} (start it without resume=true)")
            return
        if cfg.overwrite:
            return
        status = self._read_status()
        if not cfg.resume:
            what = "finished" if status.get("state") == "done" else "stopped before the end"
            raise RunExists(
                f"{p} already exists ({what}); resume=true continues it, overwrite=true replaces it, "
                "name=... starts a new run"
            )
        if status.get("state") == "done":
            raise RunExists(f"resume: {p} is already finished; overwrite=true retrains it, name=... starts a new run")
        old = p / "config.yaml"
        if old.exists():
            before = _flat(OmegaConf.to_container(OmegaConf.load(old)))
            now = _flat(OmegaConf.to_container(OmegaConf.structured(cfg)))
            for key in sorted(set(before) | set(now)):
                if key not in RESUME_FREE and before.get(key) != now.get(key):
                    raise RunExists(
                        f"{key}: {now.get(key)!r} differs from {before.get(key)!r} in {old}; resume with the same "
                        "config, or start a new run with name=..."
                    )
        self.status = status

    def open(self) -> None:
        """Main process: create the directory (replacing it for overwrite) and write config.yaml."""
        if not self.is_main:
            return
        if self.cfg.overwrite and self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(self.cfg)), encoding="utf-8")
        self._log = logging.FileHandler(self.path / "train.log", encoding="utf-8")
        self._log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self._log)
        self.save_status()

    def close(self) -> None:
        if getattr(self, "_log", None) is not None:
            for name in LOGGERS:
                logging.getLogger(name).removeHandler(self._log)
            self._log.close()
            self._log = None

    def _read_status(self) -> dict:
        try:
            return json.loads((self.path / "status.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"state": "unknown", "stages": {}}

    # --- writing ------------------------------------------------------------------------------

    def write_json(self, name: str, obj) -> None:
        if self.is_main:
            (self.path / name).write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")

    def write_jsonl(self, name: str, rows: list[dict]) -> None:
        if self.is_main and rows:
            with open(self.path / name, "w", encoding="utf-8") as f:
                for r in rows:
                    f.write(json.dumps(r, ensure_ascii=False) + "\n")

    def write_vocab(self, keep: list[int], vocab_size: int, files: list[str]) -> None:
        """``vocab.json``: the kept token ids of ``model.trim_vocab`` (eval restricts to the same)."""
        from .trim import write

        self.status["trim_vocab"] = {"kept": len(keep), "of": vocab_size}
        if self.is_main:
            write(self.path / "vocab.json", keep, vocab_size, files)

    def save_status(self) -> None:
        self.write_json("status.json", self.status)

    def stage_done(self, stage: str) -> bool:
        return bool(self.status["stages"].get(stage, {}).get("done"))

    def checkpoints(self, stage: str) -> str:
        return str(self.path / "checkpoints" / stage)

    def tensorboard(self, stage: str) -> str:
        return str(self.path / "tensorboard" / stage)

    def output(self, stage: str, final: bool) -> Path:
        """Where a stage's model goes: the run directory itself for the last stage."""
        return self.path if final else self.path / stage

    def metric(self, row: dict) -> None:
        if self.is_main:
            with open(self.path / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")

    def drop_metrics_after(self, stage: str, step: int) -> None:
        """On resume: forget rows logged after the checkpoint we go back to (they will be redone)."""
        f = self.path / "metrics.jsonl"
        if not self.is_main or not f.exists():
            return
        rows = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = [r for r in rows if not (r.get("stage") == stage and r.get("step", 0) > step)]
        f.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep), encoding="utf-8")


def steady_step_seconds(times: list[float]) -> float | None:
    """The steady-state step: the median optimizer step after the first (which pays for set-up).
    ``bench/run.py`` times the plain TRL script with the same rule."""
    times = sorted(times[1:] if len(times) > 1 else times)
    return round(times[len(times) // 2], 3) if times else None


def metrics_callback(run: RunDir, stage: str):
    """A TrainerCallback that appends every log to metrics.jsonl and stops on a NaN/inf loss."""
    from transformers import TrainerCallback

    class Metrics(TrainerCallback):
        def __init__(self):
            self.step_seconds: list[float] = []  # forward + backward + optimizer, per step (status.json)
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            _synchronize(args)
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            _synchronize(args)
            self.step_seconds.append(time.perf_counter() - self._t)

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            row = {"stage": stage, "step": state.global_step, "epoch": round(state.epoch or 0.0, 4), **logs}
            # strict JSON has no NaN: a non-finite value is written as null
            run.metric({k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()})
            for key in ("loss", "grad_norm", "eval_loss"):
                v = logs.get(key)
                if isinstance(v, (int, float)) and not math.isfinite(v):
                    raise TrainingDiverged(
                        f"{stage}: {key} became {v} at step {state.global_step}; lower lr.{stage}, "
                        "check the data, or use bfloat16 rather than float16"
                    )

    return Metrics()


def _synchronize(args) -> None:
    """Wait for the GPU's queued kernels, so a step's time is the step's (CUDA runs asynchronously:
    without this the clock stops when the last kernel is queued, not when it has run)."""
    if args.device.type == "cuda":
        import torch

        torch.cuda.synchronize(args.device)


def stop_callback(at_step: int):
    """Stop after ``at_step`` optimizer steps with a checkpoint, as an interruption would."""
    from transformers import TrainerCallback

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step >= at_step:
                control.should_save = True
                control.should_training_stop = True

    return StopAt()


def environment() -> dict:
    """Library versions for the provenance of a run (no environment variables: no secrets)."""
    import importlib.metadata as md
    import platform

    out = {"python": platform.python_version()}
    for pkg in ("torch", "transformers", "trl", "peft", "datasets", "accelerate"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    out["git_commit"] = _git_commit()
    return out


def _git_commit() -> str | None:
    import subprocess

    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                           cwd=os.path.dirname(__file__))
        return r.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None

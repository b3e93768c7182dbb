"""``runs/<name>/``: the contract the eval report reads.

    config.yaml      the fully resolved config          data.json    files, sha256, counts, splits
    metrics.jsonl    one object per logging step         status.json  state, stages done, step times,
    train.log        the log                                          world size, the writer's pid + host
    tensorboard/     events per stage
    adapter (adapter_model.safetensors + adapter_config.json) or full weights, + tokenizer and
    chat template, so peft / transformers load the directory directly;
    sft/             sft_dpo only: the SFT stage's result;  checkpoints/<stage>/  for resume=true

Only the main process writes here; every process runs the existence checks first, so no rank
races another into "already exists".

Faults leave an honest directory: config.yaml, data.json and status.json are replaced whole
(temp file + rename), metrics.jsonl grows by whole lines, a checkpoint counts for resuming only
once its ``complete.json`` is there, and a write that fails (full disk, quota, read-only mount)
becomes :class:`RunWriteError`: one line, ``failed`` in status.json, resume=true afterwards.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import shutil
import socket
import threading
import time
from contextlib import contextmanager, suppress
from pathlib import Path

from omegaconf import OmegaConf

from .config import Config
from .naming import RESUME_FREE  # keys that may differ between a run and its resumption

log = logging.getLogger("sftdpo")

# the root logger (ours) and the libraries whose warnings matter in a post-mortem
LOGGERS = ("", "transformers", "trl", "peft")
# Written into checkpoint-N once every rank has saved it. Transformers writes trainer_state.json
# last, but only rank 0 does, while other ranks may still be writing their RNG state or optimizer
# shards, and get_last_checkpoint() takes the highest number whatever is inside. A marker written
# after a barrier is the one rule that covers a kill, a full disk and every rank.
COMPLETE = "complete.json"
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
# the states status.json can hold, and what eval shows for a "running" run (see effective_state)
STATES = ("running", "done", "stopped", "interrupted", "failed", "diverged")


class RunExists(Exception):
    """The run directory exists and neither resume nor overwrite was asked for."""


class AlreadyDone(RunExists):
    """resume=auto found the run finished: nothing to do (exit 0)."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite."""


class Interrupted(Exception):
    """SIGTERM: training stopped at a step boundary with a checkpoint (exit 143)."""


class RunWriteError(Exception):
    """Writing into the run directory failed (a full disk, a quota, a read-only mount)."""

    def __init__(self, path, code: int):
        self.path, self.errno = str(path), code
        advice = "free space" if code in DISK_FULL else "make it writable"
        super().__init__(f"cannot write {path}: {os.strerror(code)} ({free_space(path)} free); "
                         f"{advice} and continue with resume=true")


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
        self.resuming = False  # set by check(): continue from the last complete checkpoints
        self._log: logging.Handler | None = None

    # --- one writer ---------------------------------------------------------------------------

    @contextmanager
    def locked(self):
        """Hold ``<out_dir>/.<name>.lock`` for the whole run (main process only), so that two
        processes never write one run directory: the second one fails at once, touching nothing.
        An OS lock (flock, via filelock): the kernel drops it when its holder dies, so the file a
        killed run leaves behind blocks nothing and resume=true goes on. The lock file names its
        holder (:func:`writer`), for the message the second process prints, and is deleted before
        the lock is released (filelock retries on an inode that was unlinked under it)."""
        if not self.is_main:
            yield
            return
        from filelock import FileLock, Timeout

        path = self.path.with_name(f".{self.path.name}.lock")
        if not path.parent.is_dir():
            with self.writing(path.parent):
                path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(path, blocking=False, on_acquired=_name_holder)
        try:
            lock.acquire()
        except Timeout:
            holder = _read_holder(path)
            raise RunExists(busy(self.path, holder.get("pid", "?"), holder.get("host"))) from None
        try:
            yield
        finally:
            with suppress(OSError):
                path.unlink()
            lock.release()

    # --- opening ------------------------------------------------------------------------------

    def check(self) -> None:
        """Decide fresh / resume / refuse. Runs on every rank before anyone writes."""
        cfg, p = self.cfg, self.path
        exists = p.exists() and any(p.iterdir())
        if not exists:
            if cfg.resume is True:
                raise RunExists(f"resume: nothing to resume in {p} (start it without resume=true)")
            return
        status = self._read_status()
        state = effective_state(status)
        if state == "running":  # two writers would interleave checkpoints and metrics
            raise RunExists(busy(p, status["pid"], status.get("host")))
        if cfg.overwrite:
            return
        if cfg.resume == "auto":
            if state == "done":
                raise AlreadyDone(f"{p} is already finished (resume=auto)")
            if state == "diverged":
                raise RunExists(f"{p} diverged ({status.get('error')}); resume=auto does not retrain it the same way: "
                                "lower the learning rate with a new name=..., or overwrite=true")
        if not cfg.resume:
            what = "finished" if state == "done" else f"stopped before the end: {state}"
            raise RunExists(
                f"{p} already exists ({what}); resume=true continues it, overwrite=true replaces it, "
                "name=... starts a new run"
            )
        if state == "done":
            raise RunExists(f"resume: {p} is already finished; overwrite=true retrains it, name=... starts a new run")
        if state == "running?":
            log.warning("%s: %s; resuming anyway, so make sure it is stopped", p, state_note(status))
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
        self.resuming = True

    def open(self) -> None:
        """Main process: create the directory (replacing it for overwrite) and write config.yaml."""
        # who writes status.json, so a reader can tell a crashed run from a running one
        self.status.update(state="running", **writer())
        self.status.pop("error", None)  # from the attempt this one resumes
        if not self.is_main:
            return
        with self.writing(self.path):
            if self.cfg.overwrite and self.path.exists():
                shutil.rmtree(self.path)
            self.path.mkdir(parents=True, exist_ok=True)
        self.write_text("config.yaml", OmegaConf.to_yaml(OmegaConf.structured(self.cfg)))
        self._log = _LogFile(self.path / "train.log", encoding="utf-8")
        self._log.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in LOGGERS:
            logging.getLogger(name).addHandler(self._log)
        self.save_status()

    def close(self) -> None:
        if self._log is not None:
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

    @contextmanager
    def writing(self, where):
        """Turn a failed write into :class:`RunWriteError`. ``where`` is the path being written,
        or a function naming it at the moment of the failure; when that gives None, only an error
        that says the disk is full counts (against the run directory), anything else goes up as is."""
        try:
            yield
        except RunWriteError:
            raise
        except Exception as e:
            path = where() if callable(where) else where
            code = write_errno(e, path or self.path)
            if code is None or (path is None and code not in DISK_FULL):
                raise
            raise RunWriteError(path or self.path, code) from e

    def write_text(self, name: str, text: str) -> None:
        if self.is_main:
            with self.writing(self.path / name):
                write_atomic(self.path / name, text)

    def write_json(self, name: str, obj) -> None:
        self.write_text(name, json.dumps(obj, ensure_ascii=False, indent=2) + "\n")

    def write_jsonl(self, name: str, rows: list[dict]) -> None:
        if rows:
            self.write_text(name, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))

    def write_vocab(self, keep: list[int], vocab_size: int, files: list[str]) -> None:
        """``vocab.json``: the kept token ids of ``model.trim_vocab`` (eval restricts to the same)."""
        from .trim import write

        self.status["trim_vocab"] = {"kept": len(keep), "of": vocab_size}
        if self.is_main:
            with self.writing(self.path / "vocab.json"):
                write(self.path / "vocab.json", keep, vocab_size, files)

    def save_status(self) -> None:
        self.write_json("status.json", self.status)

    def finish(self, state: str, error: str) -> None:
        """Record how the run ended, when status.json can still be written. When it cannot (the
        disk is still full), the last one stays: 'running' by a writer that is gone reads as crashed."""
        self.status.update(state=state, error=error)
        try:
            self.save_status()
        except (RunWriteError, OSError) as e:
            log.warning("status.json not updated to %r: %s", state, e)

    def discard(self, checkpoint: str | None) -> None:
        """Delete a checkpoint cut off while being written: it can never be resumed from, and on a
        full disk the space it holds is what lets status.json record the failure."""
        if self.is_main and checkpoint and not (Path(checkpoint) / COMPLETE).exists():
            shutil.rmtree(checkpoint, ignore_errors=True)

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
            path = self.path / "metrics.jsonl"
            with self.writing(path):
                append_line(path, json.dumps(row, ensure_ascii=False))

    def drop_metrics_after(self, stage: str, step: int) -> None:
        """On resume: forget rows logged after the checkpoint we go back to (they will be redone),
        and a last line cut off by the kill or the full disk that ended the previous attempt."""
        f = self.path / "metrics.jsonl"
        if not self.is_main or not f.exists():
            return
        keep = [r for r in read_jsonl(f) if not (r.get("stage") == stage and r.get("step", 0) > step)]
        self.write_text("metrics.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))


class _LogFile(logging.FileHandler):
    """train.log. On a full disk its lines cannot be written either, and logging's default prints
    a traceback for each of them; the failed write that matters is reported once, by the caller."""

    broken = False

    def emit(self, record):
        if not self.broken:
            super().emit(record)

    def handleError(self, record):
        self.broken = True


# --- files that survive a kill -----------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` whole: a temp file beside it, then a rename, so a reader or a kill sees the
    old file or the new one, never half of one. By hand: nothing in our stack does this for text."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # the bytes before the rename: a power cut cannot leave an empty file
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def append_line(path: Path, line: str) -> None:
    """Append ``line`` whole or not at all: one write() on an O_APPEND descriptor, and a failed or
    short write (a full disk) is cut back off, so the next line does not glue onto half of this one."""
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        try:
            done = 0
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def read_jsonl(path, warn=None) -> list:
    """The JSON values of a JSON-lines file, blank lines skipped. A last line that has no newline
    and does not parse was cut off by a kill or a full disk: it is dropped, and ``warn`` (default:
    the log) says so. Any other bad line raises ValueError naming its line."""
    *lines, tail = Path(path).read_bytes().split(b"\n")  # tail: after the last newline
    rows = []
    for n, raw in enumerate(lines, 1):
        if raw.strip():
            try:
                rows.append(json.loads(raw))
            except ValueError as e:  # UnicodeDecodeError included
                raise ValueError(f"{Path(path).name} line {n}: {e}") from None
    if tail.strip():
        try:
            rows.append(json.loads(tail))
        except ValueError:
            (warn or log.warning)(f"{path}: line {len(lines) + 1} was cut off mid-write; dropped it")
    return rows


def last_complete_checkpoint(folder: str) -> str | None:
    """The newest checkpoint-N under ``folder`` that holds :data:`COMPLETE`. Newer ones without it
    (cut off by a kill or a full disk) are passed over with a warning, never resumed from."""
    from transformers.trainer_utils import sort_checkpoints

    if not os.path.isdir(folder):
        return None
    for ckpt in reversed(sort_checkpoints(folder)):
        if (Path(ckpt) / COMPLETE).is_file():
            return ckpt
        log.warning("%s was not saved completely; not resuming from it", ckpt)
    return None


def mark_complete(checkpoint: str, step: int) -> None:
    write_atomic(Path(checkpoint) / COMPLETE, json.dumps({"step": step}) + "\n")


# --- write failures ----------------------------------------------------------------------------

# safetensors (Rust) keeps the OS error only in its message: "... No space left on device (os error 28)"
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def write_errno(exc: BaseException, path) -> int | None:
    """The errno behind a failed write, or None when ``exc`` is something else."""
    e, seen = exc, set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno:
            return e.errno
        m = _OS_ERROR.search(str(e))
        if m:
            return int(m.group(1))
        e = e.__cause__ or e.__context__
    # torch.save's zip writer keeps no errno ("unexpected pos 576 vs 534", "file write failed"):
    # a full disk is then told by the space left
    if "inline_container" in str(exc) or "PytorchStreamWriter" in str(exc):
        return errno.ENOSPC if _free_bytes(path) < 1 << 20 else errno.EIO
    return None


def _free_bytes(path) -> int:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return -1


def free_space(path) -> str:
    """The space left on the filesystem of ``path``, for people ("96.0kB")."""
    from tqdm import tqdm

    free = _free_bytes(path)
    return "unknown space" if free < 0 else "0 B" if free == 0 else tqdm.format_sizeof(free, "B", 1024)


# --- whether a run is still alive --------------------------------------------------------------


def busy(path, pid, host=None) -> str:
    """The one line for a run directory that another live process writes."""
    where = "this host" if host in (None, socket.gethostname()) else host
    return (f"{path} is being trained right now by pid {pid} on {where}; wait for it, or stop it "
            f"(kill {pid} saves a checkpoint) and continue with resume=true")


def _name_holder(fd: int) -> None:
    """filelock's on_acquired: write who holds the lock into the lock file."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(writer()) + "\n").encode(), 0)


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # the holder has not written its name yet
        return {}


def writer() -> dict:
    """Who writes status.json: pid, host, and the process's start time, because pids are reused
    (in a container, within minutes) and a pid alone would make a dead run look alive."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "pid_start": _started(os.getpid())}


def _started(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _alive(pid: int, started: float | None) -> bool:
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped by its parent
            return False
        return started is None or abs(p.create_time() - started) < 1
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:  # another user's process: it exists
        return True


def effective_state(status: dict | None) -> str:
    """The state to show for a run: status.json's, except for 'running'. A run whose writer is gone
    (kill -9, the OOM killer, a reboot) is 'crashed'. One written on another host is 'running?':
    this host cannot see that host's processes. A status.json from before the writer was recorded
    (no pid) keeps 'running'. ``{}`` or None (no status.json) is 'unknown'."""
    status = status or {}
    state = status.get("state") or "unknown"
    if state != "running" or "pid" not in status:
        return state
    if status.get("host") != socket.gethostname():
        return "running?"
    return "running" if _alive(status["pid"], status.get("pid_start")) else "crashed"


def state_note(status: dict) -> str:
    """Why :func:`effective_state` differs from status.json's state, for messages ("" if it does not)."""
    state = effective_state(status)
    who = f"pid {status.get('pid')} on {status.get('host')}"
    if state == "crashed":
        return (f"status.json says running, but its writer ({who}) is gone: killed or crashed; "
                "resume=true continues from the last complete checkpoint")
    if state == "running?":
        return f"status.json says running, written by {who}; this host cannot check whether it still is"
    return ""


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


def step_control(run: RunDir, stop_at: int | None, preemption):
    """A TrainerCallback for the step boundary: stop after ``stop_at`` steps (train.stop_at_step)
    or once SIGTERM came (``preemption.requested``), with a checkpoint either way; and mark each
    checkpoint complete once every rank has saved it.

    transformers' own ``enable_jit_checkpoint`` saves on SIGTERM too, but on the rank that got the
    signal alone: under DDP the other ranks go on into the next step's all-reduce and hang. Here
    every rank all-reduces the flag at each step boundary, so all of them stop at the same step."""
    from accelerate import PartialState
    from transformers import TrainerCallback

    from .preempt import agree

    class StepControl(TrainerCallback):
        def __init__(self):
            self.stopped_by: str | None = None  # "SIGTERM" | "train.stop_at_step"
            self.saving: str | None = None  # the checkpoint being written, named if writing it fails
            self.saved: str | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if agree(preemption.requested):
                self.stopped_by = "SIGTERM"
            elif stop_at and state.global_step >= stop_at:
                self.stopped_by = "train.stop_at_step"
            if self.stopped_by:
                control.should_save = control.should_training_stop = True
            if control.should_save:
                self.saving = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
                if run.is_main:  # written again (resuming at that very step): not complete until it is
                    with suppress(FileNotFoundError):
                        os.remove(os.path.join(self.saving, COMPLETE))

        def on_save(self, args, state, control, **kwargs):
            PartialState().wait_for_everyone()  # every rank has written its part of the checkpoint
            if run.is_main:
                with run.writing(self.saving):
                    mark_complete(self.saving, state.global_step)
            self.saved, self.saving = self.saving, None

    return StepControl()


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

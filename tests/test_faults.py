"""Faults in the run directory (issue 21): a full disk, a preemption (SIGTERM), a kill. Each gives
one line, an honest status.json, and a resume=true that ends where an uninterrupted run ends."""

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import RESUMABLE, ROOT, TINY, assert_resumed_like, compose_config, train_tiny

from train import rundir
from train.preempt import Preemption
from train.rundir import RunExists, effective_state, read_jsonl


def status_of(run: Path) -> dict:
    return json.loads((run / "status.json").read_text())


def last_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr[-3000:]
    return stderr.strip().splitlines()[-1]


def wait_for_first_step(metrics: Path, proc, timeout: float = 300) -> None:
    """Until the run has logged a step (training is under way); no tight clock: steps take ~0.5 s."""
    deadline = time.monotonic() + timeout
    while not (metrics.exists() and b"\n" in metrics.read_bytes()):
        assert proc.poll() is None, "the run ended before it logged a step"
        assert time.monotonic() < deadline, "no step logged"
        time.sleep(0.05)


# --- SIGTERM -------------------------------------------------------------------------------------


def test_sigterm_saves_a_checkpoint_exits_143_and_resume_gives_identical_losses(tmp_path, uninterrupted):
    run = tmp_path / "pre"
    with open(tmp_path / "stderr.txt", "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "train", *TINY, f"out_dir={tmp_path}", *RESUMABLE, "name=pre"],
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        try:
            wait_for_first_step(run / "metrics.jsonl", proc)
            proc.send_signal(signal.SIGTERM)  # what Slurm / Kubernetes send before SIGKILL
            assert proc.wait(timeout=300) == 143
        finally:
            proc.kill()
    line = last_line((tmp_path / "stderr.txt").read_text())
    m = re.fullmatch(rf"interrupted: SIGTERM at sft step (\d); checkpoint saved in {run}/checkpoints/sft/checkpoint-(\d); "
                     r"continue with resume=true", line)
    assert m and m[1] == m[2] and 1 < int(m[1]) < 6, line  # at a step boundary after the signal, before the end
    assert (run / "checkpoints" / "sft" / f"checkpoint-{m[1]}" / rundir.COMPLETE).is_file()
    status = status_of(run)
    assert status["state"] == "interrupted" and status["error"] == line.removeprefix("interrupted: ")
    assert effective_state(status) == "interrupted" and not (run / "adapter_model.safetensors").exists()

    # a last line cut off mid-write (a kill inside a write, a power cut) is dropped on resume
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"stage": "sft", "step": 2, "lo')
    train_tiny(tmp_path, *RESUMABLE, "name=pre", "resume=true")
    assert_resumed_like(run, uninterrupted)
    assert status_of(run)["state"] == "done" and "error" not in status_of(run)


def test_sigterm_past_the_grace_period_records_the_state_and_exits_143():
    """A step (or a save) longer than train.sigterm_grace_s: the watchdog records and exits first."""
    ended, exits, before = [], [], signal.getsignal(signal.SIGTERM)
    with Preemption(0.05, on_timeout=lambda: ended.append(True), exit=exits.append) as p:
        assert not p.requested
        os.kill(os.getpid(), signal.SIGTERM)  # a real signal to this process: the handler runs, not the default
        deadline = time.monotonic() + 60
        while not exits and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.requested and ended == [True] and exits == [143]
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


def test_sigterm_grace_is_a_config_key_with_its_default_in_conf():
    from train.config import ConfigError, typed

    assert typed(compose_config(*TINY)).train.sigterm_grace_s == 60
    with pytest.raises(ConfigError, match=r"^train\.sigterm_grace_s: 0\.0 must be > 0"):
        typed(compose_config(*TINY, "train.sigterm_grace_s=0"))


# --- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A disk that fills up while checkpoint-6 is being saved; yields (out_dir, make_room).

    As root: a 700 KB tmpfs (the run, its metrics and checkpoint-3 fit, checkpoint-6 does not),
    so the real errors of safetensors and torch.save come up. Elsewhere mounting is not allowed:
    ENOSPC is raised inside the Trainer's checkpoint save instead, after the weights and the
    optimizer are written."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(disk)]
    if os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0:
        try:
            yield disk, lambda: subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
        finally:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)
        return
    from transformers import Trainer

    save_rng = Trainer._save_rng_state

    def full_at_step_6(self, output_dir):
        if self.state.global_step == 6:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return save_rng(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_rng_state", full_at_step_6)
    yield disk, monkeypatch.undo


def test_a_full_disk_is_one_line_a_failed_status_and_resume_goes_on(full_disk, uninterrupted, capsys):
    from train.cli import run_from_hydra

    disk, make_room = full_disk
    run, ckpts = disk / "full", disk / "full" / "checkpoints" / "sft"
    assert run_from_hydra(compose_config(*TINY, f"out_dir={disk}", *RESUMABLE, "name=full")) == 1
    line = last_line(capsys.readouterr().err)
    assert re.fullmatch(rf"error: cannot write {ckpts}/checkpoint-6: No space left on device \((0 B|[\d.]+[kMG]?B) "
                        r"free\); free space and continue with resume=true", line), line
    status = status_of(run)
    assert status["state"] == "failed" and status["error"] == line.removeprefix("error: ")
    assert (ckpts / "checkpoint-3" / rundir.COMPLETE).is_file()
    assert not (ckpts / "checkpoint-6").exists()  # cut off: deleted (it held the space status.json needed)
    make_room()

    # what kill -9 in the middle of saving checkpoint-6 would leave: files, half an optimizer, no
    # marker, and nobody to delete it; resume must pass it over
    shutil.copytree(ckpts / "checkpoint-3", ckpts / "checkpoint-6")
    (ckpts / "checkpoint-6" / rundir.COMPLETE).unlink()
    opt = ckpts / "checkpoint-6" / "optimizer.pt"
    opt.write_bytes(opt.read_bytes()[: opt.stat().st_size // 2])
    assert rundir.last_complete_checkpoint(str(ckpts)) == str(ckpts / "checkpoint-3")
    train_tiny(disk, *RESUMABLE, "name=full", "resume=true")
    assert_resumed_like(run, uninterrupted)


def test_a_failed_append_leaves_whole_lines_and_says_where(tmp_path, monkeypatch):
    """metrics.jsonl on a full disk: half a line reaches the file, then ENOSPC; it is cut back off."""
    from train.config import typed

    run = rundir.RunDir(typed(compose_config(*TINY, f"out_dir={tmp_path}", "name=m")), is_main=True)
    run.path.mkdir()
    run.metric({"stage": "sft", "step": 1, "loss": 2.0})
    real_write, calls = os.write, []

    def half_then_full(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, data[: len(data) // 2])  # a short write: the disk filled up
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(rundir.RunWriteError, match=rf"^cannot write {run.path}/metrics.jsonl: No space left on device "
                                                   r"\(.+ free\); free space and continue with resume=true$"):
        run.metric({"stage": "sft", "step": 2, "loss": 1.9})
    monkeypatch.undo()
    assert len(calls) == 2  # half the line did reach the file before the error
    run.metric({"stage": "sft", "step": 3, "loss": 1.8})
    assert [r["step"] for r in read_jsonl(run.path / "metrics.jsonl")] == [1, 3]


def test_small_files_are_replaced_whole(tmp_path, monkeypatch):
    """A kill between writing and renaming (here: the rename fails) leaves the old file, no temp file."""
    f = tmp_path / "status.json"
    rundir.write_atomic(f, '{"state": "running"}\n')

    def killed(src, dst):
        raise OSError(errno.EIO, "killed")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(OSError):
        rundir.write_atomic(f, '{"state": "done", "stages": {}}\n')
    assert f.read_text() == '{"state": "running"}\n' and os.listdir(tmp_path) == ["status.json"]


def test_errors_of_the_writers_that_hide_their_errno(tmp_path):
    """safetensors keeps the errno in its message; torch's zip writer keeps none."""
    from safetensors import SafetensorError

    e = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert rundir.write_errno(e, tmp_path) == errno.ENOSPC
    torch_zip = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert rundir.write_errno(torch_zip, tmp_path) == errno.EIO  # this disk has room: not a full disk
    assert rundir.write_errno(ValueError("not a write"), tmp_path) is None


# --- a kill: the run that nobody closed ----------------------------------------------------------


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()  # reaped: the pid no longer exists
    return p.pid


def test_effective_state_tells_crashed_from_running():
    here = socket.gethostname()
    assert effective_state({"state": "running", "pid": os.getpid(), "host": here}) == "running"
    assert effective_state({"state": "running", "pid": dead_pid(), "host": here}) == "crashed"
    assert effective_state({"state": "running", "pid": os.getpid(), "host": "elsewhere"}) == "running?"
    # the same pid, but a process started at another time: the pid was reused, the writer is gone
    assert effective_state({"state": "running", "pid": os.getpid(), "host": here, "pid_start": 1.0}) == "crashed"
    assert effective_state({"state": "running"}) == "running"  # written before pids were recorded
    assert effective_state({"state": "done", "pid": dead_pid(), "host": here}) == "done"
    assert effective_state({}) == "unknown"


def test_a_running_run_is_not_resumed_twice(tmp_path):
    from train.config import typed

    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "status.json").write_text(json.dumps(
        {"state": "running", "stages": {}, **rundir.writer()}))  # this very process is "training" it
    cfg = typed(compose_config(*TINY, f"out_dir={tmp_path}", "name=busy", "resume=true"))
    with pytest.raises(RunExists, match=rf"busy is being trained right now by pid {os.getpid()} on this host"):
        rundir.RunDir(cfg, True).check()


def crashed_run(root: Path, name="sft-crashed", metrics="") -> Path:
    """A run directory as kill -9 leaves it: state running, the writer gone, a torn metrics line."""
    d = root / name
    d.mkdir(parents=True)
    (d / "config.yaml").write_text(f"name: {name}\nmethod: {{name: sft}}\nmodel: {{name: tiny}}\nseed: 0\n")
    (d / "status.json").write_text(json.dumps({"state": "running", "stages": {}, "pid": dead_pid(),
                                               "host": socket.gethostname()}))
    (d / "metrics.jsonl").write_text(metrics)
    return d


def test_the_report_shows_a_crashed_run_as_crashed_and_drops_a_torn_metrics_line(tmp_path, capsys):
    from eval import report

    rows = "".join(json.dumps({"stage": "sft", "step": s, "loss": 2.0 - s / 10}) + "\n" for s in (1, 2))
    d = crashed_run(tmp_path, metrics=rows + '{"stage": "sft", "step": 3, "lo')
    assert report.main([str(d), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: .*metrics\.jsonl: line 3 was cut off mid-write; dropped it", err), err
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| sft-crashed | sft | tiny |" in md and "| crashed |" in md and "| running |" not in md
    assert re.search(r"sft-crashed: training did not finish — state is 'crashed' \(status\.json says running, "
                     r"but its writer \(pid \d+ on .+\) is gone: killed or crashed; resume=true", md), md
    assert [r["step"] for r in report.load_run(d).metrics] == [1, 2]


def test_a_bad_line_that_is_not_the_last_is_still_an_error(tmp_path):
    f = tmp_path / "m.jsonl"
    f.write_text('{"step": 1}\n{"ste\n{"step": 3}\n')
    with pytest.raises(ValueError, match=r"^m\.jsonl line 2:"):
        read_jsonl(f)
    f.write_text('{"step": 1}\n{"ste\n')  # ends with its newline: written whole, and wrong
    with pytest.raises(ValueError, match=r"^m\.jsonl line 2:"):
        read_jsonl(f)


def test_the_study_and_the_eval_never_take_a_crashed_run_for_done(tmp_path, capsys):
    from eval.runs import _from_run
    from eval.study import _done
    from train.config import ConfigError

    d = crashed_run(tmp_path)
    (d / "scores.json").write_text("{}")
    (d / "preference.json").write_text("{}")
    assert not _done(d)
    assert re.search(rf"study: {d}: crashed \(status\.json says running, but its writer", capsys.readouterr().err)
    with pytest.raises(ConfigError, match=r"is not finished \(state 'crashed'; status\.json says running"):
        _from_run(d)

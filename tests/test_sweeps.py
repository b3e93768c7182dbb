"""Sweeps: ``python -m train -m`` runs every job, names them apart, one writer per run
directory, the sweep runner end to end (and ``make sweep`` with the joblib launcher for real,
slow), submitit's Slurm launcher at the config level, and two "machines" on 127.0.0.1 through
conf/accelerate/fsdp_multinode.yaml (slow)."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, read_jsonl

# the tiny model for a few steps; what the sweeps below add to it
FAST = (*TINY, "data=keywords", "data.limit=8", "train.max_steps=2")


def train_multirun(tmp_path, *overrides, timeout=300):
    cmd = [sys.executable, "-m", "train", "-m", *FAST, f"out_dir={tmp_path}", *overrides]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def summary(stdout: str) -> list[list[str]]:
    """The multirun's summary lines (indented, after "sweep: N job(s)"), split into name, state, run directory."""
    rows = []
    for line in stdout[stdout.index("\nsweep: "):].splitlines()[2:]:
        if not line.startswith("  "):
            break
        rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


def test_a_multirun_runs_every_job_and_fails_when_one_failed(tmp_path):
    # job 1 diverges (NaN at step 2), job 2 trains, job 3 is a bad config: every one of them runs
    r = train_multirun(tmp_path, "method.sft.learning_rate=1e30,5e-3,-1")
    assert r.returncode == 1, r.stderr[-3000:]
    rows = summary(r.stdout)
    assert [row[1] for row in rows] == ["diverged", "done", "config error"]
    diverged, done, bad = rows
    assert diverged[0] == "sft-tiny-lora-keywords-limit8-val_fraction0-learning_rate1e+30-batch_size4-eval_steps0-" \
                          "logging_steps1-max_length256-max_steps2-warmup0-s0"
    assert Path(diverged[2]) == tmp_path / diverged[0] and Path(done[2]) == tmp_path / done[0]
    assert (Path(done[2]) / "adapter_model.safetensors").is_file()  # the job after the failure ran
    assert json.loads((Path(diverged[2]) / "status.json").read_text())["state"] == "diverged"
    assert "method.sft.learning_rate=-1" in bad[0] and bad[2] == "-"  # named by its overrides
    assert "config error: method.sft.learning_rate: -1.0 must be > 0" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_names_carry_the_seed_and_every_override_that_differs_from_the_default(tmp_path):
    from eval.sweep import compose_jobs

    jobs = compose_jobs(["model=tiny", "method=dpo", "seed=0,1", "method.dpo.beta=0.1,0.5", "train.max_steps=-1",
                         "lr.dpo=1e-6", "data.train=[data/keywords/train.jsonl]", "resume=true", f"out_dir={tmp_path}"])
    names = [j.name for j in jobs]
    # beta 0.1 and max_steps -1 are the defaults; resume and out_dir do not change what is trained;
    # "dpo" alone would be ambiguous (lr.dpo, method.dpo), a list is hashed, and no "=" or ","
    import hashlib

    files = "data.train_" + hashlib.sha256(b"[data/keywords/train.jsonl]").hexdigest()[:8]
    assert names == [f"dpo-tiny-lora-style-{files}-lr.dpo1e-06-s0", f"dpo-tiny-lora-style-{files}-lr.dpo1e-06-beta0.5-s0",
                     f"dpo-tiny-lora-style-{files}-lr.dpo1e-06-s1", f"dpo-tiny-lora-style-{files}-lr.dpo1e-06-beta0.5-s1"]
    assert [j.run_dir for j in jobs] == [tmp_path / n for n in names]
    assert [j.arm for j in jobs] == ["method.dpo.beta=0.1", "method.dpo.beta=0.5"] * 2
    # a run started by hand gets the name its sweep job gets, so a sweep finds it done
    (alone,) = compose_jobs(["model=tiny", "method=dpo", "seed=1", "method.dpo.beta=0.5", "lr.dpo=1e-6",
                             "data.train=[data/keywords/train.jsonl]", f"out_dir={tmp_path}"])
    assert alone.name == names[3]


def _wait_for(path: Path, proc, what: str, seconds: float = 120):
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, f"no {what}: {proc.stderr.read()[-3000:]}"
        time.sleep(0.05)


def test_one_run_directory_one_writer_and_a_killed_writer_does_not_block_resume(tmp_path):
    """Two real processes on one name: the second fails at once, naming the run and the holder,
    and changes nothing; after kill -9 of the first, resume=true goes on past its stale lock.
    The first is `python -m train`; the second a fork of this test's process running the same
    command's code (train.cli.run_job), which skips the seconds a fresh Python takes to import."""
    import multiprocessing

    from conftest import compose_config, train_tiny

    same = (*FAST, "train.max_steps=400", f"out_dir={tmp_path}", "name=same")
    run, lock, err = tmp_path / "same", tmp_path / ".same.lock", tmp_path / "second.err"
    first = subprocess.Popen([sys.executable, "-m", "train", *same], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)

    def second_writer():
        from train.cli import run_job

        sys.stderr = open(err, "w", encoding="utf-8")
        rc = run_job(compose_config(*same)).rc
        sys.stderr.flush()
        os._exit(rc)

    try:
        _wait_for(run / "data.json", first, "run directory")  # it holds the lock and has opened the run
        kept = {f: (run / f).read_bytes() for f in ("config.yaml", "data.json", "status.json")}
        stamps = {f: (run / f).stat().st_mtime_ns for f in kept}
        second = multiprocessing.get_context("fork").Process(target=second_writer)
        second.start()
        second.join(timeout=60)  # "at once": it stops before any data or model is loaded
        assert second.exitcode == 1 and first.poll() is None  # the first one is still training
        assert err.read_text().strip().splitlines() == [
            f"error: {run} is being trained right now by pid {first.pid} on this host; wait for it, or stop it "
            f"(kill {first.pid} saves a checkpoint) and continue with resume=true"]
        assert {f: (run / f).read_bytes() for f in kept} == kept  # touched nothing
        assert {f: (run / f).stat().st_mtime_ns for f in kept} == stamps
        assert json.loads(lock.read_text())["pid"] == first.pid
        _wait_for(run / "metrics.jsonl", first, "training")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    assert lock.exists() and json.loads((run / "status.json").read_text())["state"] == "running"  # stale
    resumed = train_tiny(tmp_path, "data=keywords", "data.limit=8", "train.max_steps=400", "name=same",
                         "resume=true", "train.stop_at_step=1")
    status = json.loads((resumed / "status.json").read_text())
    assert status["state"] == "stopped" and status["pid"] == os.getpid()
    assert not lock.exists()  # released and removed by the run that held it


def test_a_sweep_trains_evaluates_and_pools_the_seeds_of_each_method(tmp_path, monkeypatch, capsys):
    """What `make sweep` runs (`python -m eval sweep`, here in this process; the training is a real
    `python -m train -m`): 2 methods x 2 seeds of the tiny model trained, then evaluated, then one
    report pooling the seeds of each method with their paired difference; run again, it finds
    everything done and scored and trains nothing."""
    import eval.sweep as runner

    args = ["method=sft,dpo", "seed=0,1", *FAST, f"out_dir={tmp_path}", "--name", "cmp",
            "--eval", "limit=3 generate.max_new_tokens=4"]
    assert runner.main(args) == 0
    out = capsys.readouterr().out
    where = tmp_path / "cmp"
    runs = sorted(p for p in where.iterdir() if p.is_dir() and p.name != "report")
    assert [p.name.split("-")[0] + p.name[-3:] for p in runs] == ["dpo-s0", "dpo-s1", "sft-s0", "sft-s1"]
    assert all(json.loads((p / "status.json").read_text())["state"] == "done" for p in runs)
    for p in runs:
        assert len(read_jsonl(p / "generations.jsonl")) == 3 and (p / "preference.json").is_file()
    study = json.loads((where / "report" / "study.json").read_text())
    assert list(study["table"]) == ["method=sft", "method=dpo"]
    nll = study["table"]["method=dpo"]["preference.heldout_nll"]
    assert nll["seeds"] == 2 and nll["n"] == 6  # 3 prompts x 2 seeds pooled
    assert study["differences"]["method=dpo − method=sft"]["preference.heldout_nll"]["prompts"] == 3
    assert "| preference.heldout_nll ↓ |" in (where / "report" / "tables.md").read_text()
    assert (where / "report" / "report.html").is_file() and (where / "plan.yaml").is_file()
    assert out.count(", scored  ") == 4 and f"report: {where / 'report' / 'tables.md'}" in out

    trained, evaluated = [], []
    monkeypatch.setattr(runner, "train", trained.append)
    monkeypatch.setattr(runner, "evaluate", evaluated.append)
    assert runner.main(args) == 0
    assert trained == evaluated == [] and capsys.readouterr().out.count("done, already scored") == 4


@pytest.mark.slow
def test_make_sweep_with_the_joblib_launcher_runs_two_jobs_at_once_each_on_its_own_gpu(tmp_path):
    """`make sweep` itself, with hydra/launcher=joblib: 2 jobs of the tiny model in 2 worker
    processes, each pinned to one of the GPUs in CUDA_VISIBLE_DEVICES (there is no GPU here: the
    variable is what is checked), then evaluated and reported."""
    sweep = ["make", "-s", "sweep", "SWEEP=method=sft,dpo", "SWEEP_NAME=par", "SWEEP_EVAL=limit=2 generate.max_new_tokens=4",
             "ARGS=" + " ".join([*FAST, f"out_dir={tmp_path}", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"])]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "4,5", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(sweep, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert [row[1] for row in summary(r.stdout)] == ["done", "done"]
    statuses = [json.loads(p.read_text()) for p in sorted((tmp_path / "par").glob("*/status.json"))]
    assert len(statuses) == 2 and {s["cuda_visible_devices"] for s in statuses} == {"4", "5"}
    assert len({s["pid"] for s in statuses}) == 2  # two worker processes
    assert (tmp_path / "par" / "report" / "tables.md").is_file() and r.stdout.count(", scored  ") == 2


def test_the_submitit_slurm_launcher_at_the_config_level(tmp_path, monkeypatch):
    """No Slurm here: the sweep composes with hydra/launcher=submitit_slurm, the launcher plugin
    builds its submitit executor from our config, and the sbatch script says what we asked for."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.plugins import Plugins
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.types import HydraContext

    from eval.sweep import compose_jobs

    srun = tmp_path / "bin" / "srun"  # submitit looks for srun before it builds a Slurm executor
    srun.parent.mkdir()
    srun.write_text("#!/bin/sh\nexit 0\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{srun.parent}:{os.environ['PATH']}")
    slurm = ["hydra/launcher=submitit_slurm", "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=1",
             "hydra.launcher.timeout_min=240", "hydra.launcher.cpus_per_task=8"]
    jobs = compose_jobs([*slurm, "model=tiny", "method=sft,dpo", "seed=0,1", f"out_dir={tmp_path}"])
    assert len({j.name for j in jobs}) == 4

    submitted = {}

    def map_array(executor, fn, *args):
        submitted.update(executor=executor, args=args)
        return [type("Job", (), {"results": lambda self: [JobReturn(status=JobStatus.COMPLETED)]})()
                for _ in args[0]]

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*slurm, "model=tiny", f"out_dir={tmp_path}", "hydra.mode=MULTIRUN"],
                      return_hydra_config=True)
        context = HydraContext(config_loader=GlobalHydra.instance().config_loader(), callbacks=None)
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=lambda c: None,
                                                           config=cfg)
        assert type(launcher).__name__ == "SlurmLauncher"
        assert len(launcher.launch([["method=sft", "seed=0"], ["method=dpo", "seed=0"]], 0)) == 2
    executor = submitted["executor"]
    assert submitted["args"][0] == (["method=sft", "seed=0"], ["method=dpo", "seed=0"])
    assert Path(executor.folder).parent == tmp_path / ".submitit"  # Slurm logs beside the runs
    script = executor._executor._make_submission_file_text("python -u -m submitit.core._submit X", "uid")
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=240",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --signal=USR2@120"):
        assert line in script, script


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_fsdp_multinode_config_as_two_machines_on_one_host(tmp_path):
    """conf/accelerate/fsdp_multinode.yaml as two machines with one process each (machine_rank 0
    and 1, gloo on 127.0.0.1): both ranks agree, and only global rank 0 writes the run directory."""
    port, procs = _free_port(), []
    for rank in (0, 1):
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "conf" / "accelerate" / "fsdp_multinode.yaml"), "--num_machines", "2", "--num_processes", "2",
               "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1", "--main_process_port", str(port),
               "-m", "train", *TINY, "device=cpu", f"out_dir={tmp_path}", "peft=none", "data.limit=8",
               "train.batch_size=2", "train.max_steps=2", "name=two-machines", "method.sft.learning_rate=1e-3"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    lines = [re.findall(r"^rank (\d)/2 sft: (steps=\d+ last_loss=\S+ weights=\w+)$", out, re.M) for out, _ in outs]
    assert [line[0][0] for line in lines] == ["0", "1"] and lines[0][0][1] == lines[1][0][1]  # the ranks agree
    assert [p.name for p in tmp_path.iterdir()] == ["two-machines"]  # one run directory, no lock left
    run = tmp_path / "two-machines"
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "done" and status["world_size"] == 2 and status["stages"]["sft"]["effective_batch"] == 4
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r] == [1, 2]  # written once
    assert (run / "model.safetensors").is_file()


def test_a_sweep_with_a_bad_config_fails_before_anything_trains(tmp_path, capsys):
    from eval.sweep import main

    assert main(["model=tiny", "train.max_length=256,16", f"out_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["python -m eval sweep: error: config error: train.max_length: 16 is too short for a prompt and an "
                   f"answer (>= 32) (job: model=tiny train.max_length=16 out_dir={tmp_path / 'train.max_length'})"]
    assert not any(tmp_path.iterdir())

"""Real 2-process runs on CPU (gloo) through the shipped accelerate configs.

``accelerate launch --cpu --num_processes 2`` starts a single process (its CPU path only
fans out through mpirun); the multi-GPU launcher with ``device=cpu`` starts two real ranks
that join a gloo group. That is the launch the README documents and this test runs."""

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, TINY, read_jsonl

# not anchored at the end: the other rank's progress output can follow on the same line
RANK_LINE = re.compile(r"^rank (\d)/2 (\w+): steps=(\d+) last_loss=(\S+) weights=(\w+)", re.M)


def launch(tmp_path, config: str, *overrides: str):
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "conf" / "accelerate" / config),
           "--num_processes", "2", "-m", "train", *TINY, "device=cpu", f"out_dir={tmp_path}", *overrides]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = {int(m[0]): m[1:] for m in RANK_LINE.findall(r.stdout)}
    assert set(ranks) == {0, 1}, r.stdout[-2000:]  # two real processes
    return ranks


def test_ddp_two_ranks_agree_and_double_the_batch(tmp_path):
    ranks = launch(tmp_path, "ddp.yaml", "data.limit=16", "train.batch_size=2", "train.epochs=1", "name=ddp",
                   "method.sft.learning_rate=5e-3")
    assert ranks[0] == ranks[1]  # same stage, steps, loss and trainable-weight digest
    run = tmp_path / "ddp"
    status = json.loads((run / "status.json").read_text())
    # 16 records, 2 per process per step, 2 processes: 4 steps of 4 (one process would take 8 of 2)
    assert status["world_size"] == 2 and status["stages"]["sft"]["effective_batch"] == 4
    assert status["stages"]["sft"]["steps"] == 4 and ranks[0][1] == "4"
    steps = [r["step"] for r in read_jsonl(run / "metrics.jsonl") if "loss" in r]
    assert steps == [1, 2, 3, 4]  # written once (rank 0), not once per rank
    assert (run / "adapter_model.safetensors").is_file()


def test_fsdp_full_fine_tuning_saves_ordinary_weights(tmp_path):
    ranks = launch(tmp_path, "fsdp.yaml", "peft=none", "data.limit=8", "train.batch_size=2", "train.max_steps=2",
                   "name=fsdp", "method.sft.learning_rate=1e-3")
    assert ranks[0][:3] == ranks[1][:3]
    from conftest import compose_model
    from safetensors.torch import load_file

    from train.models import load_model

    saved = load_file(tmp_path / "fsdp" / "model.safetensors")
    _, base = load_model(compose_model("tiny"))
    full = {k: v.shape for k, v in base.state_dict().items() if k != "lm_head.weight"}  # tied to the embeddings
    assert {k: v.shape for k, v in saved.items()} == full  # whole tensors, not shards
    assert any(not (saved[k] == base.state_dict()[k]).all() for k in saved)  # and trained


@pytest.mark.parametrize("config", ["ddp.yaml", "fsdp.yaml", "fsdp_multinode.yaml"])
def test_shipped_accelerate_configs_parse(config):
    import yaml

    c = yaml.safe_load((ROOT / "conf" / "accelerate" / config).read_text())
    assert c["distributed_type"] in ("MULTI_GPU", "FSDP") and c["num_processes"] >= 2
    if "multinode" in config:
        assert c["num_machines"] == 2 and c["main_process_ip"] and c["main_process_port"]


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step(tmp_path):
    """A scheduler (or a person) may signal one process only: the ranks agree through an
    all-reduce at the step boundary, so both save the same checkpoint and stop together."""
    import signal
    import time

    import psutil

    run = tmp_path / "ddp-term"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "conf" / "accelerate" / "ddp.yaml"),
           "--num_processes", "2", "-m", "train", *TINY, "device=cpu", f"out_dir={tmp_path}", "data.limit=48",
           "train.batch_size=2", "train.max_steps=12", "train.save_steps=100", "name=ddp-term"]
    # stdout apart from stderr: the rank lines must not land behind a progress bar
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        launcher = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
        try:
            deadline = time.monotonic() + 300
            while not ((run / "metrics.jsonl").exists() and b"\n" in (run / "metrics.jsonl").read_bytes()):
                assert launcher.poll() is None and time.monotonic() < deadline, (tmp_path / "err.txt").read_text()[-3000:]
                time.sleep(0.05)
            (rank1,) = [p for p in psutil.Process(launcher.pid).children(recursive=True)
                        if p.environ().get("RANK") == "1"]
            rank1.send_signal(signal.SIGTERM)  # rank 1 only; rank 0 hears of it through the all-reduce
            launcher.wait(timeout=300)
        finally:
            launcher.kill()
    text, err = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    ranks = {int(m[0]): m[1:] for m in RANK_LINE.findall(text)}
    assert set(ranks) == {0, 1}, text[-3000:] + err[-3000:]
    assert ranks[0] == ranks[1] and int(ranks[0][1]) < 12  # same step, loss and weights: stopped together, early
    step = ranks[0][1]
    status = json.loads((run / "status.json").read_text())
    assert status["state"] == "interrupted" and f"SIGTERM at sft step {step};" in status["error"]
    assert (run / "checkpoints" / "sft" / f"checkpoint-{step}" / "complete.json").is_file()
    assert f"interrupted: SIGTERM at sft step {step}; checkpoint saved in" in err

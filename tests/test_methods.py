"""The DPO family and KTO as presets on the tiny model (the loss moves; the first step is what the
loss predicts while the policy equals its reference), the reference each preference stage records
in status.json, and train.report_to."""

import hashlib
import json
import math
import os
import socket
from pathlib import Path

import pytest
from conftest import read_jsonl, train_tiny, write_jsonl

from train import lineage

MOVES = ("data=keywords", "data.limit=8", "train.max_steps=4", "method.dpo.learning_rate=5e-3")


@pytest.fixture(scope="session")
def tiny_on_disk(tmp_path_factory) -> Path:
    """The tiny model saved as a model directory, so a reference has weight files to hash."""
    from conftest import compose_model

    from train.models import load_model

    where = tmp_path_factory.mktemp("tiny-model")
    tok, model = load_model(compose_model("tiny"))
    model.save_pretrained(where)
    tok.save_pretrained(where)
    return where


def first_and_last(run: Path, stage: str) -> tuple[dict, dict]:
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r["stage"] == stage and "loss" in r]
    return rows[0], rows[-1]


@pytest.mark.parametrize("preset,overrides,step0", [
    ("ipo", (), 1 / (4 * 0.1 ** 2)),        # (0 - 1/(2 beta))^2 = 25
    ("sigmoid_norm", (), math.log(2)),
    ("dpo", ("method.dpo.loss_type=[hinge]",), 1.0),  # any TRL loss type, without a preset
    ("dpo_nll", (), None),                  # ln 2 + the NLL of the chosen answers
])
def test_each_dpo_family_preset_trains_from_the_loss_it_predicts(tmp_path, tiny_on_disk, preset, overrides, step0):
    run = train_tiny(tmp_path, f"method={preset}", *MOVES, *overrides, "model.source=hub", f"model.path={tiny_on_disk}")
    first, last = first_and_last(run, "dpo")
    check = json.loads((run / "status.json").read_text())["stages"]["dpo"]["step0"]
    assert check["ok"] and check["loss"] == first["loss"] and abs(first["rewards/margins"]) < 1e-4
    if step0 is not None:
        assert first["loss"] == pytest.approx(step0, rel=1e-3) and check["expected_loss"] == pytest.approx(step0)
    else:  # the NLL term is there: the first loss is the sigmoid's ln 2 plus a positive NLL
        assert first["loss"] > math.log(2) + 1 and check["expected_loss"] is None
    assert last["loss"] < first["loss"]  # it trains


def test_kto_reads_unpaired_rows_and_pairs_and_starts_at_one_half(tmp_path):
    pairs = [{"prompt": f"질문 {i}", "chosen": f"좋은 대답 {i}~ 음음~", "rejected": f"대답 {i}."} for i in range(4)]
    unpaired = [{"prompt": f"물음 {i}", "completion": f"답 {i}", "label": i % 2 == 0} for i in range(4)]
    data = write_jsonl(tmp_path / "mixed.jsonl", pairs + unpaired)
    run = train_tiny(tmp_path, "method=kto", f"data.train=[{data}]", "data.test=[]", "train.max_steps=6",
                     "method.kto.learning_rate=5e-3", "name=kto")
    split = json.loads((run / "data.json").read_text())["stages"]["kto"]["split"]
    assert split["train"] == 4 * 2 + 4  # each pair gives a desirable and an undesirable row
    first, last = first_and_last(run, "kto")
    assert first["loss"] == pytest.approx(0.5, abs=1e-4) and last["loss"] < first["loss"]
    status = json.loads((run / "status.json").read_text())
    assert status["stages"]["kto"]["step0"]["ok"] and status["stages"]["kto"]["reference"]["kind"] == "base"


def test_dpo_and_sft_dpo_record_their_references_and_the_digests_match_the_files(tmp_path, tiny_on_disk):
    model = ("model.source=hub", f"model.path={tiny_on_disk}", "data=keywords", "data.limit=8", "train.max_steps=2")
    dpo = train_tiny(tmp_path, "method=dpo", *model, "name=dpo")
    both = train_tiny(tmp_path, "method=sft_dpo", *model, "name=both", "method.sft.learning_rate=5e-3")
    a = json.loads((dpo / "status.json").read_text())["stages"]["dpo"]["reference"]
    b = json.loads((both / "status.json").read_text())["stages"]["dpo"]["reference"]
    sha = lambda p: hashlib.sha256(Path(p).read_bytes()).hexdigest()  # noqa: E731
    # DPO: the base model, the weights it was read from
    assert a["kind"] == "base" and a["model"] == str(tiny_on_disk) and "sft" not in a
    assert a["model_files"] == {"model.safetensors": sha(tiny_on_disk / "model.safetensors")}
    # SFT->DPO: the SFT stage's adapter on that base, exactly the files in runs/both/sft/
    assert b["kind"] == "sft" and b["sft"] == str(both / "sft") and b["model_files"] == a["model_files"]
    assert b["sft_files"] == {f: sha(both / "sft" / f) for f in ("adapter_config.json", "adapter_model.safetensors")}
    assert a["sha256"] != b["sha256"]
    for run in (dpo, both):
        check = json.loads((run / "status.json").read_text())["stages"]["dpo"]["step0"]
        assert check["ok"] and check["expected_loss"] == pytest.approx(math.log(2))


def test_a_step0_that_is_off_warns_in_the_log_and_in_the_report(tmp_path, caplog):
    from conftest import compose_config

    from train.config import typed

    cfg = typed(compose_config("model=tiny", "method=dpo"))
    rows = [{"stage": "dpo", "step": 1, "loss": 0.9, "rewards/chosen": 0.4, "rewards/rejected": 0.0,
             "rewards/margins": 0.4}, {"stage": "dpo", "step": 2, "loss": 0.5}]
    check = lineage.step0(cfg, "dpo", rows)
    assert not check["ok"] and check["off"] == ("loss 0.9000, expected 0.6931; rewards/chosen 0.4000, expected 0; "
                                                "rewards/margins 0.4000, expected 0")
    near = {**rows[0], "loss": 0.6935, "rewards/chosen": 0.0, "rewards/margins": 0.0}
    assert lineage.step0(cfg, "dpo", [near])["ok"]  # within the tolerance
    # the log: what train_stage writes after the stage
    from train.recipes import _check_step0
    from train.rundir import RunDir

    run = RunDir(cfg, True)
    run.path = tmp_path
    write_jsonl(tmp_path / "metrics.jsonl", rows)
    _check_step0(cfg, run, "dpo")
    assert "the first logged step (step 1) is not what the loss predicts" in caplog.text
    # the report: a warning from status.json
    from eval.report import warnings_for
    from eval.runs import load_run

    (tmp_path / "config.yaml").write_text("name: odd\nmethod: {name: dpo}\n")
    (warning,) = [w for w in warnings_for([load_run(tmp_path)]) if "first logged step" in w]
    assert warning.startswith("odd: in the dpo stage the first logged step (step 1) is not what the loss predicts")


class NoNetwork:
    """Records every attempt to connect anywhere but this machine."""

    def __init__(self, monkeypatch):
        self.attempts = []
        real = socket.socket.connect

        def connect(sock, address):
            host = address[0] if isinstance(address, tuple) else address
            if isinstance(host, str) and host not in ("127.0.0.1", "::1", "localhost") and not host.startswith("/"):
                self.attempts.append(address)
                raise OSError("network access in a test")
            return real(sock, address)

        monkeypatch.setattr(socket.socket, "connect", connect)


def test_report_to_tensorboard_and_trackio_stay_local(tmp_path, monkeypatch):
    import sys

    import trackio  # noqa: F401  (TRL imports it with its trainers; it reads TRACKIO_DIR once, at import)

    for module in [m for name, m in sys.modules.items() if name.startswith("trackio") and hasattr(m, "TRACKIO_DIR")]:
        monkeypatch.setattr(module, "TRACKIO_DIR", tmp_path / "trackio")
    monkeypatch.setenv("TRACKIO_SPACE_ID", "someone/space")  # ignored: train.report_online is false
    net = NoNetwork(monkeypatch)
    run = train_tiny(tmp_path, "train.report_to=[tensorboard,trackio]", "train.max_steps=2", "data.limit=8", "name=tracked")
    assert net.attempts == []
    assert list((run / "tensorboard" / "sft").glob("events.out.tfevents.*"))
    from trackio.sqlite_storage import SQLiteStorage

    assert (tmp_path / "trackio").is_dir() and SQLiteStorage.get_runs("sftdpo") == ["tracked/sft"]
    logs = SQLiteStorage.get_logs("sftdpo", "tracked/sft")
    assert [row["train/loss"] for row in logs if "train/loss" in row] == [r["loss"] for r in read_jsonl(run / "metrics.jsonl")
                                                                         if "loss" in r]
    assert os.environ["TRACKIO_SPACE_ID"] == "someone/space"  # the user's value is back afterwards


def test_report_to_nothing(tmp_path):
    run = train_tiny(tmp_path, "train.report_to=[]", "train.max_steps=1", "data.limit=4")
    assert not (run / "tensorboard").exists() and (run / "metrics.jsonl").is_file()

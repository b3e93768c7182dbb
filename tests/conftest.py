import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every run in the suite, in-process or a CLI subprocess, trains and evaluates on the CPU
# (conf/config.yaml's device reads it), so `make test` behaves the same on a GPU machine.
os.environ["SFTDPO_DEVICE"] = "cpu"
REALDATA = ROOT.parent / "shared" / "realdata"


def run_cli(*args, cwd=ROOT):
    """Run ``python -m ...`` as a user would; returns the CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def write_jsonl(path: Path, records) -> Path:
    """Write records (dicts, or raw str lines written as-is) one per line."""
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return path


@pytest.fixture
def realdata() -> Path:
    if not (REALDATA / "hh-rlhf-harmless-base-test.jsonl.gz").exists():
        pytest.skip(f"real data not found at {REALDATA}")
    return REALDATA


def compose_model(name: str):
    """The shipped conf/model/<name>.yaml as a typed ModelConfig."""
    from omegaconf import OmegaConf

    from train.config import ModelConfig

    merged = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml"))
    return OmegaConf.to_object(merged)


def compose_config(*overrides: str):
    """conf/config.yaml composed by Hydra with ``overrides``, as a DictConfig (not yet checked)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# a few fast steps of the tiny model; tests add what they vary
TINY = ("model=tiny", "device=cpu", "train.batch_size=4", "train.max_length=256", "train.logging_steps=1", "train.warmup=0",
        "train.eval_steps=0", "data.val_fraction=0")


def train_tiny(tmp_path, *overrides: str) -> Path:
    """What ``python -m train`` runs, in-process on the tiny model (errors raise); returns runs/<name>."""
    from train.config import typed
    from train.recipes import run

    cfg = typed(compose_config(*TINY, f"out_dir={tmp_path}", *overrides))
    assert run(cfg) == 0
    return Path(cfg.run_dir)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


# a run that saves a checkpoint at step 3 of 6: interrupted ones resume from there
RESUMABLE = ("data.limit=24", "train.max_steps=6", "train.save_steps=3", "method.sft.learning_rate=5e-3")


@pytest.fixture(scope="session")
def uninterrupted(tmp_path_factory) -> Path:
    """RESUMABLE trained in one go: what every interrupted and resumed run must end up as."""
    return train_tiny(tmp_path_factory.mktemp("uninterrupted"), *RESUMABLE, "name=full")


def losses(run, stage, key="loss"):
    return [r[key] for r in read_jsonl(run / "metrics.jsonl") if r["stage"] == stage and key in r]


def assert_resumed_like(part: Path, full: Path, stage: str = "sft") -> None:
    """A resumed run logged the same losses as the uninterrupted one, no step twice or missing,
    and ended with the same weights."""
    import torch
    from safetensors.torch import load_file

    assert losses(part, stage) == losses(full, stage)
    a, b = load_file(full / "adapter_model.safetensors"), load_file(part / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)

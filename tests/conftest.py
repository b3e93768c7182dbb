import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
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

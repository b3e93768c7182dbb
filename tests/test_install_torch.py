"""scripts/install_torch.py: the pinned torch, the CUDA build the driver runs, and one line when
the result cannot use the GPU (nvidia-smi and pip are stand-ins here: this suite has no GPU)."""

import importlib.util
import subprocess

import pytest
from conftest import ROOT

spec = importlib.util.spec_from_file_location("install_torch", ROOT / "scripts" / "install_torch.py")
it = importlib.util.module_from_spec(spec)
spec.loader.exec_module(it)

SMI = "| NVIDIA-SMI 580.159.03   Driver Version: 580.159.03   CUDA Version: {}     |\n"


def fake_run(monkeypatch, smi: str | None, probe: str = "2.13.0+cu130 13.0 True", pip_rc: int = 0):
    """nvidia-smi prints ``smi`` (None: not installed); the torch probe prints ``probe``."""
    calls = []

    def run(cmd, **kw):
        calls.append(cmd)
        if cmd[0] == "nvidia-smi":
            if smi is None:
                raise FileNotFoundError("nvidia-smi")
            return subprocess.CompletedProcess(cmd, 0, stdout=smi, stderr="")
        if cmd[1:3] == ["-m", "pip"]:
            return subprocess.CompletedProcess(cmd, pip_rc)
        return subprocess.CompletedProcess(cmd, 0, stdout=probe + "\n", stderr="")

    monkeypatch.setattr(it.subprocess, "run", run)
    return calls


def test_the_pin_comes_from_the_constraints_file():
    pin = it.pinned()
    assert pin.startswith("torch==") and pin in (ROOT / "constraints.txt").read_text()


@pytest.mark.parametrize("driver,build", [((13, 0), "cu130"), ((13, 2), "cu130"), ((12, 9), "cu128"),
                                          ((12, 6), "cu126"), ((12, 4), None)])
def test_the_newest_build_the_driver_runs(driver, build):
    assert it.cuda_build(driver) == build


def test_no_gpu_installs_the_pin_as_pip_finds_it(monkeypatch, capsys):
    calls = fake_run(monkeypatch, smi=None)
    assert it.main([]) == 0
    pip = [c for c in calls if c[1:3] == ["-m", "pip"]]
    assert pip == [[it.sys.executable, "-m", "pip", "install", "-q", it.pinned()]]
    assert "no NVIDIA GPU" in capsys.readouterr().out
    assert not [c for c in calls if c[1:2] == ["-c"]]  # nothing to verify on a CPU


def test_a_gpu_gets_the_matching_cuda_build_and_is_verified(monkeypatch, capsys):
    calls = fake_run(monkeypatch, SMI.format("12.8"), probe="2.13.0+cu128 12.8 True")
    assert it.main([]) == 0
    (pip,) = [c for c in calls if c[1:3] == ["-m", "pip"]]
    assert pip[-2:] == ["--index-url", "https://download.pytorch.org/whl/cu128"]
    assert "sees the GPU (CUDA 12.8)" in capsys.readouterr().out


def test_an_unusable_gpu_stops_with_one_line(monkeypatch, capsys):
    fake_run(monkeypatch, SMI.format("13.0"), probe="2.13.0+cu130 13.0 False")
    assert it.main([]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("install: torch 2.13.0+cu130 (CUDA 13.0) is installed but torch.cuda.is_available() is False")


def test_an_old_driver_stops_before_pip(monkeypatch, capsys):
    calls = fake_run(monkeypatch, SMI.format("11.8"))
    assert it.main([]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "driver runs CUDA 11.8, older than every CUDA build" in line
    assert not [c for c in calls if c[1:3] == ["-m", "pip"]]


def test_a_failed_pip_says_so(monkeypatch, capsys):
    fake_run(monkeypatch, smi=None, pip_rc=1)
    assert it.main([]) == 1
    assert capsys.readouterr().err.strip() == f"install: pip could not install {it.pinned()} (its output is above)"

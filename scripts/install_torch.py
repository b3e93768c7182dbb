"""Install the tested torch (its pin in constraints.txt) into this Python, before anything else:

* no NVIDIA GPU answers ``nvidia-smi``: the pinned version as pip finds it (the CPU build where
  it lies on disk or on a CPU index; PyPI's Linux build otherwise, which also runs on a CPU);
* a GPU: the pinned version's CUDA build that suits the driver, from PyTorch's index
  (``nvidia-smi`` prints the newest CUDA the driver runs; a build for that CUDA or an older one
  works). Then torch must see the GPU, or the install stops with one line that says why.

    python scripts/install_torch.py [--build cu128] [--dry-run]

Standard library only: it runs in a bare venv. pip has no notion of a driver, which is why this
is written by hand; a bare ``pip install torch`` takes PyPI's build whatever the driver.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The CUDA builds PyTorch publishes for torch 2.11-2.13 (https://download.pytorch.org/whl/<build>),
# newest first: (the CUDA version a build needs from the driver, build)
CUDA_BUILDS = [((13, 0), "cu130"), ((12, 8), "cu128"), ((12, 6), "cu126")]
INDEX = "https://download.pytorch.org/whl/{}"


class InstallError(Exception):
    """One line for the user: what is wrong and what to do."""


def pinned(name: str = "torch", constraints: Path = ROOT / "constraints.txt") -> str:
    """``name==version`` as constraints.txt pins it."""
    for line in constraints.read_text(encoding="utf-8").splitlines():
        if re.match(rf"{re.escape(name)}\s*==", line.split("#")[0].strip()):
            return line.split("#")[0].strip().replace(" ", "")
    raise InstallError(f"{constraints.name} pins no {name} version")


def driver_cuda() -> tuple[int, int] | None:
    """The CUDA version the NVIDIA driver runs (``nvidia-smi``'s header); None without a GPU."""
    try:
        r = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", r.stdout) if r.returncode == 0 else None
    return (int(m[1]), int(m[2])) if m else None


def cuda_build(version: tuple[int, int]) -> str | None:
    """The newest build the driver runs, or None when it is older than every build."""
    return next((build for needs, build in CUDA_BUILDS if needs <= version), None)


def pip_command(spec: str, cuda: tuple[int, int] | None, build: str | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "pip", "install", "-q", spec]
    if cuda is None and build is None:
        return cmd
    build = build or cuda_build(cuda)
    if build is None:
        raise InstallError(
            f"the NVIDIA driver runs CUDA {cuda[0]}.{cuda[1]}, older than every CUDA build of {spec} "
            f"({', '.join(b for _, b in CUDA_BUILDS)}): update the driver, or pass a build with "
            "TORCH_BUILD=cuXXX to make install")
    return cmd + ["--index-url", INDEX.format(build)]


def check_cuda(spec: str, cuda: tuple[int, int] | None) -> str:
    """What the installed torch reports; raises when it cannot use the GPU the driver shows."""
    probe = "import torch; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())"
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    if r.returncode:
        last = (r.stderr.strip().splitlines() or ["?"])[-1]
        raise InstallError(f"{spec} is installed but does not import: {last}")
    version, built_for, available = r.stdout.split()
    if available != "True":
        driver = f"{cuda[0]}.{cuda[1]}" if cuda else "?"
        raise InstallError(
            f"torch {version} (CUDA {built_for}) is installed but torch.cuda.is_available() is False although "
            f"nvidia-smi shows a GPU (driver CUDA {driver}); check CUDA_VISIBLE_DEVICES, or that the driver runs "
            f"CUDA {built_for}")
    return f"torch {version} sees the GPU (CUDA {built_for})"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", help="a CUDA build (cu126, cu128, cu130) instead of the one chosen for the driver")
    ap.add_argument("--dry-run", action="store_true", help="print the pip command only")
    a = ap.parse_args(argv)
    try:
        spec = pinned()
        cuda = driver_cuda()
        cmd = pip_command(spec, cuda, a.build or None)
        where = f"driver CUDA {cuda[0]}.{cuda[1]}, {cmd[-1].rsplit('/', 1)[-1]} build" if "--index-url" in cmd \
            else "no NVIDIA GPU"
        print(f"install: {spec} ({where})", flush=True)
        if a.dry_run:
            print(" ".join(cmd))
            return 0
        if subprocess.run(cmd).returncode:
            raise InstallError(f"pip could not install {spec} (its output is above)")
        if cuda is not None:
            print(f"install: {check_cuda(spec, cuda)}")
    except InstallError as e:
        print(f"install: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

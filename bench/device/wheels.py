"""make wheels: the packages the lent GPU machine lacks (wheels.txt beside this file), at the
tested versions of constraints.txt, as wheels for its Python 3.12 on x86-64 Linux, into one
directory that travels with the command (the device tool's ``carry``; 64 MiB with the repo).

    python bench/device/wheels.py [--out .whl] [--limit-mib 60]

pip downloads them without their dependencies (the machine has those, or they are in the list).
antlr4-python3-runtime 4.9.3 (Hydra's parser) has no wheel on PyPI: pip builds it here, which is
pure Python. bitsandbytes (~41 MiB, QLoRA only) joins only while the set stays within the limit.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
# the GPU machine's interpreter (the device tool's notes name these platform tags)
TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
          *[x for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
                          "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64")
            for x in ("--platform", tag)]]
SDIST_ONLY = {"antlr4-python3-runtime"}
OPTIONAL = "bitsandbytes"


def names() -> list[str]:
    lines = (HERE / "wheels.txt").read_text(encoding="utf-8").splitlines()
    return [x.split("#")[0].strip() for x in lines if x.split("#")[0].strip()]


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", *args, "-q", "--no-deps", "-c", str(ROOT / "constraints.txt")],
                   check=True)


def mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.glob("*.whl")) / 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / ".whl"))
    ap.add_argument("--limit-mib", type=float, default=60)
    a = ap.parse_args(argv)
    out = Path(a.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    wanted = names()
    pip("download", *TARGET, "-d", str(out), *[n for n in wanted if n not in SDIST_ONLY])
    for n in SDIST_ONLY & set(wanted):
        pip("wheel", "-w", str(out), n)
    if mib(out) > a.limit_mib and OPTIONAL in wanted:
        for f in out.glob(f"{OPTIONAL}-*.whl"):
            f.unlink()
        print(f"wheels: {OPTIONAL} left out: the set would pass {a.limit_mib:g} MiB (QLoRA will be skipped)")
    for f in sorted(out.glob("*.whl")):
        print(f"wheels: {f.name} {f.stat().st_size / 2**20:.1f} MiB")
    total = mib(out)
    print(f"wheels: {len(list(out.glob('*.whl')))} wheels, {total:.1f} MiB in {out}")
    if total > a.limit_mib:
        print(f"wheels: {total:.1f} MiB is over the {a.limit_mib:g} MiB limit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

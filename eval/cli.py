"""The Hydra side of ``python -m eval``: one line and an exit code for expected failures."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra

CONF = str(Path(__file__).resolve().parents[1] / "conf")


def hydra_main(command: str) -> int:
    result = {}

    @hydra.main(version_base="1.3", config_path=CONF, config_name="eval")
    def _main(cfg) -> None:
        result["rc"] = run(command, cfg)

    _main()
    return result.get("rc", 1)


def run(command: str, cfg) -> int:
    from train.config import ConfigError
    from train.models import ModelNotFound

    from .config import typed

    try:
        config = typed(cfg)
        if command == "generate":
            from .generate import generate

            generate(config)
        else:
            from .preference import preference

            preference(config)
        return 0
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except (ModelNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

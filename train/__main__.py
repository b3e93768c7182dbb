"""``python -m train [overrides]`` — the Hydra entry point and nothing else."""

import sys

import hydra


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg) -> None:
    from .cli import run_from_hydra

    sys.exit(run_from_hydra(cfg))


if __name__ == "__main__":
    main()

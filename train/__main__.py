"""``python -m train [overrides]`` and ``python -m train -m [sweeps]`` — the Hydra entry point and nothing else."""

import sys

import hydra


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg):
    # absolute import: joblib's workers unpickle this function by value (it lives in __main__)
    from train.multirun import job

    return job(cfg)  # a single run exits here with its code; a multirun job returns its outcome


if __name__ == "__main__":
    main()
    from train.multirun import exit_code

    sys.exit(exit_code())  # multirun: every job has run and the sweeper has printed its line

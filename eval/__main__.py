"""``python -m eval generate|preference [overrides]`` (Hydra, conf/eval.yaml),
``python -m eval score INPUT.jsonl [--out OUT.json]``, ``python -m eval report RUN_DIR... --out DIR``,
``python -m eval study run|report [--plan NAME]`` (a multi-seed study, conf/study/NAME.yaml),
``python -m eval check [--split heldout|tune|all]`` (the metrics against the labelled sets),
``python -m eval sweep OVERRIDE...`` (train, evaluate and compare every job of a sweep)."""

import sys

USAGE = ("usage: python -m eval {generate,preference} [key=value ...] | score INPUT.jsonl [--out OUT] | "
         "report RUN_DIR... --out DIR | study run|report | check [--split heldout|tune|all] | sweep OVERRIDE...")


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("generate", "preference", "score", "report", "study", "check", "sweep"):
        print(USAGE, file=sys.stderr)
        return 2
    command, rest = sys.argv[1], sys.argv[2:]
    if command == "score":
        from .score import main as score

        return score(rest)
    if command == "study":
        from .study import main as study

        return study(rest)
    if command == "check":
        from .check import main as check

        return check(rest)
    if command == "sweep":
        from .sweep import main as sweep

        return sweep(rest)
    if command == "report":
        from .report import main as report

        return report(rest)
    sys.argv = [f"{sys.argv[0]} {command}", *rest]  # Hydra parses the overrides
    from .cli import hydra_main

    return hydra_main(command)


if __name__ == "__main__":
    sys.exit(main())

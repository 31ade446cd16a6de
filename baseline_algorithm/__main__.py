"""``python -m baseline_algorithm <command>``: dispatches to the subcommand modules."""

from __future__ import annotations

import argparse
import sys

from baseline_algorithm import predict, reproduce, train
from baseline_algorithm.checkpoint import CheckpointError
from baseline_algorithm.data import stats_command, synthesize
from baseline_algorithm.data.pairs import DataError

# Each module registers its subcommand with add_parser(subparsers); the parser sets ``run``.
SUBCOMMANDS = [synthesize, stats_command, train, reproduce, predict]
# Errors that are the user's input, not a bug: reported as one line, without a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (DataError, CheckpointError, train.TrainingError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baseline_algorithm", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

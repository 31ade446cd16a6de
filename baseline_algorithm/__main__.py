"""``python -m baseline_algorithm <command>``: dispatches to the subcommand modules."""

from __future__ import annotations

import argparse
import importlib
import sys

from baseline_algorithm import predict
from baseline_algorithm.checkpoint import CheckpointError
from baseline_algorithm.data import stats_command, synthesize
from baseline_algorithm.data.pairs import DataError
from evaluation.errors import OcelotError

# Each module registers its subcommand with add_parser(subparsers); the parser sets ``run``.
SUBCOMMANDS = [synthesize, stats_command, predict]
# Commands in the CLI convention of evaluation.cli (HELP, add_arguments, run).
COMMANDS = {
    "train": "baseline_algorithm.commands.train",
    "reproduce": "baseline_algorithm.commands.reproduce",
}
# Errors that are the user's input, not a bug: reported as one line, without a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (OcelotError, DataError, CheckpointError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m baseline_algorithm", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in SUBCOMMANDS:
        module.add_parser(subparsers)
    for name, path in COMMANDS.items():
        module = importlib.import_module(path)
        command = subparsers.add_parser(
            name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP)
        )
        module.add_arguments(command)
        command.set_defaults(run=module.run)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

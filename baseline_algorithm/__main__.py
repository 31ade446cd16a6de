"""``python -m baseline_algorithm <command>``: dispatches to the subcommand modules."""

from __future__ import annotations

import argparse
import sys

from evaluation.cli import run_command

#: Commands in the convention of evaluation.cli (HELP, add_arguments, run), imported only when
#: they run: ``predict`` must start in an image without PyTorch.
ALGORITHM_COMMANDS = {
    "predict": (
        "baseline_algorithm.commands.predict",
        "detect and classify cells in a Grand Challenge input folder (the container entry)",
    ),
    "preflight": (
        "baseline_algorithm.commands.preflight",
        "run an algorithm image as the platform does and check what it writes",
    ),
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ALGORITHM_COMMANDS:
        return run_command("python -m baseline_algorithm", ALGORITHM_COMMANDS, argv)
    return legacy_main(argv)


def legacy_main(argv: list[str]) -> int:
    from baseline_algorithm import reproduce, train
    from baseline_algorithm.checkpoint import CheckpointError
    from baseline_algorithm.data import stats_command, synthesize
    from baseline_algorithm.data.pairs import DataError

    # Each module registers its subcommand with add_parser(subparsers); the parser sets ``run``.
    subcommands = [synthesize, stats_command, train, reproduce]
    # Errors that are the user's input, not a bug: reported as one line, without a traceback.
    user_errors = (DataError, CheckpointError, train.TrainingError)
    parser = argparse.ArgumentParser(
        prog="python -m baseline_algorithm",
        description=__doc__,
        epilog="also: "
        + ", ".join(f"{name} ({help_line})" for name, (_, help_line) in ALGORITHM_COMMANDS.items()),
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in subcommands:
        module.add_parser(subparsers)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except user_errors as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""``python -m evaluation <command>``: a thin dispatcher; each command lives in its own module.

A command module exposes ``add_parser(subparsers)``, which registers its arguments and sets
``run(args) -> int`` as the parser default.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from evaluation.formats import run_reporting_input_errors

COMMANDS = (
    "evaluation.score_command",
    "evaluation.convert_gt_command",
    "evaluation.report_command",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation", description="OCELOT 2023 scorer and tools."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input ends with one ``error:`` line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    return run_reporting_input_errors(lambda: args.run(args))


if __name__ == "__main__":
    sys.exit(main())

"""The command-line tree: one convention for every command of ``ocelot`` and ``python -m``.

A command is a module with two names:

``add_arguments(parser)``
    Declares its options on an ``argparse.ArgumentParser``.
``run(args) -> int``
    Does the work and returns the exit status.

A table maps each command name to its module's dotted path, its help line (the one line in the
list of commands) and the extra it needs (None: the base install). Only the module of the
command that runs is imported, so ``ocelot score`` never pays for torch, matplotlib or scipy's
optimiser. Every command runs under
:func:`evaluation.errors.run_reporting_errors`: bad input ends with one ``error:`` line on stderr
and exit status 2, and so does a command run without its extra (``--help`` included), with the
line naming the extra to install.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from evaluation.errors import MissingExtraError, run_reporting_errors
from evaluation.limits import limits_from_environment, limits_in_force

__all__ = ["EVALUATION_COMMANDS", "Command", "main", "run_command", "run_module"]

#: The distribution whose extras are named in messages.
DISTRIBUTION = "ocelot-toolkit"
#: Top-level packages of this distribution: a missing one is a bug, not a missing extra.
OWN_PACKAGES = ("evaluation", "baseline_algorithm")


class Command(NamedTuple):
    """One row of a command table."""

    module: str
    help: str
    extra: str | None = None


#: Commands that need only the scorer's dependencies (and the extras they name).
EVALUATION_COMMANDS = {
    "score": Command("evaluation.commands.score", "score predictions with the OCELOT 2023 rule"),
    "report": Command(
        "evaluation.commands.report",
        "HTML report: PR curves, intervals, per-organ and per-image results",
        "report",
    ),
    "convert-gt": Command(
        "evaluation.commands.convert_gt", "write the ground-truth JSON of one release split"
    ),
    "layout": Command(
        "evaluation.commands.layout",
        "write a release split in the Grand Challenge layout",
        "images",
    ),
    "leaderboard": Command(
        "evaluation.commands.leaderboard",
        "rank submissions by mF1, with bootstrap rank stability and significance",
        "report",
    ),
}


def run_command(
    prog: str, commands: Mapping[str, Command], argv: Sequence[str] | None = None
) -> int:
    """Parse ``argv`` as ``COMMAND [options]`` and run that command.

    Parameters
    ----------
    prog : str
        How the program is invoked, for usage lines (``ocelot``, ``python -m evaluation``).
    commands : mapping of str to Command
        Command name -> its module path, one-line help and extra.
    argv : sequence of str, optional
        Arguments after the program name; ``sys.argv[1:]`` by default.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog=prog,
        description="OCELOT 2023 toolkit: scorer, report, data layouts and the baseline.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n"
        + "\n".join(f"  {name:<12} {command.help}" for name, command in commands.items())
        + f"\n\n'{prog} COMMAND --help' lists a command's options.",
    )
    top.add_argument("command", choices=tuple(commands), metavar="COMMAND")
    top.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    chosen = top.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    command = commands[chosen.command]
    return run_module(
        f"{prog} {chosen.command}", command.module, argv[1:], command.help, command.extra
    )


def run_module(
    prog: str, module_path: str, argv: Sequence[str], help_line: str = "", extra: str | None = None
) -> int:
    """Parse ``argv`` with one command module's options and run it.

    Also the entry of a single-command program such as the evaluation container. A third-party
    module missing while the command is imported or runs ends it with one line naming ``extra``.
    """

    def parse_and_run() -> int:
        try:
            # The environment's bounds, read here once, hold for the whole command.
            with limits_in_force(limits_from_environment(os.environ)):
                module = importlib.import_module(module_path)
                parser = argparse.ArgumentParser(
                    prog=prog, description=getattr(module, "DESCRIPTION", help_line)
                )
                module.add_arguments(parser)  # may show a bound in its help
                return module.run(parser.parse_args(argv))
        except ModuleNotFoundError as error:
            package = (error.name or "").partition(".")[0]
            if extra is None or not package or package in OWN_PACKAGES:
                raise
            raise MissingExtraError(
                f"{prog} needs the '{extra}' extra ({error}): pip install '{DISTRIBUTION}[{extra}]'"
            ) from None

    return run_reporting_errors(parse_and_run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evaluation COMMAND``: the commands that need no torch."""
    return run_command("python -m evaluation", EVALUATION_COMMANDS, argv)

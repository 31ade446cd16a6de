"""The command-line tree: one convention for every command of ``ocelot`` and ``python -m``.

A command is a module with three names:

``HELP``
    One line for the list of commands.
``add_arguments(parser)``
    Declares its options on an ``argparse.ArgumentParser``.
``run(args) -> int``
    Does the work and returns the exit status.

A table maps each command name to its module's dotted path. Only the module of the command
that runs is imported, so ``ocelot score`` never pays for torch, matplotlib or scipy's
optimiser. Every command runs under :func:`evaluation.errors.run_reporting_errors`: bad input
ends with one ``error:`` line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence

from evaluation.errors import run_reporting_errors

__all__ = ["EVALUATION_COMMANDS", "main", "run_command", "run_module"]

#: Commands that need only the scorer's dependencies (and the extras they name).
EVALUATION_COMMANDS = {
    "score": ("evaluation.commands.score", "score predictions with the OCELOT 2023 rule"),
    "report": ("evaluation.commands.report",
               "HTML report: PR curves, intervals, per-organ and per-image results"),
    "convert-gt": ("evaluation.commands.convert_gt",
                   "write the ground-truth JSON of one release split"),
    "layout": ("evaluation.commands.layout",
               "write a release split in the Grand Challenge layout"),
    "leaderboard": ("evaluation.commands.leaderboard",
                    "rank submissions by mF1, with bootstrap rank stability and significance"),
}


def run_command(prog: str, commands: Mapping[str, tuple[str, str]],
                argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` as ``COMMAND [options]`` and run that command.

    Parameters
    ----------
    prog : str
        How the program is invoked, for usage lines (``ocelot``, ``python -m evaluation``).
    commands : mapping of str to (str, str)
        Command name -> (module path, one-line help).
    argv : sequence of str, optional
        Arguments after the program name; ``sys.argv[1:]`` by default.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    top = argparse.ArgumentParser(
        prog=prog,
        description="OCELOT 2023 toolkit: scorer, report, data layouts and the baseline.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(
            f"  {name:<12} {help_line}" for name, (_, help_line) in commands.items()
        ) + f"\n\n'{prog} COMMAND --help' lists a command's options.",
    )
    top.add_argument("command", choices=tuple(commands), metavar="COMMAND")
    top.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    chosen = top.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    module_path, help_line = commands[chosen.command]
    return run_module(f"{prog} {chosen.command}", module_path, argv[1:], help_line)


def run_module(prog: str, module_path: str, argv: Sequence[str], help_line: str = "") -> int:
    """Parse ``argv`` with one command module's options and run it.

    Also the entry of a single-command program such as the evaluation container.
    """
    module = importlib.import_module(module_path)

    def parse_and_run() -> int:
        parser = argparse.ArgumentParser(prog=prog,
                                         description=getattr(module, "DESCRIPTION", help_line))
        module.add_arguments(parser)  # may read a bound from the environment (evaluation.limits)
        return module.run(parser.parse_args(argv))

    return run_reporting_errors(parse_and_run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evaluation COMMAND``: the commands that need no torch."""
    return run_command("python -m evaluation", EVALUATION_COMMANDS, argv)

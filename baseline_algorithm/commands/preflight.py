"""``preflight``: run an algorithm image exactly as the platform does, and check what it does.

The image runs once on the input folder with the platform's flags (no network, no capabilities,
no new privileges, read-only except /output, memory and pids limits). Each check prints one line
with its figure; the exit status is 0 when all pass, else 1, and the last line names the first
failed check in words to act on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baseline_algorithm.platform import RunLimits
from baseline_algorithm.preflight import preflight, verdict

__all__ = ["add_arguments", "run"]

DESCRIPTION = __doc__.split("\n\n", 1)[1]
DEFAULT_INPUT = Path("test_data/input")
#: Exit status when a check fails (2 stays for unusable options or input).
EXIT_CHECK_FAILED = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="the algorithm image (name[:tag] or id)")
    parser.add_argument(
        "--input",
        type=Path,
        default=DEFAULT_INPUT,
        help=f"Grand Challenge input folder to mount at /input (default {DEFAULT_INPUT})",
    )
    parser.add_argument(
        "--ground-truth",
        type=Path,
        default=None,
        help="ground-truth JSON of that input: adds the scores to the checklist",
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=3600.0,
        metavar="S",
        help="seconds before the run is stopped and fails (default 3600; use your phase's limit)",
    )
    parser.add_argument(
        "--memory",
        default=RunLimits.memory,
        help=f"memory limit, swap included (default {RunLimits.memory}, as the platform)",
    )
    parser.add_argument(
        "--pids-limit",
        type=int,
        default=RunLimits.pids,
        help=f"processes and threads (default {RunLimits.pids}, as the platform)",
    )
    parser.add_argument("--gpus", action="store_true", help="give the container the host's GPUs")
    parser.add_argument(
        "--keep-output",
        type=Path,
        default=None,
        metavar="DIR",
        help="copy what the container wrote to /output into DIR",
    )


def run(args: argparse.Namespace) -> int:
    limits = RunLimits(memory=args.memory, pids=args.pids_limit, gpus=args.gpus)
    checks = preflight(
        args.image,
        args.input,
        limits=limits,
        time_limit_s=args.time_limit,
        ground_truth=args.ground_truth,
        keep_output=args.keep_output,
        echo=lambda line: print(line, flush=True),
    )
    for check in checks:
        print(check.line(), flush=True)
    last = verdict(checks)
    failed = any(check.passed is False for check in checks)
    print(last, file=sys.stderr if failed else sys.stdout, flush=True)
    return EXIT_CHECK_FAILED if failed else 0

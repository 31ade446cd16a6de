"""``ocelot predict-slides``: predict-slide on every slide of a CSV manifest, on Dask distributed.

One Dask task per slide, on a LocalCluster by default or on the scheduler at --scheduler (start
one with ``dask scheduler`` and workers with ``dask worker ADDRESS``; give GPU workers
``--resources GPU=1``). A slide that fails does not stop the others: it is listed with its error
line in OUT/summary.json and the command ends with one line and exit status 2. Slides whose
OUT/NAME/cells.json exists are skipped, so a rerun does only what is left.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from baseline_algorithm.commands.options import add_dataclass_options, options_from_args
from baseline_algorithm.slides.cohort import CohortOptions, predict_slides

__all__ = ["add_arguments", "run"]

DESCRIPTION = __doc__.split("\n\n", 1)[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "manifest", type=Path, help="CSV with a 'slide' column, optional 'name' and 'mpp'"
    )
    add_dataclass_options(parser, CohortOptions)
    parser.add_argument("--quiet", action="store_true", help="no progress")


def run(args: argparse.Namespace) -> int:
    summary = predict_slides(
        args.manifest, options_from_args(CohortOptions, args), progress=not args.quiet
    )
    print(
        f"{summary['done']} done, {summary['skipped']} skipped, {summary['failed']} failed: "
        f"{args.out / 'summary.json'}"
    )
    return 0

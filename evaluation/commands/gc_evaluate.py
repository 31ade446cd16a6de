"""The evaluation container's command (``python -m evaluation.gc_entry``): its options, their
defaults (the platform's paths and the image's environment) and the run; the steps are
:mod:`evaluation.gc_entry`'s."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from evaluation.commands.options import radius_in_pixels
from evaluation.constants import MATCH_RADIUS_PX, SPLITS
from evaluation.errors import InputError, preview
from evaluation.gc_entry import check_ground_truth, evaluate

__all__ = ["add_arguments", "run"]

_INPUT = Path("/input")
_OUTPUT = Path("/output")
_MOUNTED_GROUND_TRUTH = Path("/opt/ml/input/data/ground_truth")
_BAKED_GROUND_TRUTH = Path("/opt/ocelot/ground_truth")


DESCRIPTION = (
    "Grand Challenge evaluation of OCELOT submissions: reads the platform's input layout, writes "
    "metrics.json. All paths default to the platform's."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    environ = os.environ
    parser.add_argument(
        "--input",
        type=Path,
        default=_INPUT,
        help="folder with predictions.json and <pk>/output/ (default /input)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=_OUTPUT,
        help="folder to write metrics.json into (default /output)",
    )
    parser.add_argument(
        "--ground-truth",
        type=Path,
        default=_MOUNTED_GROUND_TRUTH,
        help="mounted ground-truth folder; wins over the baked one when it holds "
        "files (default /opt/ml/input/data/ground_truth)",
    )
    parser.add_argument(
        "--baked-ground-truth",
        type=Path,
        default=Path(environ.get("OCELOT_BAKED_GROUND_TRUTH", _BAKED_GROUND_TRUTH)),
        help="ground truth baked into the image (default "
        "$OCELOT_BAKED_GROUND_TRUTH or /opt/ocelot/ground_truth)",
    )
    parser.add_argument(
        "--split",
        choices=SPLITS,
        default=environ.get("OCELOT_GROUND_TRUTH_SPLIT", "test"),
        help="split of a release-folder ground truth (default $OCELOT_GROUND_TRUTH_SPLIT or test)",
    )
    parser.add_argument(
        "--radius-px",
        default=environ.get("OCELOT_RADIUS_PX"),
        help=f"matching cutoff in pixels (default $OCELOT_RADIUS_PX or {MATCH_RADIUS_PX:g})",
    )
    parser.add_argument(
        "--check-ground-truth",
        action="store_true",
        help="only load the ground truth and say what it holds",
    )


def run(args: argparse.Namespace) -> int:
    """Check the ground truth, or evaluate the submission."""
    if args.check_ground_truth:
        check_ground_truth(args.ground_truth, args.baked_ground_truth, split=args.split)
    else:
        evaluate(
            args.input,
            args.output,
            args.ground_truth,
            args.baked_ground_truth,
            split=args.split,
            radius_px=_radius(args.radius_px),
        )
    return 0


def _radius(text: str | None) -> float:
    if text is None:
        return MATCH_RADIUS_PX
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"matching radius (--radius-px / OCELOT_RADIUS_PX): not a number: {preview(text)}"
        ) from None
    return radius_in_pixels(value, None, None)

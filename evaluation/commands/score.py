"""``ocelot score``: score a predictions file against ground truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluation.commands.options import (
    add_input_arguments,
    radius_in_pixels,
    read_inputs,
)
from evaluation.files import check_writable, write_json_atomic
from evaluation.metrics import score
from evaluation.table import format_report

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Score a 'Multiple points' predictions file against ground truth exactly as the OCELOT 2023 "
    "leaderboard does (greedy matching within 15 px, per-class F1, mF1)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument("--output", type=Path, help="write metrics JSON here")


def run(args: argparse.Namespace) -> int:
    """Read inputs, score, print the table, write the metrics file."""
    radius_px = radius_in_pixels(args.radius_px, args.radius_um, args.mpp)
    if args.output is not None:
        read = (args.predictions, args.ground_truth, args.metadata)
        check_writable(args.output, inputs=[path for path in read if path is not None])
    inputs = read_inputs(args)
    truth = inputs.ground_truth
    report = score(
        inputs.predictions,
        truth.points,
        truth.num_images,
        radius_px=radius_px,
        organs=truth.organs,
        matching=args.matching,
    )
    if args.matching != "greedy":
        print(f"{args.matching} matching: not the leaderboard's rule")
    print(format_report(report, radius_px=radius_px))
    if args.output is not None:
        write_json_atomic(args.output, report.to_dict())
    return 0

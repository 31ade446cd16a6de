"""``ocelot synthesize-slide``: a pyramidal TIFF slide from the synthetic generator, its truth."""

from __future__ import annotations

import argparse
from pathlib import Path

from baseline_algorithm.slides import synthetic
from baseline_algorithm.slides.synthetic import synthesize_slide

__all__ = ["add_arguments", "run"]

DESCRIPTION = synthetic.__doc__


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="the TIFF to write")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        required=True,
        metavar=("W", "H"),
        help="level-0 width and height in pixels",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tissue",
        type=int,
        nargs=4,
        default=None,
        metavar=("X0", "Y0", "X1", "Y1"),
        help="level-0 rectangle holding the tissue (default: the whole slide); "
        "white glass elsewhere",
    )
    parser.add_argument(
        "--ground-truth",
        type=Path,
        default=None,
        help='the "Multiple points" ground truth (default NAME.gt.json beside OUT)',
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    slide, truth = synthesize_slide(
        args.out,
        tuple(args.size),
        seed=args.seed,
        tissue=args.tissue,
        ground_truth=args.ground_truth,
        progress=not args.quiet,
    )
    print(f"wrote {slide} and {truth}")
    return 0

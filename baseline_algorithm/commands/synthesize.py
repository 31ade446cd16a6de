"""``ocelot synthesize``: a synthetic dataset in the release layout, and its GC layouts."""

from __future__ import annotations

import argparse
from pathlib import Path

from baseline_algorithm.data.synthesize import synthesize_dataset
from evaluation.constants import PATCH_SIZE_PX

__all__ = ["add_arguments", "run"]

DESCRIPTION = synthesize_dataset.__doc__.split("\n\n")[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", type=Path, help="output folder")
    parser.add_argument(
        "--pairs",
        type=int,
        nargs=3,
        metavar=("TRAIN", "VAL", "TEST"),
        default=(8, 2, 2),
        help="pairs per split",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=PATCH_SIZE_PX,
        help=f"patch side in pixels (default {PATCH_SIZE_PX})",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--gc-compression",
        choices=("none", "zlib"),
        default="none",
        help="compression of the stacked TIFFs",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="processes rendering pairs in parallel"
    )
    parser.add_argument("--force", action="store_true", help="replace OUT if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    synthesize_dataset(
        args.out,
        tuple(args.pairs),
        size=args.size,
        seed=args.seed,
        gc_compression=None if args.gc_compression == "none" else args.gc_compression,
        overwrite=args.force,
        progress=not args.quiet,
        workers=args.workers,
    )
    print(f"wrote {args.out}")
    return 0

"""``ocelot layout``: a release split in the Grand Challenge layout, to rehearse the platform."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from evaluation.constants import CELL_MPP, PATCH_SIZE_PX, SPLITS
from evaluation.errors import DataError
from evaluation.multiple_points import points_document, read_points_document

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Write one split of an OCELOT release folder as the platform hands it over: input/ (the "
    "algorithm container's /input: two stacked TIFFs and metadata.json), ground_truth/ "
    "(cell_gt.json and metadata.json, what ocelot-eval bakes in) and evaluation/input/ (the "
    "evaluation container's /input: predictions.json and one job's output). The job's output "
    "is --predictions, or by default a plausible detector output made from the ground truth. "
    "Needs the images extra."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", type=Path, metavar="RELEASE", help="OCELOT release folder")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help="folder to write input/, ground_truth/ and evaluation/ into",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        help="a 'Multiple points' file to use as the job's output (default: "
        "noisy predictions made from the ground truth)",
    )
    parser.add_argument(
        "--compression",
        choices=("none", "zlib"),
        default="none",
        help="TIFF compression (default none: one uncompressed strip, as the platform writes)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the job id and of the default predictions (default 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Read the split pair by pair into the writer, then write the three layouts."""
    from tqdm import tqdm

    from evaluation.gc_layout import GrandChallengeWriter
    from evaluation.release import ReleaseDataset

    dataset = ReleaseDataset(args.release, args.split)
    if len(dataset) == 0:
        raise DataError(f"{args.release}: split {args.split} holds no pairs")
    predictions = None
    if args.predictions is not None:
        points, _ = read_points_document(args.predictions, num_images=len(dataset))
        predictions = points_document(points)
    first = dataset[0]
    size = first.cell_image.shape[0]
    inputs = (dataset.metadata_path,) + (() if args.predictions is None else (args.predictions,))
    writer = GrandChallengeWriter(
        args.out,
        len(dataset),
        size,
        None if args.compression == "none" else args.compression,
        inputs=inputs,
    )
    for index in tqdm(
        range(len(dataset)), desc=f"{args.split} pairs", unit="pair", disable=args.quiet
    ):
        writer.add(index, first if index == 0 else dataset[index])
    writer.finish(
        np.random.default_rng(args.seed), CELL_MPP * PATCH_SIZE_PX / size, predictions=predictions
    )
    print(
        f"wrote {args.out}: input/, ground_truth/ and evaluation/ of {len(dataset)} "
        f"{args.split} pairs"
    )
    return 0

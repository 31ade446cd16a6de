"""``ocelot convert-gt``: release CSV annotations -> one ground-truth document."""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluation.constants import SPLITS
from evaluation.files import check_writable, write_json_atomic
from evaluation.multiple_points import points_document
from evaluation.release import read_release_ground_truth, release_cell_csvs

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Convert annotations/<split>/cell/*.csv of an OCELOT release folder into the 'Multiple "
    "points' ground-truth document the organisers' converter writes (k-th sorted CSV = image_k, "
    "probability 1.0), plus num_images."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("release", type=Path, metavar="OCELOT_DIR", help="release folder")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--output", required=True, type=Path, help="ground-truth JSON to write")
    parser.add_argument(
        "--whole-slide", action="store_true", help="lift the 0..1023 pixel bound on coordinates"
    )


def run(args: argparse.Namespace) -> int:
    """Read the split's CSVs, write the document, say what was written."""
    # Every CSV read is an input: the output may replace none of them.
    check_writable(args.output, inputs=release_cell_csvs(args.release, args.split))
    truth = read_release_ground_truth(args.release, args.split, whole_slide=args.whole_slide)
    write_json_atomic(args.output, points_document(truth.points, truth.num_images))
    print(
        f"wrote {args.output}: {len(truth.points)} cells in {truth.num_images} images "
        f"({args.split})"
    )
    return 0

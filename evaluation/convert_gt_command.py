"""``python -m evaluation convert-gt``: release CSV annotations -> one ground-truth document."""

from __future__ import annotations

import argparse
from pathlib import Path

from evaluation.formats import InputError, points_document, write_json_atomic
from evaluation.release import SPLITS, read_release_ground_truth


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``convert-gt`` subcommand."""
    parser = subparsers.add_parser(
        "convert-gt",
        help="write the ground-truth JSON of one release split",
        description=(
            "Convert annotations/<split>/cell/*.csv of an OCELOT release folder into the "
            "'Multiple points' ground-truth document the organisers' converter writes "
            "(k-th sorted CSV = image_k, probability 1.0), plus num_images."
        ),
    )
    parser.add_argument("release", type=Path, metavar="OCELOT_DIR", help="release folder")
    parser.add_argument("--split", required=True, choices=SPLITS)
    parser.add_argument("--output", required=True, type=Path, help="ground-truth JSON to write")
    parser.add_argument("--whole-slide", action="store_true",
                        help="lift the 0..1023 pixel bound on coordinates")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Read the split's CSVs, write the document, say what was written."""
    if not args.output.parent.is_dir():
        raise InputError(f"{args.output}: cannot write: folder {args.output.parent} does not exist")
    points, num_images, _ = read_release_ground_truth(
        args.release, args.split, whole_slide=args.whole_slide
    )
    write_json_atomic(args.output, points_document(points, num_images))
    print(f"wrote {args.output}: {len(points)} cells in {num_images} images ({args.split})")
    return 0

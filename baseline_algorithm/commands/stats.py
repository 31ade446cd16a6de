"""``ocelot stats``: the cell-in-tissue table and class ratios of a release-layout dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from baseline_algorithm.data.statistics import (
    CellTissueStatistics,
    dataset_statistics,
    format_statistics,
)
from evaluation.constants import SPLITS
from evaluation.errors import DataError
from evaluation.release import ReleaseDataset

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Counts, for a dataset in the OCELOT release layout (real or synthetic), the cells of each "
    "class on cancer area, background and unknown tissue, and the class ratios."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "root", type=Path, help="dataset root (holds metadata.json, images/, annotations/)"
    )
    parser.add_argument("--split", choices=SPLITS, help="one split (default: every split present)")


def run(args: argparse.Namespace) -> int:
    splits = (
        [args.split]
        if args.split
        else [split for split in SPLITS if (args.root / "images" / split / "cell").is_dir()]
    )
    if not splits:
        raise DataError(
            f"{args.root}: no images/<split>/cell folder (is it an OCELOT release root?)"
        )
    total = CellTissueStatistics()
    for split in splits:
        stats = dataset_statistics(ReleaseDataset(args.root, split))
        print(format_statistics(stats, split), end="\n\n")
        total = total + stats
    if len(splits) > 1:
        print(format_statistics(total, "all splits"))
    return 0

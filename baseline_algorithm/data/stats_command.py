"""``stats``: the cell-in-tissue table and class ratios of a release-layout dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from .pairs import DataError
from .release import SPLITS, ReleaseDataset
from .statistics import CellTissueStatistics, dataset_statistics, format_statistics


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``stats``."""
    parser = subparsers.add_parser(
        "stats",
        help="print TC/BC counts inside and outside cancer area and class ratios of a dataset",
        description="Counts, for a dataset in the OCELOT release layout (real or synthetic), the cells of "
        "each class on cancer area, background and unknown tissue, and the class ratios.",
    )
    parser.add_argument("root", type=Path, help="dataset root (holds metadata.json, images/, annotations/)")
    parser.add_argument("--split", choices=SPLITS, help="one split (default: every split present)")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    splits = [args.split] if args.split else [s for s in SPLITS if (args.root / "images" / s / "cell").is_dir()]
    if not splits:
        raise DataError(f"{args.root}: no images/<split>/cell directory (is it an OCELOT release root?)")
    total = CellTissueStatistics()
    for split in splits:
        stats = dataset_statistics(ReleaseDataset(args.root, split))
        print(format_statistics(stats, split), end="\n\n")
        total = total + stats
    if len(splits) > 1:
        print(format_statistics(total, "all splits"))
    return 0

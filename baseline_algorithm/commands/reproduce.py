"""``reproduce``: the paper's Tables 5 and 7 (variants x data ablations x seeds) as one table."""

from __future__ import annotations

import argparse
from pathlib import Path

from baseline_algorithm.commands.options import add_dataclass_options, options_from_args
from baseline_algorithm.model import VARIANTS
from baseline_algorithm.reproduce import SYNTHETIC_PAIRS, reproduce
from baseline_algorithm.train import ABLATIONS, TrainingOptions

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Synthesize a dataset (unless --data is given), train every variant under every data "
    "ablation with every seed, score each best checkpoint on the test split and write "
    "OUT/table.md and OUT/table.json: mean ± std over seeds, a 95% bootstrap interval over test "
    "images and the paired gain over Cell-only. Rerunning skips finished runs and resumes "
    "interrupted ones."
)
#: Training options reproduce sets per run (data, out, variant, ablation, seed), or leaves at
#: their defaults: the data's own patch size (--size is the synthetic side), Feature-sharing's
#: default exchanges. --max-minutes bounds each run (a call with --max-minutes 0 trains no
#: further and scores what the runs have).
NOT_TAKEN = ("data", "out", "variant", "ablation", "seed", "size", "sharing")
#: A shorter default configuration than train's, sized for synthetic data.
DEFAULTS = {"encoder": "resnet18", "epochs": 40}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="experiment directory (data/, one run per row and seed, table.md)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="use this release-layout dataset instead of synthesizing",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        nargs=3,
        default=SYNTHETIC_PAIRS,
        metavar=("TRAIN", "VAL", "TEST"),
        help="synthetic pairs per split",
    )
    # Not TrainingOptions.size: training runs at the data's own side.
    parser.add_argument(
        "--size", dest="synthetic_size", type=int, default=256, help="synthetic patch side in px"
    )
    parser.add_argument(
        "--data-seed", type=int, default=0, help="seed of the synthetic data and of the bootstrap"
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=list(VARIANTS),
        choices=list(VARIANTS),
        metavar="VARIANT",
        help=f"any of: {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--ablations",
        nargs="+",
        default=["both"],
        choices=list(ABLATIONS),
        metavar="ABLATION",
        help=f"Table 7 data ablations for variants with a tissue branch, any of: "
        f"{', '.join(ABLATIONS)}",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        metavar="K",
        help="training seeds; every row is trained once per seed",
    )
    parser.add_argument(
        "--row-seeds",
        nargs="+",
        type=row_seeds_entry,
        default=[],
        metavar="ROW=K,K",
        help="seeds of one row instead of --seeds, e.g. cell-only=0,1,2 "
        "pred-to-inter-2+large-fov-only=0,1 (ROW: the variant, +ABLATION unless both)",
    )
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    add_dataclass_options(parser, TrainingOptions, exclude=NOT_TAKEN, defaults=DEFAULTS)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def row_seeds_entry(text: str) -> tuple[str, tuple[int, ...]]:
    """``ROW=K,K`` -> (ROW, (K, K))."""
    row, _, seeds = text.partition("=")
    try:
        values = tuple(int(seed) for seed in seeds.split(","))
    except ValueError:
        values = ()
    if not row or not values:
        raise argparse.ArgumentTypeError(f"expected ROW=K[,K...], got {text!r}")
    return row, values


def run(args: argparse.Namespace) -> int:
    template = options_from_args(TrainingOptions, args, data="", out="")
    reproduce(
        args.out,
        template,
        data=args.data,
        pairs=tuple(args.pairs),
        size=args.synthetic_size,
        data_seed=args.data_seed,
        variants=tuple(args.variants),
        ablations=tuple(args.ablations),
        seeds=tuple(args.seeds),
        row_seeds=dict(args.row_seeds),
        resamples=args.resamples,
        progress=not args.quiet,
    )
    return 0

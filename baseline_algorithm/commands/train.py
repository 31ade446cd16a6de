"""``train``: fit a model variant on a dataset in the release layout (see :mod:`..train`)."""

from __future__ import annotations

import argparse

from baseline_algorithm.commands.options import add_dataclass_options, options_from_args
from baseline_algorithm.train import TrainingOptions, fit

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Train a variant of the paper's model family; after each epoch score the val split, keep the "
    "best epoch in OUT/best.pt and the state to resume from in OUT/last.pt. Under torchrun "
    "(torchrun --nproc-per-node N -m baseline_algorithm train ...) the processes share each "
    "global batch of --batch-size pairs; rank 0 validates and writes the files."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    add_dataclass_options(parser, TrainingOptions)
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUT/last.pt with its stored options"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bars (one line per epoch only)"
    )


def run(args: argparse.Namespace) -> int:
    summary = fit(
        options_from_args(TrainingOptions, args), resume=args.resume, progress=not args.quiet
    )
    if summary["rank"] == 0:
        best = summary["best"]
        print(
            f"best val mF1 {best['mF1']:.4f} at epoch {best['epoch']}: {summary['best_checkpoint']}"
        )
    return 0

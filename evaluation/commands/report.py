"""``ocelot report``: a self-contained HTML report of one predictions file."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from evaluation.commands.options import (
    add_input_arguments,
    bounded_int,
    input_files,
    radius_in_pixels,
    read_inputs,
)
from evaluation.errors import InputError
from evaluation.limits import current_limits
from evaluation.tissue import read_tissue

__all__ = ["add_arguments", "run"]

DESCRIPTION = (
    "Score predictions like the leaderboard, then show what it hides: precision, recall and F1 "
    "at every confidence threshold, average precision, the best threshold, 95%% bootstrap "
    "intervals over images (also per organ), a sortable per-image table and, with --images, "
    "each cell patch with its TP / FP / FN drawn; where it fails: detection against "
    "classification and, with tissue annotations (a release folder's, or --tissue), every "
    "error in its tissue. Writes report.html (self-contained), "
    "report.json and the charts as PNG into --out."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    parser.add_argument(
        "--images",
        type=Path,
        help="Grand Challenge input folder or OCELOT release folder (with "
        "--split): draw each image's cell patch with TP / FP / FN, and its "
        "tissue patch; its metadata.json gives the organs",
    )
    parser.add_argument(
        "--tissue",
        type=Path,
        help="folder of PNG tissue masks (1 background, 2 cancer area, 255 "
        "unknown) named like the release's cell CSVs, the k-th for "
        "image_k; placed by --metadata (default: the annotations of a "
        "release folder given as ground truth)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("report"), help="output folder (default: ./report)"
    )
    parser.add_argument(
        "--replicates",
        type=int,
        default=1000,
        help="bootstrap replicates (default 1000; the most is "
        "OCELOT_MAX_REPLICATES, 100,000 unless set)",
    )
    parser.add_argument(
        "--seed",
        type=bounded_int(0, 2**63 - 1),
        default=0,
        help="bootstrap seed, 0..2**63-1 (default 0)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    """Read inputs, analyse, draw, write the report folder."""
    radius_px = radius_in_pixels(args.radius_px, args.radius_um, args.mpp)
    if args.replicates < 1:
        raise InputError(f"--replicates must be at least 1, got {args.replicates}")
    current_limits().check("replicates", args.replicates, "--replicates", "bootstrap replicates")
    if args.images is not None and not args.images.is_dir():
        raise InputError(f"{args.images}: --images must be a folder")
    if importlib.util.find_spec("matplotlib") is None:
        raise InputError("the report needs matplotlib (the report extra): pip install .[report]")
    from evaluation.report import write_report  # draws with matplotlib

    if args.tissue is not None and args.whole_slide:
        raise InputError("--tissue maps cell patches into tissue patches; a whole slide has none")
    if args.tissue is not None and args.out.resolve() == args.tissue.resolve():
        raise InputError(
            f"{args.out}: is the --tissue folder; the next run would read the "
            "charts as masks: write the output elsewhere"
        )
    inputs = read_inputs(args, images=args.images)
    truth = inputs.ground_truth
    tissue = (
        None
        if args.whole_slide
        else read_tissue(
            args.ground_truth,
            split=args.split,
            stems=truth.stems,
            folder=args.tissue,
            metadata=inputs.metadata,
            num_images=truth.num_images,
        )
    )
    sources = {"predictions": str(args.predictions), "ground truth": str(args.ground_truth)}
    if inputs.metadata is not None:
        sources["metadata"] = str(inputs.metadata)
    if args.images is not None:
        sources["images"] = str(args.images)
    if tissue is not None:
        sources["tissue"] = str(
            args.tissue or args.ground_truth / "annotations" / args.split / "tissue"
        )
    analysis = write_report(
        inputs.predictions,
        truth.points,
        truth.num_images,
        args.out,
        radius_px=radius_px,
        matching=args.matching,
        organs=truth.organs,
        images=args.images,
        split=args.split,
        tissue=tissue,
        replicates=args.replicates,
        seed=args.seed,
        sources=sources,
        progress=not args.quiet,
        inputs=input_files(args.ground_truth, args.split, args.predictions, inputs.metadata),
    )
    interval = analysis.intervals["mF1"]
    summary = f"mF1 {analysis.score.aggregates['mF1']:.5g}"
    if interval["low"] is not None:
        summary += f" (95% interval {interval['low']:.4f} – {interval['high']:.4f})"
    print(
        f"{summary} over {truth.num_images} images, {args.matching} matching within "
        f"{radius_px:g} px"
    )
    print(f"wrote {args.out / 'report.html'}")
    return 0

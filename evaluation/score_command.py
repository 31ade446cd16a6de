"""``python -m evaluation score``: score a predictions file against ground truth."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from evaluation.formats import CLASS_NAMES, InputError, read_points_document, write_json_atomic
from evaluation.metrics import MATCHERS, ScoreReport, score
from evaluation.release import read_ground_truth, read_organs

DEFAULT_RADIUS_PX = 15.0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``score`` subcommand."""
    parser = subparsers.add_parser(
        "score",
        help="score predictions with the OCELOT 2023 rule",
        description=(
            "Score a 'Multiple points' predictions file against ground truth exactly as the "
            "OCELOT 2023 leaderboard does (greedy matching within 15 px, per-class F1, mF1)."
        ),
    )
    add_input_arguments(parser)
    parser.add_argument("--output", type=Path, help="write metrics JSON here")
    parser.set_defaults(run=run)
    return parser


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """What to score and how: files, split, organs, coordinate bound, radius, matching rule.

    Shared by the ``score`` and ``report`` commands; :func:`read_inputs` reads what they name.
    """
    parser.add_argument("--predictions", required=True, type=Path,
                        help="predictions, a 'Multiple points' JSON file")
    parser.add_argument("--ground-truth", required=True, type=Path,
                        help="a 'Multiple points' JSON file with num_images, "
                             "or an OCELOT release folder (with --split)")
    parser.add_argument("--split", choices=("train", "val", "test"),
                        help="split of a release folder (or of release metadata)")
    parser.add_argument("--metadata", type=Path,
                        help="release metadata.json or a Grand Challenge metadata list; gives "
                             "each image its organ (default: metadata.json of a release folder "
                             "given as input)")
    parser.add_argument("--whole-slide", action="store_true",
                        help="lift the 0..1023 pixel bound on coordinates (score a slide or "
                             "large region as one image)")
    radius = parser.add_mutually_exclusive_group()
    radius.add_argument("--radius-px", type=float,
                        help=f"matching cutoff in pixels (default {DEFAULT_RADIUS_PX:g})")
    radius.add_argument("--radius-um", type=float,
                        help="matching cutoff in micrometres (needs --mpp)")
    parser.add_argument("--mpp", type=float,
                        help="resolution in micrometres per pixel, for --radius-um")
    parser.add_argument("--matching", choices=tuple(MATCHERS), default="greedy",
                        help="greedy: the challenge's rule (default); hungarian: optimal "
                             "one-to-one pairing, for comparison with point-detection papers")


def read_inputs(args: argparse.Namespace):
    """Ground truth and predictions named by :func:`add_input_arguments`' arguments.

    Returns
    -------
    predictions, ground_truth : PointSet
    num_images : int
    stems : list of str or None
        Release CSV stems in image order when the ground truth is a release folder.
    """
    ground_truth, num_images, stems = read_ground_truth(
        args.ground_truth, split=args.split, whole_slide=args.whole_slide
    )
    predictions, _ = read_points_document(
        args.predictions, role="predictions", whole_slide=args.whole_slide, num_images=num_images
    )
    return predictions, ground_truth, num_images, stems


def run(args: argparse.Namespace) -> int:
    """Read inputs, score, print the table, write the metrics file."""
    radius_px = radius_in_pixels(args.radius_px, args.radius_um, args.mpp)
    if args.output is not None and not args.output.parent.is_dir():
        raise InputError(f"{args.output}: cannot write: folder {args.output.parent} does not exist")
    predictions, ground_truth, num_images, stems = read_inputs(args)
    organs = _organs(args, num_images, stems)
    report = score(predictions, ground_truth, num_images, radius_px=radius_px, organs=organs,
                   matching=args.matching)
    if args.matching != "greedy":
        print(f"{args.matching} matching: not the leaderboard's rule")
    print(format_report(report, radius_px=radius_px))
    if args.output is not None:
        write_json_atomic(args.output, report.to_dict())
    return 0


def radius_in_pixels(radius_px: float | None, radius_um: float | None, mpp: float | None) -> float:
    """The cutoff in pixels from ``--radius-px`` or ``--radius-um`` / ``--mpp`` (µm per pixel)."""
    if radius_um is None:
        if mpp is not None:
            raise InputError("--mpp is only used with --radius-um")
        radius_px = DEFAULT_RADIUS_PX if radius_px is None else radius_px
    else:
        if mpp is None:
            raise InputError("--radius-um needs --mpp (micrometres per pixel)")
        if not (math.isfinite(mpp) and mpp > 0):
            raise InputError(f"--mpp must be a positive number, got {mpp}")
        radius_px = radius_um / mpp
    if not (math.isfinite(radius_px) and radius_px >= 0):
        raise InputError(f"the matching radius must be a finite number >= 0, got {radius_px}")
    return radius_px


def _organs(args: argparse.Namespace, num_images: int, stems: list[str] | None):
    metadata = args.metadata
    if metadata is None and stems is not None:
        release_metadata = args.ground_truth / "metadata.json"
        metadata = release_metadata if release_metadata.is_file() else None
    if metadata is None:
        return None
    return read_organs(metadata, num_images=num_images, split=args.split, stems=stems)


def format_report(report: ScoreReport, *, radius_px: float = DEFAULT_RADIUS_PX) -> str:
    """A plain-text table: per class P/R/F1/TP/FP/FN, mF1, then per organ when known."""
    import pandas as pd  # only the CLI needs tables

    aggregates = report.aggregates
    classes = pd.DataFrame(
        [
            {
                "class": name,
                "precision": f"{aggregates[f'Pre/{name}']:.4f}",
                "recall": f"{aggregates[f'Rec/{name}']:.4f}",
                "F1": f"{aggregates[f'F1/{name}']:.4f}",
                "TP": aggregates[f"TP/{name}"],
                "FP": aggregates[f"FP/{name}"],
                "FN": aggregates[f"FN/{name}"],
            }
            for name in CLASS_NAMES.values()
        ]
    )
    lines = [
        f"{len(report.results)} images, matching radius {radius_px:g} px",
        classes.to_string(index=False),
        f"mF1 {round(aggregates['mF1'], 5)}",
    ]
    if report.per_organ:
        organs = pd.DataFrame(
            [
                {
                    "organ": organ,
                    "images": metrics["images"],
                    "F1/BC": f"{metrics['F1/BC']:.4f}",
                    "F1/TC": f"{metrics['F1/TC']:.4f}",
                    "mF1": f"{round(metrics['mF1'], 5)}",
                }
                for organ, metrics in report.per_organ.items()
            ]
        )
        lines += ["", "per organ", organs.to_string(index=False)]
    return "\n".join(lines)

"""Options that several commands share, declared once, and the inputs they name."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

from evaluation.constants import MATCH_RADIUS_PX, SPLITS
from evaluation.errors import InputError
from evaluation.ground_truth import GroundTruth
from evaluation.metadata import resolve_organs
from evaluation.metrics import MATCHING_RULES
from evaluation.multiple_points import read_points_document
from evaluation.points import PointSet
from evaluation.release import read_ground_truth, release_cell_csvs

__all__ = [
    "ScoringInputs",
    "add_ground_truth_arguments",
    "add_input_arguments",
    "bounded_int",
    "input_files",
    "radius_in_pixels",
    "read_inputs",
]


@dataclass(frozen=True)
class ScoringInputs:
    """What :func:`add_input_arguments`' options name, read and validated.

    ``ground_truth`` carries the organs when metadata names them; ``metadata`` is the file read.
    """

    predictions: PointSet
    ground_truth: GroundTruth
    metadata: Path | None


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    """What to score and how: files, split, organs, coordinate bound, radius, matching rule."""
    parser.add_argument(
        "--predictions", required=True, type=Path, help="predictions, a 'Multiple points' JSON file"
    )
    add_ground_truth_arguments(parser)
    parser.add_argument(
        "--whole-slide",
        action="store_true",
        help="lift the 0..1023 pixel bound on coordinates (score a slide or "
        "large region as one image)",
    )
    radius = parser.add_mutually_exclusive_group()
    radius.add_argument(
        "--radius-px", type=float, help=f"matching cutoff in pixels (default {MATCH_RADIUS_PX:g})"
    )
    radius.add_argument(
        "--radius-um", type=float, help="matching cutoff in micrometres (needs --mpp)"
    )
    parser.add_argument(
        "--mpp", type=float, help="resolution in micrometres per pixel, for --radius-um"
    )
    parser.add_argument(
        "--matching",
        choices=MATCHING_RULES,
        default="greedy",
        help="greedy: the challenge's rule (default); hungarian: optimal "
        "one-to-one pairing, for comparison with point-detection papers",
    )


def add_ground_truth_arguments(parser: argparse.ArgumentParser) -> None:
    """The ground truth, its split and the metadata that gives each image its organ."""
    parser.add_argument(
        "--ground-truth",
        required=True,
        type=Path,
        help="a 'Multiple points' JSON file with num_images, "
        "or an OCELOT release folder (with --split)",
    )
    parser.add_argument(
        "--split", choices=SPLITS, help="split of a release folder (or of release metadata)"
    )
    parser.add_argument(
        "--metadata",
        type=Path,
        help="release metadata.json or a Grand Challenge metadata list; gives "
        "each image its organ (default: metadata.json of a release folder "
        "given as input)",
    )


def read_inputs(args: argparse.Namespace, *, images: Path | None = None) -> ScoringInputs:
    """Ground truth, predictions and organs named by :func:`add_input_arguments`' options.

    Organs come from ``--metadata``, else from the ``metadata.json`` of ``images`` (an image
    folder), else from that of a release folder given as ground truth.
    """
    truth = read_ground_truth(args.ground_truth, split=args.split, whole_slide=args.whole_slide)
    predictions, _ = read_points_document(
        args.predictions,
        role="predictions",
        whole_slide=args.whole_slide,
        num_images=truth.num_images,
    )
    organs, metadata = resolve_organs(
        args.metadata,
        num_images=truth.num_images,
        split=args.split,
        stems=truth.stems,
        search=(images, args.ground_truth if truth.stems is not None else None),
    )
    return ScoringInputs(predictions, truth.with_organs(organs), metadata)


def bounded_int(low: int, high: int):
    """An argparse type: an integer in ``low..high``, else argparse's usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}, got {value}")
        return value

    return parse


def input_files(ground_truth: Path, split: str | None, *others: Path | None) -> list[Path]:
    """The files a command reads, for the check that no output replaces one of them.

    ``ground_truth`` is a file, or a release folder whose split's CSVs and ``metadata.json``
    are read; ``others`` (predictions, metadata) may be None.
    """
    files = [path for path in others if path is not None]
    if not ground_truth.is_dir():
        return [ground_truth, *files]
    csvs = release_cell_csvs(ground_truth, split) if split is not None else []
    return [*csvs, ground_truth / "metadata.json", *files]


def radius_in_pixels(radius_px: float | None, radius_um: float | None, mpp: float | None) -> float:
    """The cutoff in pixels from ``--radius-px``, or ``--radius-um`` and ``--mpp`` (µm/px)."""
    if radius_um is None:
        if mpp is not None:
            raise InputError("--mpp is only used with --radius-um")
        radius_px = MATCH_RADIUS_PX if radius_px is None else radius_px
    else:
        if mpp is None:
            raise InputError("--radius-um needs --mpp (micrometres per pixel)")
        if not (math.isfinite(mpp) and mpp > 0):
            raise InputError(f"--mpp must be a positive number, got {mpp}")
        radius_px = radius_um / mpp
    if not (math.isfinite(radius_px) and radius_px >= 0):
        raise InputError(f"the matching radius must be a finite number >= 0, got {radius_px}")
    return radius_px

"""``ocelot predict-slide``: any detector on every tissue tile of a slide.

Cell tiles of 1024 px at 0.2 µm/px with their 1024 px tissue tiles at 0.8 µm/px, as the platform
cuts them; overlapping tiles keep only the cells of their core, so a cell on a tile edge is found
once. The cells are written in level-0 pixels as a "Multiple points" document (score it with
``ocelot score --whole-slide``) and, with --geojson, as GeoJSON for QuPath. An interrupted run,
started again with the same arguments, continues from the tiles it finished (kept in
OUTPUT.tiles/). Bad input ends with one line and exit status 2; no output is half-written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from baseline_algorithm.commands.options import add_dataclass_options, options_from_args
from baseline_algorithm.slides.run import SlideOptions, predict_slide

__all__ = ["add_arguments", "run"]

DESCRIPTION = __doc__.split("\n\n", 1)[1]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "slide",
        type=Path,
        help="the slide: TIFF, OME-TIFF, SVS (tifffile), or "
        "any OpenSlide format when OpenSlide is installed",
    )
    add_dataclass_options(parser, SlideOptions)


def run(args: argparse.Namespace) -> int:
    try:
        predict_slide(args.slide, options_from_args(SlideOptions, args))
    except Exception as error:
        # The participant's traceback first, so that the summary stays the last line.
        sys.stderr.write(getattr(error, "participant_traceback", ""))
        raise
    return 0

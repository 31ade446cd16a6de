"""``ocelot predict-slide``: a detector on every tissue tile of a slide, as its steps.

1. :func:`check_outputs` refuses outputs that cannot be written before any work;
2. :func:`~.reader.open_slide` and :func:`~.reader.slide_mpp`: the slide and its level-0
   resolution (metadata or ``--mpp``, never a guess);
3. :func:`region_of_interest` checks ``--roi`` against the slide;
4. :func:`plan_tiles`: the grid of cell tiles over the region and those whose core shows tissue;
5. :class:`~.journal.TileJournal`: tiles finished by an earlier run of the same arguments;
6. :func:`detect_tiles` streams the remaining tiles' pairs (a thread reads ahead), runs the
   detector in batches and records each tile's core points in the journal;
7. :func:`~.outputs.write_outputs` writes ``cells.json`` (and the GeoJSON) atomically, then the
   journal is removed.

Memory holds the thumbnail (about 1/1600 of the slide's pixels at 8 µm/px), the tiles in flight
and the detections: it does not grow with the slide's area.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from baseline_algorithm.commands.options import option
from baseline_algorithm.detector import (
    BASELINE_DETECTOR,
    DetectorError,
    DetectorFailure,
    LoadedDetector,
    load_detector,
)
from baseline_algorithm.predict import read_ahead
from baseline_algorithm.runtime import DEVICES, PRECISIONS, resolve_runtime
from baseline_algorithm.slides.errors import SlideError
from baseline_algorithm.slides.fields import read_thumbnail
from baseline_algorithm.slides.journal import TileJournal, journal_folder
from baseline_algorithm.slides.outputs import write_outputs
from baseline_algorithm.slides.reader import Slide, open_slide, slide_mpp
from baseline_algorithm.slides.tiling import (
    DEFAULT_OVERLAP_PX,
    Tile,
    TileGrid,
    in_core,
    tile_pair,
    tiles_with_tissue,
    to_level0,
)
from baseline_algorithm.slides.tissue import TissueSettings, tissue_mask
from baseline_algorithm.tta import TTA_MODES
from evaluation.constants import BC, PATCH_SIZE_PX, TC
from evaluation.errors import preview
from evaluation.files import check_writable
from evaluation.pairs import Pair

__all__ = ["SlideOptions", "SlideRun", "predict_slide"]

#: Tiles between two log lines when progress goes to a log rather than a terminal.
LOG_EVERY_TILES = 25


@dataclass(frozen=True)
class SlideOptions:
    """What ``predict-slide`` takes besides the slide; each field is one option."""

    output: Path = field(
        metadata={
            "help": 'the "Multiple points" JSON of the cells, level-0 pixels, all named image_0'
        }
    )
    detector: str = option(
        BASELINE_DETECTOR,
        f"the detector factory (default {BASELINE_DETECTOR})",
        metavar="MODULE:FACTORY",
    )
    checkpoint: Path | None = option(
        None, "weights handed to the factory (default: the factory's own)"
    )
    geojson: Path | None = option(
        None, "also write the cells as GeoJSON points for QuPath (File > Import objects)"
    )
    mpp: float | None = option(
        None,
        "level-0 µm per pixel when the slide's metadata has none (or to override it)",
        metavar="UM_PER_PX",
    )
    roi: tuple[int, int, int, int] | None = option(
        None,
        "only this rectangle, level-0 pixels (x1, y1 excluded)",
        metavar=("X0", "Y0", "X1", "Y1"),
    )
    overlap: int = option(
        DEFAULT_OVERLAP_PX,
        "overlap of neighbouring cell tiles in cell-tile pixels at 0.2 µm/px "
        f"(default {DEFAULT_OVERLAP_PX}: 12.8 µm, more than a cell)",
        metavar="PX",
    )
    batch_size: int | None = option(
        None, "tiles per call, for a detector with detect_batch (default: its own)"
    )
    device: str = option(
        "auto", "handed to the factory; auto: CUDA when PyTorch sees a GPU", choices=DEVICES
    )
    precision: str = option(
        "auto",
        "arithmetic of the forward pass, handed to the factory; auto: "
        "bfloat16 on a GPU or a CPU with bfloat16 instructions, else "
        "float32",
        choices=PRECISIONS,
    )
    tta: str = option(
        "none",
        "test-time augmentation, handed to the factory as predict's --tta: "
        "flips or d4, each view one more forward pass per tile",
        choices=tuple(TTA_MODES),
    )
    progress: bool = option(
        True, f"a progress bar on a terminal, else a log line every {LOG_EVERY_TILES} tiles"
    )


@dataclass
class SlideRun:
    """What a run did (for logs, the cohort summary and the benchmarks).

    Attributes
    ----------
    cells : int
        Points written.
    tiles : int
        Tissue tiles of the run; ``resumed`` of them came from the journal.
    detector_seconds : float
        Time inside the detector's calls.
    tiles_seconds : float
        Wall time of the tile loop: reading, detecting, keeping the cores, the journal.
    seconds : float
        Wall time from opening the slide to the written outputs.
    """

    cells: int
    tiles: int
    resumed: int
    grid: tuple[int, int]
    detector_seconds: float
    tiles_seconds: float
    seconds: float


def check_outputs(options: SlideOptions, slide_path: Path) -> None:
    """Fail before any work when an output cannot be written or would replace the slide."""
    outputs = [options.output] + ([options.geojson] if options.geojson is not None else [])
    for output in outputs:
        check_writable(output, inputs=[slide_path])
    if options.geojson is not None and options.geojson.resolve() == options.output.resolve():
        raise SlideError(f"{options.output}: --output and --geojson are the same file")


def region_of_interest(
    slide: Slide, roi: tuple[int, int, int, int] | None
) -> tuple[int, int, int, int]:
    """``roi`` checked to lie inside the slide, or the whole slide."""
    width, height = slide.dimensions
    if roi is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = roi
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise SlideError(
            f"{slide.path}: ROI {preview(list(roi))} is not a non-empty rectangle "
            f"inside the slide (0 0 {width} {height} level-0 pixels)"
        )
    return tuple(int(v) for v in roi)


def plan_tiles(
    slide: Slide,
    roi: tuple[int, int, int, int],
    mpp: tuple[float, float],
    overlap: int,
    settings: TissueSettings | None = None,
) -> tuple[TileGrid, list[Tile]]:
    """The grid over ``roi`` and its tiles whose core shows tissue.

    Raises
    ------
    SlideError
        No tile shows tissue.
    """
    settings = TissueSettings() if settings is None else settings
    grid = TileGrid.for_slide(roi, mpp, overlap)
    mean_mpp = (mpp[0] + mpp[1]) / 2
    thumbnail, downsample = read_thumbnail(
        slide, settings.thumbnail_mpp, mean_mpp, settings.thumbnail_max_px
    )
    mask = tissue_mask(thumbnail, downsample * mean_mpp, settings)
    tiles = tiles_with_tissue(grid, mask, downsample)
    if not tiles:
        where = "the slide" if roi == (0, 0, *slide.dimensions) else f"ROI {list(roi)}"
        raise SlideError(
            f"{slide.path}: no tissue found in {where} (Otsu on saturation at "
            f"{downsample * mean_mpp:.1f} µm/px); nothing to detect"
        )
    return grid, tiles


def tile_points(raw) -> np.ndarray:
    """A detector's result for one pair as an array (N, 4): x, y (cell-tile pixels), class, prob.

    The detector may return an (N, 4) array or an iterable of ``(x, y, cls, probability)``.
    Raises ValueError or TypeError when the result is not rows of four numbers.
    """
    rows = raw if isinstance(raw, np.ndarray) else list(raw)
    return np.asarray(rows, dtype=float).reshape(-1, 4)


def checked_points(spec: str, tile: Tile, raw) -> np.ndarray:
    """:func:`tile_points` held to the patch rule: finite, inside the 1024 px tile, class 1 or 2,
    probability in [0, 1]."""
    where = f"detector {spec} on tile ({tile.column}, {tile.row})"
    try:
        points = tile_points(raw)
    except (TypeError, ValueError):
        raise DetectorError(
            f"{where}: returned {preview(repr(raw))}, not rows of (x, y, cls, probability)"
        ) from None
    bad = ~np.isfinite(points).all(axis=1)
    bad |= (points[:, 0] < -0.5) | (points[:, 0] >= PATCH_SIZE_PX - 0.5)
    bad |= (points[:, 1] < -0.5) | (points[:, 1] >= PATCH_SIZE_PX - 0.5)
    bad |= ~np.isin(points[:, 2], (BC, TC))
    bad |= (points[:, 3] < 0) | (points[:, 3] > 1)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise DetectorError(
            f"{where}: points[{index}] = {preview(points[index].tolist())}: "
            f"expected x, y in 0..{PATCH_SIZE_PX - 1}, class {BC} or {TC}, "
            "probability in [0, 1]"
        )
    return points


def core_points(grid: TileGrid, tile: Tile, points: np.ndarray) -> np.ndarray:
    """The points (N, 4) of ``tile`` in level-0 pixels, only those in its core."""
    xy = to_level0(tile, points[:, :2])
    keep = in_core(grid.core(tile), xy)
    return np.column_stack([xy[keep], points[keep, 2:]])


def detect_batch(detector: LoadedDetector, batch: list[tuple[Tile, Pair]]) -> list:
    """The detector's raw results for a batch; a failure names the tile it failed on.

    A batch that fails is run again pair by pair, so that the message names one tile.
    """
    try:
        return detector.detect_pairs([pair for _, pair in batch])
    except (DetectorFailure, DetectorError) as error:
        if len(batch) > 1:
            return [detect_batch(detector, [item])[0] for item in batch]
        tile = batch[0][0]
        reason = str(error).split(": ", 1)[-1]
        failure = SlideError(
            f"detector {detector.spec} failed on tile ({tile.column}, "
            f"{tile.row}) at level-0 ({tile.box[0]:g}, {tile.box[1]:g}): "
            f"{reason}"
        )
        failure.participant_traceback = getattr(error, "participant_traceback", "")
        raise failure from None


def detect_tiles(
    slide: Slide,
    grid: TileGrid,
    tiles: list[Tile],
    mpp: tuple[float, float],
    detector: LoadedDetector,
    journal: TileJournal,
    *,
    progress: bool,
) -> tuple[float, float]:
    """Run the detector on every tile not in the journal.

    Returns
    -------
    (inside, total) : seconds in the detector's calls, seconds of the whole loop
    """
    remaining = [tile for tile in tiles if (tile.column, tile.row) not in journal.done]
    pairs: Iterator[tuple[Tile, Pair]] = (
        (tile, tile_pair(slide, tile, mpp, f"image_{index}"))
        for index, tile in enumerate(remaining)
    )
    bar = progress and sys.stderr.isatty()
    inside = 0.0
    finished = len(tiles) - len(remaining)
    started = time.perf_counter()
    with (
        contextlib.closing(read_ahead(pairs, detector.batch_size)) as stream,
        tqdm(
            total=len(tiles), initial=finished, desc="predict-slide", unit="tile", disable=not bar
        ) as meter,
    ):
        while batch := list(itertools.islice(stream, detector.batch_size)):
            before = time.perf_counter()
            results = detect_batch(detector, batch)
            inside += time.perf_counter() - before
            for (tile, _), raw in zip(batch, results):
                journal.record(
                    tile.column,
                    tile.row,
                    core_points(grid, tile, checked_points(detector.spec, tile, raw)),
                )
            meter.update(len(batch))
            previous, finished = finished, finished + len(batch)
            if progress and not bar and finished // LOG_EVERY_TILES > previous // LOG_EVERY_TILES:
                log(f"{finished}/{len(tiles)} tiles, {time.perf_counter() - started:.1f} s")
    return inside, time.perf_counter() - started


def run_description(slide: Slide, options: SlideOptions, mpp, roi, precision: str | None) -> dict:
    """What makes two runs the same run, for the journal (device and batch size do not)."""
    stat = slide.path.stat()
    checkpoint = options.checkpoint
    return {
        "slide": str(slide.path.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "detector": options.detector,
        "checkpoint": None if checkpoint is None else str(Path(checkpoint).resolve()),
        "mpp": list(mpp),
        "roi": list(roi),
        "overlap": options.overlap,
        "precision": precision,
        "tta": options.tta,
        "tissue": asdict(TissueSettings()),
    }


def predict_slide(slide_path: str | os.PathLike, options: SlideOptions) -> SlideRun:
    """Detect the cells of a slide and write ``options.output`` (and ``options.geojson``).

    Raises
    ------
    SlideError
        An unreadable slide, an unknown resolution, an ROI outside the slide, no tissue, a
        detector that fails on a tile (the message names it), an output that cannot be written.
    DetectorError
        The detector cannot be loaded or returned something that is not points.
    """
    started = time.perf_counter()
    slide_path = Path(slide_path)
    if options.batch_size is not None and options.batch_size < 1:
        raise SlideError(f"batch size {options.batch_size} must be at least 1")
    check_outputs(options, slide_path)
    runtime = resolve_runtime(options.device, options.precision)
    with open_slide(slide_path) as slide:
        mpp = slide_mpp(slide, options.mpp)
        roi = region_of_interest(slide, options.roi)
        grid, tiles = plan_tiles(slide, roi, mpp, options.overlap)
        detector = load_detector(
            options.detector,
            device=runtime.device,
            checkpoint=options.checkpoint,
            batch_size=options.batch_size,
            precision=runtime.precision,
            tta=options.tta,
        )
        journal = TileJournal(
            journal_folder(options.output),
            run_description(slide, options, mpp, roi, detector.precision),
        )
        resumed = len(journal.done)
        log(
            f"{slide_path}: {slide.dimensions[0]} x {slide.dimensions[1]} px at "
            f"{mpp[0]:g} x {mpp[1]:g} µm/px, {len(tiles)} of {grid.shape[0] * grid.shape[1]} "
            f"tiles show tissue"
            + (f", {resumed} done by an earlier run" if resumed else "")
            + f"; detector {detector.description()}, {runtime}, batch {detector.batch_size}"
        )
        try:
            inside, loop = detect_tiles(
                slide, grid, tiles, mpp, detector, journal, progress=options.progress
            )
        finally:
            journal.close()
        points = journal.points()
        write_outputs(points, options.output, options.geojson)
        journal.remove()
    run = SlideRun(
        len(points), len(tiles), resumed, grid.shape, inside, loop, time.perf_counter() - started
    )
    log(
        f"wrote {run.cells} cells of {run.tiles} tiles to {options.output} in {run.seconds:.1f} s "
        f"({inside:.1f} s in the detector)"
    )
    return run


def log(message: str) -> None:
    print(f"predict-slide: {message}", file=sys.stderr, flush=True)

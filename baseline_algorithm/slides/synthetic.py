"""A synthetic slide: a pyramidal tiled TIFF at 0.2 µm/px and its ground truth.

One scene of the synthetic generator (:mod:`baseline_algorithm.data.synthetic`) covers the
slide's tissue rectangle, so tissue regions, cancer areas and nuclei run on across tiles; every
tile of every level is rendered from that scene at the level's own pixel size (the pyramid agrees
with itself as the patches of a pair do). Outside the tissue rectangle the slide is white glass,
so a large slide with a small tissue rectangle costs little to write and to read.

The TIFF: BigTIFF, RGB, tiles of ``TILE_PX``, zlib, level 0 at ``CELL_MPP`` µm/px with its
resolution in the tags (pixels per centimetre), then halved levels down to one tile as
reduced-resolution pages (NewSubfileType 1) of the main chain, the layout both tifffile and
OpenSlide ("generic-tiff") read as a pyramid.
The ground truth: a "Multiple points" document with ``num_images`` 1, every nucleus whose centre
lies in the tissue rectangle at ``[x, y, class]`` in level-0 pixels, named ``image_0``.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm import tqdm

from baseline_algorithm.data.synthetic import SyntheticConfig, make_scene, render_patch
from baseline_algorithm.slides.errors import SlideError
from baseline_algorithm.slides.reader import WHITE
from evaluation.constants import CELL_MPP, ORGANS
from evaluation.errors import preview
from evaluation.files import write_json_atomic
from evaluation.multiple_points import points_document
from evaluation.points import PointSet

__all__ = ["ground_truth_path", "synthesize_slide"]

TILE_PX = 512
#: Largest side accepted, level-0 pixels (a 2**20 px square is 210 mm at 0.2 µm/px).
MAX_SIDE_PX = 2**20


def ground_truth_path(slide: Path) -> Path:
    """Where the ground truth of ``slide`` goes by default: ``NAME.gt.json`` beside it."""
    return slide.with_name(slide.name.split(".")[0] + ".gt.json")


def _levels(width: int, height: int) -> list[int]:
    """Downsamples of the pyramid: 1, 2, 4, ... until the level fits one tile."""
    downsamples = [1]
    while max(width, height) / downsamples[-1] > TILE_PX:
        downsamples.append(downsamples[-1] * 2)
    return downsamples


def _tiles(
    scene, tissue: tuple[int, int, int, int], width: int, height: int, downsample: int, seed: int
) -> Iterator[np.ndarray]:
    """The tiles of one level, row by row, each (TILE_PX, TILE_PX, 3) uint8."""
    pixel_um = CELL_MPP * downsample
    x0, y0, x1, y1 = tissue
    for top in range(0, -(-height // downsample), TILE_PX):
        for left in range(0, -(-width // downsample), TILE_PX):
            # Level-0 edges of each pixel column and row of the tile.
            columns = (left + np.arange(TILE_PX)) * downsample
            rows = (top + np.arange(TILE_PX)) * downsample
            inside_x = (columns + downsample > x0) & (columns < x1)
            inside_y = (rows + downsample > y0) & (rows < y1)
            if not inside_x.any() or not inside_y.any():
                yield np.full((TILE_PX, TILE_PX, 3), WHITE, dtype=np.uint8)
                continue
            origin_um = ((left * downsample - x0) * CELL_MPP, (top * downsample - y0) * CELL_MPP)
            rng = np.random.default_rng([seed, downsample, top, left])
            tile = render_patch(scene, origin_um, pixel_um, TILE_PX, rng)
            tile[~inside_y] = WHITE
            tile[:, ~inside_x] = WHITE
            yield tile


def _ground_truth(scene, tissue: tuple[int, int, int, int]) -> PointSet:
    """Nuclei whose centre lies in the tissue rectangle, level-0 pixels, sorted by (y, x)."""
    x0, y0, x1, y1 = tissue
    pixel = np.floor(scene.nuclei.xy / CELL_MPP).astype(np.int64) + np.array([x0, y0])
    inside = (pixel[:, 0] >= x0) & (pixel[:, 0] < x1) & (pixel[:, 1] >= y0) & (pixel[:, 1] < y1)
    pixel, label = pixel[inside], scene.nuclei.label[inside]
    order = np.lexsort((pixel[:, 0], pixel[:, 1]))
    count = len(order)
    return PointSet(
        np.zeros(count, np.int64), pixel[order], label[order].astype(np.int64), np.ones(count)
    )


def synthesize_slide(
    out: str | os.PathLike,
    size: tuple[int, int],
    *,
    seed: int = 0,
    tissue: tuple[int, int, int, int] | None = None,
    ground_truth: str | os.PathLike | None = None,
    progress: bool = True,
) -> tuple[Path, Path]:
    """Write a synthetic slide and its ground truth.

    Parameters
    ----------
    out : path
        The TIFF to write (atomically: a temporary file beside it, renamed when complete).
    size : (width, height)
        Level-0 pixels at 0.2 µm/px.
    seed : int
        The slide depends only on ``size``, ``seed`` and ``tissue``.
    tissue : (x0, y0, x1, y1), optional
        Level-0 rectangle holding the tissue (default: the whole slide); glass elsewhere.
    ground_truth : path, optional
        Default :func:`ground_truth_path`.

    Returns
    -------
    (slide, ground truth) : Paths
    """
    out = Path(out)
    width, height = size
    if not (TILE_PX <= width <= MAX_SIDE_PX and TILE_PX <= height <= MAX_SIDE_PX):
        raise SlideError(
            f"size {width} x {height}: each side must be {TILE_PX} to {MAX_SIDE_PX} pixels"
        )
    tissue = (0, 0, width, height) if tissue is None else tuple(int(v) for v in tissue)
    tx0, ty0, tx1, ty1 = tissue
    if not (0 <= tx0 < tx1 <= width and 0 <= ty0 < ty1 <= height):
        raise SlideError(
            f"tissue rectangle {preview(list(tissue))}: must lie inside the slide "
            f"(0 0 {width} {height})"
        )
    ground_truth = ground_truth_path(out) if ground_truth is None else Path(ground_truth)
    if not out.parent.is_dir():
        raise SlideError(f"{out}: cannot write: folder {out.parent} does not exist")

    scene_rng, organ_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed]).spawn(2)
    )
    organ = ORGANS[int(organ_rng.integers(len(ORGANS)))]
    extent_um = max(tx1 - tx0, ty1 - ty0) * CELL_MPP
    scene = make_scene(scene_rng, SyntheticConfig(), organ, extent_um=extent_um)

    import tifffile

    downsamples = _levels(width, height)
    total = sum(
        math.ceil(math.ceil(height / d) / TILE_PX) * math.ceil(math.ceil(width / d) / TILE_PX)
        for d in downsamples
    )
    descriptor, temporary = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(descriptor)
    try:
        with (
            tifffile.TiffWriter(temporary, bigtiff=True) as tif,
            tqdm(total=total, desc="synthesize-slide", unit="tile", disable=not progress) as meter,
        ):
            for level, downsample in enumerate(downsamples):
                shape = (-(-height // downsample), -(-width // downsample), 3)
                resolution = 1e4 / (CELL_MPP * downsample)  # pixels per centimetre
                tiles = _tiles(scene, tissue, width, height, downsample, seed)
                tif.write(
                    _counted(tiles, meter),
                    shape=shape,
                    dtype=np.uint8,
                    tile=(TILE_PX, TILE_PX),
                    photometric="rgb",
                    compression="zlib",
                    metadata=None,
                    resolution=(resolution, resolution),
                    resolutionunit="CENTIMETER",
                    subfiletype=1 if level else 0,
                )
        os.replace(temporary, out)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    write_json_atomic(ground_truth, points_document(_ground_truth(scene, tissue), num_images=1))
    return out, ground_truth


def _counted(tiles: Iterator[np.ndarray], meter) -> Iterator[np.ndarray]:
    for tile in tiles:
        yield tile
        meter.update()

"""Cell tiles as the platform cuts them, their cores, and the pair of each tile.

A cell tile is ``PATCH_SIZE_PX`` (1024) pixels at ``CELL_MPP`` (0.2 µm/px): a 204.8 µm square.
Its tissue tile is 1024 pixels at ``TISSUE_MPP`` (0.8 µm/px), the same centre and 4 times the
side, so the cell tile is the box ``(384, 384, 640, 640)`` of the tissue tile. Neighbouring cell
tiles overlap by ``overlap`` cell-tile pixels; the overlap is split down its middle, and each tile
keeps only the detections in its *core*: the cores of a grid share edges and cover the whole
region, so every cell belongs to exactly one tile.

All positions here are continuous level-0 pixel coordinates (pixel ``k`` covers ``[k, k + 1)``)
unless named ``_tile``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from baseline_algorithm.slides.errors import SlideError
from baseline_algorithm.slides.fields import read_field
from baseline_algorithm.slides.reader import Slide
from evaluation.constants import CELL_MPP, FIELD_OF_VIEW_RATIO, PATCH_SIZE_PX, TISSUE_MPP
from evaluation.pairs import Pair, cell_box_in_tissue

__all__ = ["Tile", "TileGrid", "tile_pair"]

#: The default overlap of neighbouring cell tiles in cell-tile pixels: 12.8 µm, more than a cell.
DEFAULT_OVERLAP_PX = 64


@dataclass(frozen=True)
class Tile:
    """One cell tile: its column and row in the grid and its level-0 box."""

    column: int
    row: int
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class TileGrid:
    """The cell tiles over a region of interest.

    Attributes
    ----------
    roi : (x0, y0, x1, y1)
        Level-0 pixels; the first tile starts at ``(x0, y0)``.
    side : (float, float)
        Side of a cell tile in level-0 pixels (x, y): 204.8 µm over the level-0 pixel size.
    overlap : (float, float)
        Overlap of neighbouring tiles in level-0 pixels.
    """

    roi: tuple[int, int, int, int]
    side: tuple[float, float]
    overlap: tuple[float, float]

    @classmethod
    def for_slide(
        cls, roi: tuple[int, int, int, int], mpp: tuple[float, float], overlap_px: int
    ) -> TileGrid:
        """The grid of a slide at level-0 resolution ``mpp`` (x, y µm/px)."""
        if not 0 <= overlap_px <= PATCH_SIZE_PX // 2:
            raise SlideError(
                f"overlap {overlap_px} px: expected 0 to {PATCH_SIZE_PX // 2} cell-tile pixels"
            )
        scale = tuple(CELL_MPP / m for m in mpp)  # level-0 pixels per cell-tile pixel
        return cls(
            roi, tuple(PATCH_SIZE_PX * s for s in scale), tuple(overlap_px * s for s in scale)
        )

    @property
    def stride(self) -> tuple[float, float]:
        return self.side[0] - self.overlap[0], self.side[1] - self.overlap[1]

    @property
    def shape(self) -> tuple[int, int]:
        """(columns, rows)."""
        return tuple(
            1 if extent <= side else math.ceil((extent - side) / stride) + 1
            for extent, side, stride in zip(
                (self.roi[2] - self.roi[0], self.roi[3] - self.roi[1]), self.side, self.stride
            )
        )

    def tile(self, column: int, row: int) -> Tile:
        x0 = self.roi[0] + column * self.stride[0]
        y0 = self.roi[1] + row * self.stride[1]
        return Tile(column, row, (x0, y0, x0 + self.side[0], y0 + self.side[1]))

    def tiles(self) -> list[Tile]:
        """Every tile, row by row."""
        columns, rows = self.shape
        return [self.tile(c, r) for r in range(rows) for c in range(columns)]

    def core(self, tile: Tile) -> tuple[float, float, float, float]:
        """The part of the region of interest whose detections ``tile`` keeps.

        Inner edges lie in the middle of the overlap with the neighbour; outer edges are those
        of the region of interest.
        """
        columns, rows = self.shape
        edges = []
        for index, count, origin, end, stride, overlap in (
            (tile.column, columns, self.roi[0], self.roi[2], self.stride[0], self.overlap[0]),
            (tile.row, rows, self.roi[1], self.roi[3], self.stride[1], self.overlap[1]),
        ):
            low = origin if index == 0 else origin + index * stride + overlap / 2
            high = end if index == count - 1 else origin + (index + 1) * stride + overlap / 2
            edges.append((low, high))
        (x0, x1), (y0, y1) = edges
        return x0, y0, x1, y1


def to_level0(tile: Tile, xy_tile: np.ndarray) -> np.ndarray:
    """Cell-tile pixel indices (N, 2) -> level-0 pixel indices (N, 2) int64, of the centres.

    A point at cell-tile pixel ``x`` stands for that pixel's centre, ``x + 0.5``; the level-0 pixel
    containing the centre is ``floor(x0 + (x + 0.5) * scale)``.
    """
    x0, y0, x1, y1 = tile.box
    scale = np.array([(x1 - x0) / PATCH_SIZE_PX, (y1 - y0) / PATCH_SIZE_PX])
    return np.floor(np.array([x0, y0]) + (np.asarray(xy_tile, float) + 0.5) * scale).astype(
        np.int64
    )


def in_core(core: tuple[float, float, float, float], xy: np.ndarray) -> np.ndarray:
    """Which level-0 pixels (N, 2) lie in ``core``: left and top edges in, right and bottom out."""
    x0, y0, x1, y1 = core
    return (xy[:, 0] >= x0) & (xy[:, 0] < x1) & (xy[:, 1] >= y0) & (xy[:, 1] < y1)


def tissue_box(tile: Tile) -> tuple[float, float, float, float]:
    """The tissue tile's level-0 box: same centre, ``FIELD_OF_VIEW_RATIO`` times the side."""
    x0, y0, x1, y1 = tile.box
    half_x = (x1 - x0) * FIELD_OF_VIEW_RATIO / 2
    half_y = (y1 - y0) * FIELD_OF_VIEW_RATIO / 2
    centre_x, centre_y = (x0 + x1) / 2, (y0 + y1) / 2
    return centre_x - half_x, centre_y - half_y, centre_x + half_x, centre_y + half_y


def _box_entry(box: tuple[float, float, float, float], mpp: float) -> dict:
    """A metadata box as the release writes it: whole numbers where the box falls on pixels."""
    values = [int(v) if float(v).is_integer() else float(v) for v in box]
    return {
        "x_start": values[0],
        "y_start": values[1],
        "x_end": values[2],
        "y_end": values[3],
        "resized_mpp_x": mpp,
        "resized_mpp_y": mpp,
    }


def tile_pair(slide: Slide, tile: Tile, mpp: tuple[float, float], name: str) -> Pair:
    """The pair the platform would give for ``tile``: cell tile, tissue tile and metadata.

    ``meta`` has the level-0 resolution (``mpp_x``, ``mpp_y``), the cell tile's centre at the
    tissue tile's centre (``patch_x_offset`` = ``patch_y_offset`` = 0.5) and both boxes in level-0
    pixels; there are no annotations.
    """
    context = tissue_box(tile)
    meta = {
        "slide_name": slide.path.name,
        "cell": _box_entry(tile.box, CELL_MPP),
        "tissue": _box_entry(context, TISSUE_MPP),
        "patch_x_offset": 0.5,
        "patch_y_offset": 0.5,
        "mpp_x": mpp[0],
        "mpp_y": mpp[1],
    }
    return Pair(
        name=name,
        cell_image=read_field(slide, tile.box, PATCH_SIZE_PX),
        tissue_image=read_field(slide, context, PATCH_SIZE_PX),
        cell_points=np.zeros((0, 3), dtype=np.int64),
        tissue_mask=None,
        meta=meta,
        cell_box=cell_box_in_tissue(meta, PATCH_SIZE_PX, PATCH_SIZE_PX),
    )


def tiles_with_tissue(grid: TileGrid, mask: np.ndarray, downsample: float) -> list[Tile]:
    """The tiles whose core touches tissue in ``mask`` (a thumbnail ``downsample`` times coarser).

    Only detections in a core are kept, so a tile whose core is all glass has nothing to give.
    The core is widened by one thumbnail pixel on each side against the mask's coarseness.
    """
    height, width = mask.shape
    kept = []
    for tile in grid.tiles():
        x0, y0, x1, y1 = grid.core(tile)
        left = max(0, math.floor(x0 / downsample) - 1)
        top = max(0, math.floor(y0 / downsample) - 1)
        right = min(width, math.ceil(x1 / downsample) + 1)
        bottom = min(height, math.ceil(y1 / downsample) + 1)
        if right > left and bottom > top and mask[top:bottom, left:right].any():
            kept.append(tile)
    return kept

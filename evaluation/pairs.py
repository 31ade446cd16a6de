"""The unit every reader yields: one cell patch, its tissue patch, annotations and metadata."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from evaluation.constants import FIELD_OF_VIEW_RATIO, TISSUE_UNKNOWN
from evaluation.metadata import patch_offsets

__all__ = ["Pair", "cell_box_in_tissue", "cell_points_in_tissue", "tissue_label_at_cells"]


@dataclass
class Pair:
    """One OCELOT sample: a cell patch inside a tissue patch of 4x its field of view.

    Attributes
    ----------
    name : str
        ``"001"`` (release layout) or ``"image_0"`` (Grand Challenge input).
    cell_image : ndarray of uint8, shape (H, W, 3)
        Cell patch (0.2 µm/px at the full 1024 px size).
    tissue_image : ndarray of uint8, shape (Ht, Wt, 3)
        Tissue patch, 4x the field of view of the cell patch (0.8 µm/px at 1024 px).
    cell_points : ndarray of int64, shape (N, 3)
        Rows ``[x, y, label]`` in cell-patch pixels, label 1 = BC, 2 = TC; shape (0, 3) if unknown.
    tissue_mask : ndarray of uint8, shape (Ht, Wt), or None
        1 background, 2 cancer area, 255 unknown; None if not annotated.
    meta : dict
        The metadata entry (release ``sample_pairs`` entry or Grand Challenge list entry).
    cell_box : tuple of 4 floats
        ``(x0, y0, x1, y1)`` of the cell patch in tissue-patch pixels (continuous coordinates:
        pixel ``i`` covers ``[i, i + 1)``).
    """

    name: str
    cell_image: np.ndarray
    tissue_image: np.ndarray
    cell_points: np.ndarray
    tissue_mask: np.ndarray | None
    meta: dict
    cell_box: tuple[float, float, float, float]


def cell_box_in_tissue(
    meta: Mapping, tissue_height: int, tissue_width: int
) -> tuple[float, float, float, float]:
    """Box of the cell patch in tissue-patch pixels.

    Parameters
    ----------
    meta : mapping
        Metadata entry with ``patch_x_offset`` and ``patch_y_offset``: the cell patch centre as a
        fraction of the tissue patch width and height.
    tissue_height, tissue_width : int
        Tissue patch size in pixels.

    Returns
    -------
    (x0, y0, x1, y1) : tuple of float
        Continuous tissue-pixel coordinates; the centre is
        ``(patch_x_offset * tissue_width, patch_y_offset * tissue_height)`` and the side is a
        quarter of the tissue side.
    """
    offset_x, offset_y = patch_offsets(meta)
    centre_x, centre_y = offset_x * tissue_width, offset_y * tissue_height
    half_w = tissue_width / FIELD_OF_VIEW_RATIO / 2
    half_h = tissue_height / FIELD_OF_VIEW_RATIO / 2
    return (centre_x - half_w, centre_y - half_h, centre_x + half_w, centre_y + half_h)


def cell_points_in_tissue(
    xy: np.ndarray, cell_box: tuple[float, float, float, float], cell_shape: tuple[int, int]
) -> np.ndarray:
    """Map cell-patch pixel coordinates to continuous tissue-patch coordinates.

    Parameters
    ----------
    xy : ndarray, shape (N, 2)
        ``(x, y)`` pixel indices in the cell patch.
    cell_box : tuple of 4 floats
        The cell patch box in tissue pixels, from :func:`cell_box_in_tissue`.
    cell_shape : (H, W)
        Cell patch size in pixels.

    Returns
    -------
    ndarray of float64, shape (N, 2)
        ``(x, y)`` of the pixel centres in tissue pixels; ``np.floor`` gives the tissue pixel index.
    """
    x0, y0, x1, y1 = cell_box
    scale = np.array([(x1 - x0) / cell_shape[1], (y1 - y0) / cell_shape[0]])
    return np.array([x0, y0]) + (np.asarray(xy, dtype=np.float64) + 0.5) * scale


def tissue_label_at_cells(
    tissue_mask: np.ndarray,
    xy: np.ndarray,
    cell_box: tuple[float, float, float, float],
    cell_shape: tuple[int, int],
) -> np.ndarray:
    """Tissue-mask value under each cell point (255 where the point maps outside the mask).

    Parameters
    ----------
    tissue_mask : ndarray of uint8, shape (Ht, Wt)
    xy : ndarray, shape (N, 2)
        Cell points in cell-patch pixels.
    cell_box, cell_shape
        As in :func:`cell_points_in_tissue`.

    Returns
    -------
    ndarray of uint8, shape (N,)
    """
    tissue_xy = np.floor(cell_points_in_tissue(xy, cell_box, cell_shape)).astype(np.int64)
    height, width = tissue_mask.shape
    inside = (
        (tissue_xy[:, 0] >= 0)
        & (tissue_xy[:, 0] < width)
        & (tissue_xy[:, 1] >= 0)
        & (tissue_xy[:, 1] < height)
    )
    labels = np.full(len(tissue_xy), TISSUE_UNKNOWN, dtype=np.uint8)
    labels[inside] = tissue_mask[tissue_xy[inside, 1], tissue_xy[inside, 0]]
    return labels

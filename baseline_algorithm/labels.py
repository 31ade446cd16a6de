"""Training targets: cell disks and tissue classes, as the paper renders them.

Cell points become disks of radius 1.4 micrometres (7 px at the 0.2 um/px of a 1024-px cell patch)
filled with the cell class; tissue annotations (1 background, 2 cancer area, 255 unknown) become
class indices 0 / 1 with unknown kept as :data:`~baseline_algorithm.model.TISSUE_IGNORE_INDEX`.
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.draw import disk

from baseline_algorithm.model import TISSUE_IGNORE_INDEX
from evaluation.constants import (
    BC,
    CELL_MPP,
    PATCH_SIZE_PX,
    TC,
    TISSUE_BACKGROUND,
    TISSUE_CANCER,
    TISSUE_UNKNOWN,
)

__all__ = [
    "CELL_DISK_RADIUS_UM",
    "TISSUE_ANNOTATION_VALUES",
    "cell_label_map",
    "crop_labels_to_box",
    "disk_radius_px",
    "tissue_target",
]

CELL_DISK_RADIUS_UM = 1.4
"""Radius of the cell disks in micrometres (7 px at 0.2 um/px)."""

TISSUE_ANNOTATION_VALUES = {
    TISSUE_BACKGROUND: 0,
    TISSUE_CANCER: 1,
    TISSUE_UNKNOWN: TISSUE_IGNORE_INDEX,
}
"""Tissue annotation value (release PNG) -> target (0 background, 1 cancer area, 255 ignored)."""


def disk_radius_px(patch_size: int) -> float:
    """Disk radius in pixels for a cell patch of ``patch_size`` px (7 px at 1024 px, 0.2 um/px)."""
    # round() drops the float residue of 1.4 / 0.2, so the radius is 7 px exactly at 1024 px.
    return round(CELL_DISK_RADIUS_UM / CELL_MPP, 9) * patch_size / PATCH_SIZE_PX


def cell_label_map(points: np.ndarray, shape: tuple[int, int], radius_px: float) -> np.ndarray:
    """Render cell points as filled disks.

    Parameters
    ----------
    points : ndarray, shape (N, 3), int
        Rows ``[x, y, label]`` in pixels of the cell patch, label 1 (BC) or 2 (TC).
    shape : (int, int)
        ``(height, width)`` of the cell patch in pixels.
    radius_px : float
        Disk radius in pixels; a pixel belongs to a disk when its centre is closer than this.

    Returns
    -------
    ndarray, shape ``shape``, uint8
        0 background, else the label of the disk; where disks overlap the later point wins.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points has shape {points.shape}, expected (N, 3) rows [x, y, label]")
    bad = ~np.isin(points[:, 2], (BC, TC))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"points[{row}] has label {points[row, 2]}, expected 1 (BC) or 2 (TC)")
    labels = np.zeros(shape, dtype=np.uint8)
    for x, y, label in points:
        rows, cols = disk((y, x), radius_px, shape=shape)
        labels[rows, cols] = label
    return labels


def tissue_target(mask: np.ndarray) -> np.ndarray:
    """Map a tissue annotation (1, 2, 255) to targets (0, 1, 255 = ignored), shape kept, int64."""
    mask = np.asarray(mask)
    unexpected = ~np.isin(mask, list(TISSUE_ANNOTATION_VALUES))
    if unexpected.any():
        row, col = np.argwhere(unexpected)[0]
        raise ValueError(
            f"tissue mask pixel (x={col}, y={row}) has value {mask[row, col]}, expected 1, 2 or 255"
        )
    lookup = np.zeros(256, dtype=np.int64)
    for value, target in TISSUE_ANNOTATION_VALUES.items():
        lookup[value] = target
    return lookup[mask]


def crop_labels_to_box(
    labels: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]
) -> torch.Tensor:
    """Nearest-neighbour crop of each label map to its box, resampled to ``size``.

    Parameters
    ----------
    labels : Tensor, shape (B, H, W), int
        Label maps (e.g. tissue targets, 255 = ignored: labels are never mixed).
    boxes : Tensor, shape (B, 4)
        ``(x0, y0, x1, y1)`` in pixels of ``labels`` (pixel edges at integers).
    size : (int, int)
        ``(height, width)`` of the result.

    Returns
    -------
    Tensor, shape (B, height, width), the dtype of ``labels``
        Output pixel ``(r, c)`` takes the label of the pixel under its centre in the box.
    """
    height, width = size
    boxes = boxes.to(device=labels.device, dtype=torch.float64)
    steps_y = (torch.arange(height, dtype=torch.float64, device=labels.device) + 0.5) / height
    steps_x = (torch.arange(width, dtype=torch.float64, device=labels.device) + 0.5) / width
    rows = boxes[:, 1, None] + steps_y[None] * (boxes[:, 3] - boxes[:, 1])[:, None]
    cols = boxes[:, 0, None] + steps_x[None] * (boxes[:, 2] - boxes[:, 0])[:, None]
    rows = rows.floor().long().clamp(0, labels.shape[-2] - 1)
    cols = cols.floor().long().clamp(0, labels.shape[-1] - 1)
    batch = torch.arange(labels.shape[0], device=labels.device)[:, None, None]
    return labels[batch, rows[:, :, None], cols[:, None, :]]

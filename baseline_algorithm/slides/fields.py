"""Images of a slide at a chosen pixel size: a field of view for a tile, or a whole thumbnail.

Both read from the coarsest level that is still at least as fine as asked, then resample; the
platform's patches are cut the same way (a region of the slide resized to the patch size).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import downscale_local_mean

from baseline_algorithm.slides.reader import Slide, best_level

__all__ = ["read_field", "read_thumbnail"]

#: Side of the blocks a thumbnail is read in, in pixels of the level read: bounds its memory.
THUMBNAIL_BLOCK_PX = 2048


def read_field(slide: Slide, box: tuple[float, float, float, float], size: int) -> np.ndarray:
    """The level-0 box ``(x0, y0, x1, y1)`` as a ``size`` x ``size`` image, white outside the slide.

    Output pixel ``(i, j)`` samples the slide at level-0 position
    ``(x0 + (j + 0.5) * step_x, y0 + (i + 0.5) * step_y)``, ``step = (x1 - x0) / size``
    (continuous coordinates: level-0 pixel ``k`` covers ``[k, k + 1)``). A box that falls on whole
    pixels of a level at the same pixel size is copied; otherwise the level is smoothed against
    aliasing (skimage's rule, sigma = (factor - 1) / 2) and interpolated bilinearly.

    Returns
    -------
    ndarray of uint8, shape (size, size, 3)
    """
    x0, y0, x1, y1 = box
    step = ((x1 - x0) / size, (y1 - y0) / size)
    level = best_level(slide, step)
    down_x, down_y = slide.levels[level].downsample
    # Position of output pixel 0's centre in the level's pixel-index coordinates, and the step.
    start = np.array(
        [y0 / down_y + step[1] / down_y / 2 - 0.5, x0 / down_x + step[0] / down_x / 2 - 0.5]
    )
    scale = np.array([step[1] / down_y, step[0] / down_x])
    corner = start - scale / 2 + 0.5  # top-left edge of the box, level pixels
    if np.allclose(scale, 1) and np.allclose(corner, np.round(corner)):
        top, left = (int(v) for v in np.round(corner))
        return slide.read_region(level, left, top, size, size)
    sigma = np.maximum(0.0, (scale - 1) / 2)
    margin = int(math.ceil(4 * sigma.max())) + 2
    top, left = (int(math.floor(v)) - margin for v in start)
    bottom, right = (int(math.ceil(v)) + margin + 1 for v in start + scale * (size - 1))
    region = slide.read_region(level, left, top, right - left, bottom - top)
    out = np.empty((size, size, 3), dtype=np.uint8)
    for channel in range(3):
        plane = region[..., channel].astype(np.float32)
        if sigma.any():
            plane = ndi.gaussian_filter(plane, sigma, mode="nearest")
        sampled = ndi.affine_transform(
            plane,
            scale,
            offset=start - (top, left),
            output_shape=(size, size),
            order=1,
            mode="nearest",
        )
        out[..., channel] = np.clip(np.round(sampled), 0, 255)
    return out


def read_thumbnail(
    slide: Slide, target_mpp: float, level0_mpp: float, max_side_px: int | None = None
) -> tuple[np.ndarray, float]:
    """The whole slide at about ``target_mpp`` µm per pixel, read block by block.

    The pixel size is the coarsest whole multiple of a level's that is not coarser than
    ``target_mpp``, unless the image would then be longer than ``max_side_px``: a large slide's
    thumbnail is coarser instead, so that its memory does not grow with the slide's area.

    Parameters
    ----------
    target_mpp : float
        Wanted pixel size, µm.
    level0_mpp : float
        Level-0 pixel size, µm (the mean of x and y).
    max_side_px : int, optional
        Longest side of the thumbnail, pixels.

    Returns
    -------
    image : ndarray of uint8, shape (H, W, 3)
    downsample : float
        Level-0 pixels per thumbnail pixel.
    """
    wanted = max(1.0, target_mpp / level0_mpp)
    if max_side_px is not None:
        wanted = max(wanted, max(slide.dimensions) / max_side_px)
    level = best_level(slide, (wanted, wanted))
    info = slide.levels[level]
    factor = max(1, int(wanted / max(info.downsample)))
    while max_side_px is not None and max(info.width, info.height) / factor > max_side_px:
        factor += 1
    block = THUMBNAIL_BLOCK_PX // factor * factor
    rows = []
    for top in range(0, info.height, block):
        row = []
        for left in range(0, info.width, block):
            pixels = slide.read_region(
                level, left, top, min(block, info.width - left), min(block, info.height - top)
            )
            if factor > 1:
                pixels = downscale_local_mean(pixels, (factor, factor, 1), cval=255)
            row.append(np.asarray(pixels, dtype=np.uint8))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0), info.downsample[0] * factor

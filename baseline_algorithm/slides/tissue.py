"""Where the tissue is: Otsu on the saturation of a low-resolution image, then morphology.

Glass is white or grey (low saturation), stained tissue is pink and purple. The Otsu threshold
splits the two; a floor keeps a slide without tissue (only glass, dust and noise) from being split
inside its noise. A closing fills the gaps between nuclei and fibres, small specks are dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.filters import threshold_otsu
from skimage.morphology import closing, disk, remove_small_holes, remove_small_objects

__all__ = ["TissueSettings", "tissue_mask"]


@dataclass(frozen=True)
class TissueSettings:
    """Lengths in micrometres; areas in square micrometres.

    Attributes
    ----------
    thumbnail_mpp : float
        Pixel size of the image the mask is computed on, unless that image would be longer than
        ``thumbnail_max_px``.
    thumbnail_max_px : int
        Longest side of that image: a larger slide's is coarser, so that the mask's memory does
        not grow with the slide's area (20 µm/px for a 200,000 px slide at 0.2 µm/px, still 10
        pixels per cell tile).
    min_saturation : float
        Saturation (0..1) below which a pixel is glass whatever Otsu says.
    closing_um : float
        Radius of the closing that joins the pieces of one tissue fragment.
    min_area_um2 : float
        Smallest tissue fragment kept (and largest hole filled).
    """

    thumbnail_mpp: float = 8.0
    thumbnail_max_px: int = 2048
    min_saturation: float = 0.05
    closing_um: float = 24.0
    min_area_um2: float = 10_000.0


def saturation_of(image: np.ndarray) -> np.ndarray:
    """HSV saturation (max - min) / max of RGB pixels (H, W, 3), float32 in [0, 1].

    The same value as ``skimage.color.rgb2hsv(image)[..., 1]`` in a sixth of its memory: that
    computes all three channels in float64, which for the thumbnail of a large slide would be the
    largest array of the run.
    """
    high = image.max(axis=-1).astype(np.float32)
    low = image.min(axis=-1).astype(np.float32)
    return np.divide(high - low, high, out=np.zeros_like(high), where=high > 0)


def tissue_mask(
    image: np.ndarray, mpp: float, settings: TissueSettings = TissueSettings()
) -> np.ndarray:
    """Boolean mask of tissue.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        A low-resolution image of the slide (:func:`~.fields.read_thumbnail`).
    mpp : float
        Its pixel size, µm.

    Returns
    -------
    ndarray of bool, shape (H, W)
    """
    saturation = saturation_of(image)
    threshold = settings.min_saturation
    if saturation.max() > saturation.min():
        threshold = max(threshold, float(threshold_otsu(saturation)))
    mask = saturation > threshold
    radius = max(1, round(settings.closing_um / mpp))
    mask = closing(mask, disk(radius))
    min_pixels = max(1, round(settings.min_area_um2 / mpp**2))
    mask = remove_small_objects(mask, max_size=min_pixels)
    return remove_small_holes(mask, max_size=min_pixels)

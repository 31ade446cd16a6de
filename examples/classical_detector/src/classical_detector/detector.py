"""Cells from colour deconvolution and peaks; classes from the tissue patch's haematoxylin context.

For one pair:

1. **Nuclei** (cell patch): the haematoxylin optical density of ``skimage.color.rgb2hed``,
   smoothed by a Gaussian of about a nucleus radius; its local maxima at least ``min_distance_um``
   apart and above an Otsu threshold of the smoothed density are the cells.
2. **Context** (tissue patch): the haematoxylin density smoothed over ``context_um``, a region a
   few cells across. Glass is left out. Cancer areas are denser in haematoxylin (more and darker
   nuclei, basophilic cytoplasm) than the stroma around them, but stain strength varies from slide
   to slide, so the density is judged *within the tissue patch*: its Otsu split over the tissue
   pixels separates the denser from the paler regions of this patch.
3. **Class**: each cell's position is mapped into the tissue patch through the pair's ``cell_box``
   and the context map is sampled there; above the patch's split the cell is a tumour cell (2),
   below it a background cell (1). The probability is the detection's strength times the class's:
   a logistic of the distance from each threshold in units of the spread of its values.

No training, no weights: scikit-image, SciPy and NumPy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.color import rgb2hed
from skimage.feature import peak_local_max
from skimage.filters import threshold_otsu

#: Cell-patch resolution at 1024 px in OCELOT, used when the metadata gives no boxes.
NOMINAL_CELL_MPP = 0.2
#: The tissue patch covers 4 times the side of the cell patch.
FIELD_OF_VIEW_RATIO = 4
BC, TC = 1, 2


@dataclass(frozen=True)
class Settings:
    """Lengths in micrometres; converted to pixels with each patch's resolution.

    Attributes
    ----------
    nucleus_sigma_um : float
        Gaussian smoothing of the cell patch's haematoxylin, about a nucleus radius / sqrt(2).
    min_distance_um : float
        Minimum distance between two cells.
    context_um : float
        Gaussian smoothing of the tissue patch's haematoxylin: the size of a region.
    glass_density : float
        Summed optical density (H + E + DAB channels) below which a tissue pixel is glass.
    """

    nucleus_sigma_um: float = 1.5
    min_distance_um: float = 3.0
    context_um: float = 25.0
    glass_density: float = 0.4
    cytoplasm_quantile: float = 0.7


def cell_mpp(pair) -> float:
    """Micrometres per cell-patch pixel, from the metadata's slide box and slide resolution."""
    width = pair.cell_image.shape[1]
    try:
        box = pair.meta["cell"]
        return (float(box["x_end"]) - float(box["x_start"])) * float(pair.meta["mpp_x"]) / width
    except (KeyError, TypeError, ValueError):
        return NOMINAL_CELL_MPP * 1024 / width


def haematoxylin(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) float haematoxylin optical density."""
    return rgb2hed(image)[..., 0]


def optical_density(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) summed optical density of the three channels (0 on glass)."""
    return -np.log(np.maximum(image.astype(np.float64), 1.0) / 255.0).sum(axis=-1)


def logistic(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def find_nuclei(
    cell_image: np.ndarray, mpp: float, settings: Settings
) -> tuple[np.ndarray, np.ndarray]:
    """Nucleus centres and their strength in (0, 1).

    Returns
    -------
    xy : ndarray, shape (N, 2), int
        Peak pixels ``(x, y)`` of the cell patch.
    strength : ndarray, shape (N,), float
        Logistic of the peak's height above the Otsu threshold, in units of the density's spread.
    """
    density = ndi.gaussian_filter(haematoxylin(cell_image), settings.nucleus_sigma_um / mpp)
    spread = float(density.std())
    if spread == 0.0:
        return np.zeros((0, 2), dtype=np.int64), np.zeros(0)
    threshold = threshold_otsu(density)
    peaks = peak_local_max(
        density,
        min_distance=max(1, round(settings.min_distance_um / mpp)),
        threshold_abs=threshold,
        exclude_border=False,
    )
    height = density[peaks[:, 0], peaks[:, 1]]
    return peaks[:, ::-1].astype(np.int64), logistic(4.0 * (height - threshold) / spread)


def context_map(
    tissue_image: np.ndarray, tissue_mpp: float, settings: Settings
) -> tuple[np.ndarray, float, float]:
    """Haematoxylin density over regions of the tissue patch, and where this patch splits it.

    Returns
    -------
    density : ndarray, shape (Ht, Wt), float
        Haematoxylin per unit of tissue, smoothed over ``context_um`` (glass excluded from both).
    threshold : float
        Otsu split of ``density`` over the tissue pixels (inf when there is no tissue).
    spread : float
        Standard deviation of ``density`` over the tissue pixels.
    """
    sigma = settings.context_um / tissue_mpp
    tissue = (optical_density(tissue_image) > settings.glass_density).astype(np.float64)
    weight = ndi.gaussian_filter(tissue, sigma)
    stain = haematoxylin(tissue_image)
    if tissue.any():
        # Nuclei are the darkest haematoxylin; capping them leaves the tint of the cytoplasm.
        stain = np.minimum(stain, np.quantile(stain[tissue > 0], settings.cytoplasm_quantile))
    density = ndi.gaussian_filter(stain * tissue, sigma) / np.maximum(weight, 1e-6)
    values = density[tissue > 0]
    if values.size < 2 or np.ptp(values) == 0:
        return density, np.inf, 1.0
    return density, float(threshold_otsu(values)), float(values.std()) or 1.0


class ClassicalDetector:
    """``detector(pair) -> [(x, y, cls, probability), ...]`` in cell-patch pixels.

    Parameters
    ----------
    settings : Settings
    """

    def __init__(self, settings: Settings = Settings()):
        self.settings = settings

    def __call__(self, pair) -> list[tuple[int, int, int, float]]:
        mpp = cell_mpp(pair)
        xy, strength = find_nuclei(pair.cell_image, mpp, self.settings)
        if not len(xy):
            return []
        cell_height, cell_width = pair.cell_image.shape[:2]
        tissue_height, tissue_width = pair.tissue_image.shape[:2]
        tissue_mpp = mpp * FIELD_OF_VIEW_RATIO * cell_width / tissue_width
        density, threshold, spread = context_map(pair.tissue_image, tissue_mpp, self.settings)
        x0, y0, x1, y1 = pair.cell_box
        # Cell pixel centres -> continuous tissue coordinates -> the tissue pixel that holds them.
        tx = x0 + (xy[:, 0] + 0.5) * (x1 - x0) / cell_width
        ty = y0 + (xy[:, 1] + 0.5) * (y1 - y0) / cell_height
        columns = np.clip(np.floor(tx).astype(np.int64), 0, tissue_width - 1)
        rows = np.clip(np.floor(ty).astype(np.int64), 0, tissue_height - 1)
        margin = (density[rows, columns] - threshold) / spread
        tumour = margin > 0
        class_confidence = logistic(4.0 * np.abs(margin))
        probability = np.clip(strength * class_confidence, 0.0, 1.0)
        label = np.where(tumour, TC, BC)
        columns = (xy[:, 0].tolist(), xy[:, 1].tolist(), label.tolist(), probability.tolist())
        return list(zip(*columns, strict=True))

    def describe(self) -> str:
        s = self.settings
        return (
            f"classical: haematoxylin peaks (sigma {s.nucleus_sigma_um} um, "
            f"{s.min_distance_um} um apart), context over {s.context_um} um"
        )


def make_detector() -> ClassicalDetector:
    """The factory: ``--detector classical_detector:make_detector`` (no device, no checkpoint)."""
    return ClassicalDetector()

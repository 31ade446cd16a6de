"""Synthetic OCELOT pairs in which the tissue context decides many cell classes.

A pair is rendered from one *scene*, a description of a piece of slide in micrometres:

- smooth random fields on a coarse grid over the tissue field of view: tissue fragments (white
  gaps between them), cancer area (CA) blobs larger than a cell patch, small lumens,
  unknown-annotation blobs, stain variations and red-blood-cell pools;
- nuclei as points with a class and an appearance (size, elongation, darkness, vesicular chromatin,
  nucleolus, outline irregularity). Most cells (85%) draw their appearance from one distribution
  shared by both classes, and their class follows the region (85% tumour cells, TC, inside CA, 3%
  outside): their class cannot be read from the nucleus, only from the region. The other cells look
  like their class but are spread over the slide regardless of region, so that a neighbourhood of
  recognisable cells does not give the region away either. Overall about 35% TC, 85% of TC inside
  CA and 90% of background cells (BC) outside.

Why a cell detector needs the tissue patch here: CA and stroma share one texture and one nuclear
density; CA differs only by a stronger haematoxylin tint of the cytoplasm (``cancer_tint``), and the
tint of every slide varies by a larger factor (``slide_tint_range``). A cell patch that lies inside
one region cannot tell "CA on a pale slide" from "stroma on a dark slide"; the tissue patch, 16
times the area, usually shows both regions side by side, and the relative tint gives CA away.

The tissue patch (4x the field of view, 4x coarser) and the cell patch inside it are both rendered
from the scene, each at its own pixel size, so they agree everywhere: the same nuclei, the same
regions, the same mask. Colours come from a Beer-Lambert mix of haematoxylin, eosin and a red
blood-cell stain (``skimage.color.combine_stains``).

At ``size`` S both patches are S x S pixels; the fields of view stay 204.8 µm (cell) and 819.2 µm
(tissue), so the pixel size is 0.2 * 1024 / S µm (cell) and 4 times that (tissue).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy import ndimage as ndi

from evaluation.constants import (
    BC,
    CELL_MPP,
    FIELD_OF_VIEW_RATIO,
    ORGANS,
    PATCH_SIZE_PX,
    TC,
    TISSUE_BACKGROUND,
    TISSUE_CANCER,
    TISSUE_UNKNOWN,
)
from evaluation.pairs import Pair, cell_box_in_tissue

__all__ = [
    "CELL_FIELD_UM",
    "Nuclei",
    "ORGAN_STAIN_SCALE",
    "SLIDE_MPP",
    "STAIN_VECTORS",
    "Scene",
    "SyntheticConfig",
    "TISSUE_FIELD_UM",
    "make_scene",
    "render_patch",
    "synthesize_pair",
    "tissue_mask",
]

TISSUE_FIELD_UM = PATCH_SIZE_PX * CELL_MPP * FIELD_OF_VIEW_RATIO  # 819.2 µm
CELL_FIELD_UM = TISSUE_FIELD_UM / FIELD_OF_VIEW_RATIO  # 204.8 µm
SLIDE_MPP = 0.25  # µm per pixel of the (imaginary) source slide, for the metadata boxes

# Optical densities of the stains (rows: haematoxylin, eosin, red blood cells), unit vectors.
STAIN_VECTORS = np.array([[0.60, 0.72, 0.35], [0.26, 0.84, 0.47], [0.06, 0.72, 0.69]])
STAIN_VECTORS /= np.linalg.norm(STAIN_VECTORS, axis=1, keepdims=True)
# Per-organ stain strength (haematoxylin, eosin): organs look a little different, as in real slides.
ORGAN_STAIN_SCALE = {
    "kidney": (1.0, 1.1),
    "head-and-neck": (1.1, 0.95),
    "prostate": (0.95, 1.0),
    "stomach": (1.05, 1.05),
    "endometrium": (1.0, 0.9),
    "bladder": (0.9, 1.0),
}


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of the synthetic slides; lengths in micrometres unless named ``_px``.

    The defaults reproduce the OCELOT statistics (TC 35% / BC 65%, about 90% of TC inside CA and
    85% of BC outside) within a few percent over a few dozen pairs.
    """

    size: int = PATCH_SIZE_PX
    field_grid: int = (
        128  # coarse grid (per side) of the smooth fields over the tissue field of view
    )
    nucleus_spacing_um: float = 10.0  # jittered-grid spacing of candidate nuclei
    nucleus_density: float = 0.5  # share of candidates kept, the same inside and outside CA
    shared_look_share: float = 0.85  # share of cells drawn from the look shared by both classes
    tc_share_in_cancer: float = 0.85  # P(TC | shared look, inside CA)
    tc_share_outside: float = 0.03  # P(TC | shared look, outside CA)
    tc_share_distinct: float = 0.25  # P(TC | class-specific look), wherever the cell lies
    cancer_tint: float = 3.0  # CA cytoplasm haematoxylin relative to stroma
    slide_tint_range: tuple[float, float] = (
        1 / 3.5,
        3.5,
    )  # per-slide cytoplasm haematoxylin factor (log-uniform)
    cancer_blob_um: float = 80.0  # smoothing scale of the CA field (blobs ~2.5x this across)
    cancer_share_range: tuple[float, float] = (0.1, 0.7)  # CA share of tissue, uniform per pair
    fragment_um: float = 45.0  # smoothing scale of tissue fragments
    white_share_range: tuple[float, float] = (0.08, 0.45)  # share of empty glass, uniform per pair
    unknown_share_range: tuple[float, float] = (0.0, 0.08)  # share of pixels annotated unknown

    @property
    def cell_mpp(self) -> float:
        """Cell-patch pixel size in µm."""
        return CELL_MPP * PATCH_SIZE_PX / self.size

    @property
    def tissue_mpp(self) -> float:
        """Tissue-patch pixel size in µm."""
        return self.cell_mpp * FIELD_OF_VIEW_RATIO


@dataclass
class Nuclei:
    """Nuclei of a scene; all lengths in µm, positions in tissue field-of-view coordinates."""

    xy: np.ndarray  # (N, 2) float centre (x, y)
    label: np.ndarray  # (N,) int 1 = BC, 2 = TC
    shared_look: (
        np.ndarray
    )  # (N,) bool: appearance drawn from the distribution shared by both classes
    semi_axes: np.ndarray  # (N, 2) float semi-major, semi-minor
    angle: np.ndarray  # (N,) float orientation, radians
    irregularity: np.ndarray  # (N,) float relative amplitude of the outline wobble
    wobble_phase: np.ndarray  # (N,) float
    darkness: np.ndarray  # (N,) float haematoxylin optical density at the nucleus rim
    vesicular: np.ndarray  # (N,) float 0..1 paleness of the nucleus centre
    nucleolus: np.ndarray  # (N,) float optical density of a central nucleolus
    chromatin: np.ndarray  # (N,) float relative amplitude of the chromatin texture


@dataclass
class Scene:
    """A piece of slide: a square of ``extent_um``, the tissue field of view for a pair."""

    fields: dict[str, np.ndarray]  # name -> (G, G) float32 smooth field on the coarse grid
    grid_um: float  # spacing of the coarse grid: extent_um / G
    cancer_threshold: float
    fragment_threshold: float
    lumen_threshold: float
    unknown_threshold: float
    nuclei: Nuclei
    blood_xy: np.ndarray  # (M, 2) float red blood cell centres, µm
    blood_radius: np.ndarray  # (M,) float, µm
    stain_scale: np.ndarray  # (3,) multiplies the H, E, blood optical densities
    cytoplasm_tint: float  # this slide's factor on the cytoplasm haematoxylin
    cancer_tint: float  # CA cytoplasm haematoxylin relative to stroma
    stain_vectors: np.ndarray  # (3, 3) rows of unit optical densities
    fibre_angle: float  # main direction of the stroma fibres, radians


def _smooth_field(rng: np.random.Generator, grid: int, sigma_cells: float) -> np.ndarray:
    """Gaussian random field with zero mean and unit standard deviation, (grid, grid) float32."""
    field = ndi.gaussian_filter(
        rng.standard_normal((grid, grid)).astype(np.float32), sigma_cells, mode="wrap"
    )
    return (field - field.mean()) / (field.std() + 1e-12)


def _sample_fields(fields: np.ndarray, xy_um: np.ndarray, grid_um: float) -> np.ndarray:
    """Bilinear values of the (C, G, G) coarse fields at points (N, 2) in µm -> (C, N)."""
    coords = np.stack([xy_um[:, 1], xy_um[:, 0]]) / grid_um - 0.5
    return np.stack([ndi.map_coordinates(f, coords, order=1, mode="nearest") for f in fields])


def _interpolation_matrix(
    count: int, origin_um: float, pixel_um: float, grid_um: float, grid: int
) -> np.ndarray:
    """(count, grid) float32 weights of linear interpolation from grid samples to pixel centres.

    Grid sample ``g`` sits at ``(g + 0.5) * grid_um``, pixel ``i`` at
    ``origin_um + (i + 0.5) * pixel_um``; positions beyond the outer samples take the nearest
    sample.
    """
    position = np.clip(
        (origin_um + (np.arange(count) + 0.5) * pixel_um) / grid_um - 0.5, 0, grid - 1
    )
    lower = np.minimum(np.floor(position).astype(np.int64), grid - 2)
    weight = (position - lower).astype(np.float32)
    matrix = np.zeros((count, grid), dtype=np.float32)
    rows = np.arange(count)
    matrix[rows, lower] = 1 - weight
    matrix[rows, lower + 1] = weight
    return matrix


def _resample_fields(
    fields: np.ndarray, grid_um: float, origin_um: tuple[float, float], pixel_um: float, size: int
) -> np.ndarray:
    """Bilinear values of the (C, G, G) coarse fields at the pixel centres of a patch -> (C, S, S).

    ``origin_um`` is the (x, y) of the patch's top-left corner; pixel ``(i, j)`` has its centre at
    ``origin + ((j, i) + 0.5) * pixel_um``. Bilinear interpolation is separable, so it is two
    matrix products (much faster than a general resampler at this size).
    """
    grid = fields.shape[-1]
    rows = _interpolation_matrix(size, origin_um[1], pixel_um, grid_um, grid)
    cols = _interpolation_matrix(size, origin_um[0], pixel_um, grid_um, grid)
    return rows @ fields @ cols.T


def _draw_looks(
    rng: np.random.Generator, label: np.ndarray, shared: np.ndarray
) -> dict[str, np.ndarray]:
    """Nuclear appearance per cell: the shared look where ``shared``, else class-specific.

    Class-specific looks: TC large, pale, vesicular with a nucleolus and an irregular outline; BC
    small dark round lymphocytes (60%) or thin elongated fibroblasts (40%).
    """
    n = len(label)
    u = rng.random
    look = np.where(shared, 0, np.where(label == TC, 1, np.where(u(n) < 0.6, 2, 3)))
    # Columns: radius lo/hi, aspect lo/hi, darkness lo/hi, vesicular lo/hi, nucleolus lo/hi,
    # irregularity lo/hi, chromatin lo/hi.  Rows: shared, TC, lymphocyte, fibroblast.
    table = np.array(
        [
            [3.0, 3.8, 1.0, 1.35, 0.09, 0.12, 0.1, 0.3, 0.00, 0.00, 0.03, 0.08, 0.15, 0.30],
            [4.2, 5.4, 1.0, 1.50, 0.07, 0.09, 0.4, 0.7, 0.04, 0.08, 0.08, 0.18, 0.25, 0.45],
            [2.2, 2.8, 1.0, 1.15, 0.13, 0.16, 0.0, 0.1, 0.00, 0.00, 0.02, 0.05, 0.05, 0.15],
            [1.4, 1.8, 2.5, 4.00, 0.11, 0.13, 0.0, 0.1, 0.00, 0.00, 0.03, 0.06, 0.10, 0.20],
        ]
    )
    lo, hi = table[look, 0::2], table[look, 1::2]
    values = lo + (hi - lo) * rng.random((n, lo.shape[1]))
    radius, aspect = values[:, 0], values[:, 1]
    # Elongated nuclei keep the minor radius, others keep their area (r^2 = a * b).
    elongated = look == 3
    minor = np.where(elongated, radius, radius / np.sqrt(aspect))
    return {
        "shared_look": look == 0,
        "semi_axes": np.stack([minor * aspect, minor], axis=1),
        "darkness": values[:, 2],
        "vesicular": values[:, 3],
        "nucleolus": values[:, 4] * (look == 1) * (u(n) < 0.7),
        "irregularity": values[:, 5],
        "chromatin": values[:, 6],
    }


def make_scene(
    rng: np.random.Generator,
    config: SyntheticConfig,
    organ: str,
    extent_um: float = TISSUE_FIELD_UM,
) -> Scene:
    """Draw the fields, nuclei and blood cells of a square of ``extent_um``.

    The default square is one tissue field of view (a pair); a synthetic slide draws one scene
    over its whole tissue, so that neighbouring tiles show one continuous piece of tissue. The
    coarse grid keeps its spacing, so regions and cells look the same at any extent.
    """
    grid = max(2, round(config.field_grid * extent_um / TISSUE_FIELD_UM))
    grid_um = extent_um / grid
    fields = {
        "cancer": _smooth_field(rng, grid, config.cancer_blob_um / grid_um),
        "fragment": _smooth_field(rng, grid, config.fragment_um / grid_um),
        "lumen": _smooth_field(rng, grid, 9.0 / grid_um),
        "unknown": _smooth_field(rng, grid, 25.0 / grid_um),
        "haematoxylin": _smooth_field(rng, grid, 40.0 / grid_um),
        "eosin": _smooth_field(rng, grid, 40.0 / grid_um),
        "blood": _smooth_field(rng, grid, 20.0 / grid_um),
        "density": _smooth_field(rng, grid, 15.0 / grid_um),
    }
    fragment_threshold = float(
        np.quantile(fields["fragment"], rng.uniform(*config.white_share_range))
    )
    in_tissue = fields["fragment"] > fragment_threshold
    cancer_share = rng.uniform(*config.cancer_share_range)
    cancer_threshold = (
        float(np.quantile(fields["cancer"][in_tissue], 1 - cancer_share))
        if cancer_share > 0.01
        else np.inf
    )
    lumen_threshold = float(np.quantile(fields["lumen"], 0.9))
    unknown_share = rng.uniform(*config.unknown_share_range)
    unknown_threshold = (
        float(np.quantile(fields["unknown"], 1 - unknown_share))
        if unknown_share > 0.005
        else np.inf
    )

    # Candidate nuclei on a jittered grid (blue-noise-like spacing), with a margin so that nuclei
    # cut by the patch border exist too.
    spacing = config.nucleus_spacing_um
    ticks = np.arange(-spacing, extent_um + spacing, spacing)
    gx, gy = np.meshgrid(ticks, ticks)
    xy = np.stack([gx.ravel(), gy.ravel()], axis=1) + rng.uniform(-0.3, 0.3, (gx.size, 2)) * spacing
    names = ("fragment", "cancer", "lumen", "density")
    values = dict(zip(names, _sample_fields(np.stack([fields[k] for k in names]), xy, grid_um)))
    cancer = values["cancer"] > cancer_threshold
    keep_share = config.nucleus_density * (1 + 0.35 * np.tanh(values["density"]))
    keep = (
        (values["fragment"] > fragment_threshold)
        & ~(values["lumen"] > lumen_threshold)
        & (rng.random(len(xy)) < keep_share)
    )
    xy, cancer = xy[keep], cancer[keep]
    shared = rng.random(len(xy)) < config.shared_look_share
    tc_share = np.where(
        shared,
        np.where(cancer, config.tc_share_in_cancer, config.tc_share_outside),
        config.tc_share_distinct,
    )
    label = np.where(rng.random(len(xy)) < tc_share, TC, BC)
    looks = _draw_looks(rng, label, shared)
    nuclei = Nuclei(
        xy=xy,
        label=label,
        angle=rng.uniform(0, np.pi, len(xy)),
        wobble_phase=rng.uniform(0, 2 * np.pi, len(xy)),
        **looks,
    )

    # Red blood cells pool where the blood field is high, in tissue, whatever the region.
    blood_count = int(rng.integers(300, 1500) * (extent_um / TISSUE_FIELD_UM) ** 2)
    blood_xy = rng.uniform(-5, extent_um + 5, (blood_count, 2))
    bvalues = dict(
        zip(
            ("fragment", "blood"),
            _sample_fields(np.stack([fields["fragment"], fields["blood"]]), blood_xy, grid_um),
        )
    )
    in_pool = (bvalues["blood"] > 1.3) & (bvalues["fragment"] > fragment_threshold - 0.3)
    blood_xy = blood_xy[in_pool]

    stain_h, stain_e = ORGAN_STAIN_SCALE[organ]
    stain_scale = np.array([stain_h, stain_e, 1.0]) * rng.uniform(0.88, 1.12, 3)
    low, high = np.log(config.slide_tint_range)
    cytoplasm_tint = float(np.exp(rng.uniform(low, high)))
    stain_vectors = STAIN_VECTORS + rng.normal(0, 0.02, STAIN_VECTORS.shape)
    stain_vectors /= np.linalg.norm(stain_vectors, axis=1, keepdims=True)
    return Scene(
        fields=fields,
        grid_um=grid_um,
        cancer_threshold=cancer_threshold,
        fragment_threshold=fragment_threshold,
        lumen_threshold=lumen_threshold,
        unknown_threshold=unknown_threshold,
        nuclei=nuclei,
        blood_xy=blood_xy,
        blood_radius=rng.uniform(3.2, 3.8, len(blood_xy)),
        stain_scale=stain_scale,
        cytoplasm_tint=cytoplasm_tint,
        cancer_tint=config.cancer_tint,
        stain_vectors=stain_vectors,
        fibre_angle=float(rng.uniform(0, np.pi)),
    )


def _textures(
    rng: np.random.Generator, size: int, sigmas_px: list[tuple[float, float, float]]
) -> list[np.ndarray]:
    """Smooth periodic noise images of unit standard deviation, (size, size) float32 each.

    Each ``(sigma_along, sigma_across, angle)`` in pixels and radians gives an (an)isotropic
    Gaussian-filtered white noise, filtered in the Fourier domain (one inverse FFT per texture).
    """
    shape = (size, size // 2 + 1)
    spectrum = (
        rng.standard_normal(shape, dtype=np.float32)
        + 1j * rng.standard_normal(shape, dtype=np.float32)
    ).astype(np.complex64)
    fy = scipy.fft.fftfreq(size).astype(np.float32)[:, None]
    fx = scipy.fft.rfftfreq(size).astype(np.float32)[None, :]
    textures = []
    for along, across, angle in sigmas_px:
        f_along = fx * np.cos(angle) + fy * np.sin(angle)
        f_across = -fx * np.sin(angle) + fy * np.cos(angle)
        gain = np.exp(-2 * np.pi**2 * ((along * f_along) ** 2 + (across * f_across) ** 2))
        texture = scipy.fft.irfft2(spectrum * gain, s=(size, size))
        textures.append((texture / (texture.std() + 1e-12)).astype(np.float32))
    return textures


def _stamp_ellipses(
    shape: tuple[int, int],
    centres_px: np.ndarray,
    semi_axes_px: np.ndarray,
    angle: np.ndarray,
    irregularity: np.ndarray,
    phase: np.ndarray,
    edge_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixels covered by soft-edged, wobbly ellipses, computed for all ellipses at once.

    Ellipses are grouped by size so that each group uses a window just large enough.

    Returns
    -------
    flat_index : (P,) int64 index into the flattened image of each covered pixel
    owner : (P,) int64 index of the ellipse that covers it
    coverage : (P,) float32 in (0, 1]
    rho : (P,) float32 normalised radius (1 on the outline)
    offset : (P, 2) float32 (dx, dy) from the ellipse centre, pixels
    """
    height, width = shape
    semi_axes_px = semi_axes_px.astype(np.float32)
    centres_px = centres_px.astype(np.float32)
    angle, irregularity, phase = (a.astype(np.float32) for a in (angle, irregularity, phase))
    halves = np.ceil(semi_axes_px[:, 0] * (1 + irregularity) + 2 * edge_px + 1).astype(np.int64)
    halves = 2 ** np.ceil(np.log2(np.maximum(halves, 2))).astype(np.int64)  # few window sizes
    parts = []
    for half in np.unique(halves):
        owner = np.flatnonzero(halves == half)
        steps = np.arange(-half, half + 1)
        wy, wx = np.meshgrid(steps, steps, indexing="ij")
        in_disk = wx**2 + wy**2 <= (half + 1) ** 2  # the window's corners are never covered
        base = np.round(centres_px[owner]).astype(np.int64)
        cols = base[:, :1] + wx[in_disk]
        rows = base[:, 1:] + wy[in_disk]
        dx = (cols - centres_px[owner, :1]).astype(np.float32)
        dy = (rows - centres_px[owner, 1:]).astype(np.float32)
        cos, sin = np.cos(angle[owner])[:, None], np.sin(angle[owner])[:, None]
        u = (dx * cos + dy * sin) / semi_axes_px[owner, :1]
        v = (-dx * sin + dy * cos) / semi_axes_px[owner, 1:]
        radius = np.sqrt(u * u + v * v) + 1e-6
        # Outline wobble r(theta) = 1 + a (0.6 cos(3 theta + phase) + 0.4 sin(2 theta)),
        # from cos/sin of theta.
        c, s = u / radius, v / radius
        cp, sp = np.cos(phase[owner])[:, None], np.sin(phase[owner])[:, None]
        cos3, sin3 = 4 * c**3 - 3 * c, 3 * s - 4 * s**3
        wobble = 0.6 * (cos3 * cp - sin3 * sp) + 0.4 * (2 * s * c)
        rho = radius / (1 + irregularity[owner, None] * wobble)
        mean_radius = np.sqrt(semi_axes_px[owner, :1] * semi_axes_px[owner, 1:])
        coverage = np.clip(0.5 + (1 - rho) * mean_radius / edge_px, 0, 1)
        covered = (coverage > 0) & (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        parts.append(
            (
                (rows * width + cols)[covered],
                np.broadcast_to(owner[:, None], covered.shape)[covered],
                coverage[covered].astype(np.float32),
                rho[covered].astype(np.float32),
                np.stack([dx[covered], dy[covered]], axis=-1),
            )
        )
    if not parts:
        return (
            np.zeros(0, np.int64),
            np.zeros(0, np.int64),
            np.zeros(0, np.float32),
            np.zeros(0, np.float32),
            np.zeros((0, 2), np.float32),
        )
    return tuple(np.concatenate(column) for column in zip(*parts))


def _visible(centres_px: np.ndarray, reach_px: np.ndarray, size: int) -> np.ndarray:
    """Which objects (centres (N, 2), reach (N,) in pixels) can touch a size x size patch."""
    return np.all(
        (centres_px > -reach_px[:, None]) & (centres_px < size - 1 + reach_px[:, None]), axis=1
    )


def _stains_to_rgb(stains: np.ndarray, stain_vectors: np.ndarray) -> np.ndarray:
    """Beer-Lambert: optical densities (..., 3) of the stains -> RGB in [0, 255] float32.

    Same model as ``skimage.color.combine_stains`` (natural-log densities scaled by ln(1e6)),
    written out in float32 because that function works in float64 and dominated the run time.
    """
    scaled = stain_vectors.astype(np.float32) * np.float32(np.log(1e6))
    # A (pixels, 3) @ (3, 3) product is slow in numpy; tensordot goes through BLAS.
    density = np.tensordot(stains, scaled, axes=1)
    np.exp(-density, out=density)
    return density * np.float32(255)


def render_patch(
    scene: Scene,
    origin_um: tuple[float, float],
    pixel_um: float,
    size: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Render a square RGB patch of the scene.

    Parameters
    ----------
    scene : Scene
    origin_um : (x, y)
        Top-left corner of the patch in µm (tissue field-of-view coordinates).
    pixel_um : float
        Pixel size in µm.
    size : int
        Side in pixels.
    rng : Generator
        Source of the fine textures (chromatin grain, fibre breaks).

    Returns
    -------
    ndarray of uint8, shape (size, size, 3)
    """
    grid_um = scene.grid_um
    names = ("fragment", "cancer", "lumen", "haematoxylin", "eosin")
    fields = dict(
        zip(
            names,
            _resample_fields(
                np.stack([scene.fields[k] for k in names]), grid_um, origin_um, pixel_um, size
            ),
        )
    )
    # Soft region indicators; the slopes (per field standard deviation) give edges 1-3 µm wide.
    tissue = np.clip((fields["fragment"] - scene.fragment_threshold) * 30 + 0.5, 0, 1)
    cancer = np.clip((fields["cancer"] - scene.cancer_threshold) * 30 + 0.5, 0, 1)
    lumen = np.clip((fields["lumen"] - scene.lumen_threshold) * 6 + 0.5, 0, 1)
    tissue *= 1 - lumen

    grain, streaks = _textures(
        rng,
        size,
        [
            (0.4 / pixel_um, 0.4 / pixel_um, 0.0),
            (4.0 / pixel_um, 0.6 / pixel_um, scene.fibre_angle),
        ],
    )
    # Collagen: wavy parallel fibres ~3 µm apart whose course bends with a smooth field, broken
    # by streaks.
    centres = (np.arange(size, dtype=np.float32) + 0.5) * np.float32(pixel_um)
    across = (centres + np.float32(origin_um[0]))[None, :] * np.float32(
        np.cos(scene.fibre_angle)
    ) - (centres + np.float32(origin_um[1]))[:, None] * np.float32(np.sin(scene.fibre_angle))
    fibres = np.cos(2 * np.pi * (across / 3.5 + 1.5 * fields["eosin"])) ** 4 * np.clip(
        0.5 + 0.6 * streaks, 0, 1
    )

    # Background optical densities: one fibrous texture everywhere; CA only tinted more purple, by a
    # factor smaller than the variation between slides (see the module docstring).
    cytoplasm_h = (
        (0.008 + 0.002 * grain) * scene.cytoplasm_tint * (1 + cancer * (scene.cancer_tint - 1))
    )
    haematoxylin = (tissue * cytoplasm_h + 0.002) * (1 + 0.2 * np.tanh(fields["haematoxylin"]))
    eosin = (tissue * (0.020 + 0.025 * fibres) + 0.004) * (1 + 0.2 * np.tanh(fields["eosin"]))
    blood = np.zeros_like(eosin)
    flat = (haematoxylin.reshape(-1), eosin.reshape(-1), blood.reshape(-1), grain.reshape(-1))

    edge_px = max(0.5, 0.25 / pixel_um)
    nuclei = scene.nuclei
    centres = (nuclei.xy - np.asarray(origin_um)) / pixel_um - 0.5
    visible = np.flatnonzero(_visible(centres, nuclei.semi_axes[:, 0] / pixel_um * 1.3 + 2, size))
    index, owner, coverage, rho, offset = _stamp_ellipses(
        (size, size),
        centres[visible],
        nuclei.semi_axes[visible] / pixel_um,
        nuclei.angle[visible],
        nuclei.irregularity[visible],
        nuclei.wobble_phase[visible],
        edge_px,
    )
    owner = visible[owner]
    chromatin = 1 + nuclei.chromatin[owner] * flat[3][index]
    rim = 1 - nuclei.vesicular[owner] * np.clip(1 - rho**3, 0, 1)
    nucleolus = nuclei.nucleolus[owner] * np.exp(
        -(offset**2).sum(-1) * (pixel_um**2 / (2 * 0.6**2))
    )
    nucleus_h = np.zeros(size * size, dtype=np.float32)
    nucleus_cover = np.zeros(size * size, dtype=np.float32)
    np.maximum.at(
        nucleus_h,
        index,
        (coverage * (nuclei.darkness[owner] * rim * chromatin + nucleolus)).astype(np.float32),
    )
    np.maximum.at(nucleus_cover, index, coverage)
    flat[0][:] = flat[0] * (1 - nucleus_cover) + nucleus_h
    flat[1][:] = flat[1] * (1 - 0.3 * nucleus_cover)

    blood_centres = (scene.blood_xy - np.asarray(origin_um)) / pixel_um - 0.5
    radius = scene.blood_radius / pixel_um
    visible = np.flatnonzero(_visible(blood_centres, radius + 2, size))
    zeros = np.zeros(len(visible))
    index, _, coverage, rho, _ = _stamp_ellipses(
        (size, size),
        blood_centres[visible],
        np.stack([radius[visible], radius[visible] * 0.95], 1),
        zeros,
        zeros,
        zeros,
        edge_px,
    )
    np.maximum.at(flat[2], index, coverage * (0.06 + 0.03 * np.minimum(rho, 1)))
    blood_cover = np.clip(blood / 0.06, 0, 1)
    haematoxylin *= 1 - blood_cover
    eosin = eosin * (1 - blood_cover) + 0.06 * blood_cover

    stains = np.stack([haematoxylin, eosin, blood], axis=-1) * scene.stain_scale.astype(np.float32)
    rgb = _stains_to_rgb(np.maximum(stains, 0), scene.stain_vectors)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def tissue_mask(scene: Scene, size: int, pixel_um: float) -> np.ndarray:
    """Annotation of the tissue patch: 1 background, 2 cancer area (lumens included), 255 unknown.

    Returns
    -------
    ndarray of uint8, shape (size, size)
    """
    grid_um = scene.grid_um
    names = ("fragment", "cancer", "unknown")
    fragment, cancer, unknown = _resample_fields(
        np.stack([scene.fields[k] for k in names]), grid_um, (0.0, 0.0), pixel_um, size
    )
    mask = np.full((size, size), TISSUE_BACKGROUND, dtype=np.uint8)
    mask[(cancer > scene.cancer_threshold) & (fragment > scene.fragment_threshold)] = TISSUE_CANCER
    mask[unknown > scene.unknown_threshold] = TISSUE_UNKNOWN
    return mask


def _metadata_entry(
    rng: np.random.Generator,
    config: SyntheticConfig,
    offset: tuple[float, float],
    organ: str,
    subset: str,
    slide: str,
) -> dict:
    """Metadata in the release's format; boxes in pixels of a slide scanned at ``SLIDE_MPP``."""
    tissue_side = round(TISSUE_FIELD_UM / SLIDE_MPP)
    cell_side = round(CELL_FIELD_UM / SLIDE_MPP)
    tissue_x, tissue_y = (int(v) for v in rng.integers(0, 80_000, 2))
    cell_x = tissue_x + round(offset[0] * tissue_side - cell_side / 2)
    cell_y = tissue_y + round(offset[1] * tissue_side - cell_side / 2)
    return {
        "slide_name": slide,
        "cell": {
            "x_start": cell_x,
            "y_start": cell_y,
            "x_end": cell_x + cell_side,
            "y_end": cell_y + cell_side,
            "resized_mpp_x": config.cell_mpp,
            "resized_mpp_y": config.cell_mpp,
        },
        "tissue": {
            "x_start": tissue_x,
            "y_start": tissue_y,
            "x_end": tissue_x + tissue_side,
            "y_end": tissue_y + tissue_side,
            "resized_mpp_x": config.tissue_mpp,
            "resized_mpp_y": config.tissue_mpp,
        },
        "patch_x_offset": offset[0],
        "patch_y_offset": offset[1],
        "mpp_x": SLIDE_MPP,
        "mpp_y": SLIDE_MPP,
        "organ": organ,
        "subset": subset,
    }


def synthesize_pair(
    name: str, seed: int, index: int, subset: str, config: SyntheticConfig = SyntheticConfig()
) -> Pair:
    """Generate one synthetic pair, deterministic for ``(seed, index)``.

    Parameters
    ----------
    name : str
        The pair's file stem, e.g. ``"001"``.
    seed, index : int
        The dataset seed and the pair's position in the dataset (all splits numbered together).
    subset : str
        The split name written into the metadata.
    config : SyntheticConfig

    Returns
    -------
    Pair
        Both patches ``config.size`` square; points of every nucleus whose centre lies in the cell
        patch, sorted by (y, x).
    """
    scene_rng, cell_rng, tissue_rng, meta_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence([seed, index]).spawn(4)
    )
    organ = ORGANS[int(meta_rng.integers(len(ORGANS)))]
    # Cell patch centre as a fraction of the tissue side, so that the cell patch lies inside.
    margin = 0.5 / FIELD_OF_VIEW_RATIO
    offset = tuple(round(float(v), 6) for v in meta_rng.uniform(margin, 1 - margin, 2))
    meta = _metadata_entry(meta_rng, config, offset, organ, subset, f"synthetic-{seed}-{name}")
    scene = make_scene(scene_rng, config, organ)

    size = config.size
    cell_origin = (
        offset[0] * TISSUE_FIELD_UM - CELL_FIELD_UM / 2,
        offset[1] * TISSUE_FIELD_UM - CELL_FIELD_UM / 2,
    )
    cell_image = render_patch(scene, cell_origin, config.cell_mpp, size, cell_rng)
    tissue_image = render_patch(scene, (0.0, 0.0), config.tissue_mpp, size, tissue_rng)

    pixel = np.floor((scene.nuclei.xy - np.asarray(cell_origin)) / config.cell_mpp).astype(np.int64)
    inside = np.all((pixel >= 0) & (pixel < size), axis=1)
    points = np.column_stack([pixel[inside], scene.nuclei.label[inside]]).astype(np.int64)
    points = points[np.lexsort((points[:, 0], points[:, 1]))]
    return Pair(
        name=name,
        cell_image=cell_image,
        tissue_image=tissue_image,
        cell_points=points,
        tissue_mask=tissue_mask(scene, size, config.tissue_mpp),
        meta=meta,
        cell_box=cell_box_in_tissue(meta, size, size),
    )

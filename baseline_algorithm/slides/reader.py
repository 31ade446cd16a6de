"""Open a slide and read regions of its pyramid levels, white outside the slide.

Two readers behind one interface (:class:`Slide`):

- :class:`TiffSlide`: tiled or stripped, pyramidal or not, TIFF, OME-TIFF and SVS through
  tifffile; regions are read tile by tile through its Zarr store, never a whole level;
- :class:`OpenSlideSlide`: every OpenSlide format, when ``openslide`` is importable (the
  ``slides`` extra installs it with its library).

The level-0 resolution comes from the slide's metadata (SVS ``MPP``, OME ``PhysicalSizeX/Y``,
TIFF resolution tags in centimetres or inches, OpenSlide's ``openslide.mpp-x/y``) or is given;
it is never guessed.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from baseline_algorithm.slides.errors import SlideError
from evaluation.errors import preview

__all__ = ["OpenSlideSlide", "Slide", "TiffSlide", "open_slide", "slide_mpp"]

#: White, the colour of glass and of everything outside the slide.
WHITE = 255
#: The hint of every message about a format only OpenSlide reads.
OPENSLIDE_HINT = "install the slides extra (pip install 'ocelot-toolkit[slides]') for OpenSlide"
#: How much coarser than asked a pyramid level may be and still be read (relative).
LEVEL_TOLERANCE = 1e-3
_MICROMETRES_PER_UNIT = {"CENTIMETER": 1e4, "INCH": 25_400.0}
_OME_UNITS_UM = {"µm": 1.0, "um": 1.0, "nm": 1e-3, "mm": 1e3, "cm": 1e4, "m": 1e6}


@dataclass(frozen=True)
class Level:
    """One pyramid level: its size in pixels and its downsample from level 0 (x, y)."""

    width: int
    height: int
    downsample: tuple[float, float]


class Slide:
    """A slide's pyramid; subclasses read regions.

    Attributes
    ----------
    path : Path
    levels : list of Level
        Level 0 first, then coarser.
    metadata_mpp : (float, float) or None
        Level-0 µm per pixel (x, y) from the slide's metadata.
    """

    path: Path
    levels: list[Level]
    metadata_mpp: tuple[float, float] | None

    @property
    def dimensions(self) -> tuple[int, int]:
        """Level-0 (width, height) in pixels."""
        return self.levels[0].width, self.levels[0].height

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Pixels ``[y, y + height) x [x, x + width)`` of ``level``, white outside the slide.

        Returns
        -------
        ndarray of uint8, shape (height, width, 3)
        """
        region = np.full((height, width, 3), WHITE, dtype=np.uint8)
        info = self.levels[level]
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, info.width), min(y + height, info.height)
        if x1 > x0 and y1 > y0:
            region[y0 - y : y1 - y, x0 - x : x1 - x] = self._read_inside(level, x0, y0, x1, y1)
        return region

    def _read_inside(self, level: int, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> Slide:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _rgb(array: np.ndarray, axes: str) -> np.ndarray:
    """A region of a level as (H, W, 3) uint8, whatever the level's sample layout."""
    if axes.endswith("S"):
        array = array[..., :3]
    elif axes.startswith("S"):
        array = np.moveaxis(array[:3], 0, -1)
    else:
        array = array[..., None]
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    if array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    return array


class TiffSlide(Slide):
    """A TIFF slide read with tifffile: the first series, its pyramid levels as tifffile sees them.

    Raises
    ------
    SlideError
        Not a TIFF, or its first series is not a 2-D colour or grey image.
    """

    def __init__(self, path: Path):
        import tifffile
        import zarr

        self.path = path
        try:
            self._tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, ValueError) as error:
            raise SlideError(f"{path}: not a TIFF tifffile can read ({error})") from None
        try:
            series = self._tif.series[0]
            axes = series.axes
            if axes not in ("YXS", "SYX", "YX"):
                raise SlideError(
                    f"{path}: first image series has axes {axes!r}, expected a 2-D "
                    "colour image (YXS, SYX) or a grey one (YX)"
                )
            self._axes = axes
            self._arrays = [
                zarr.open(series.aszarr(level=i), mode="r") for i in range(len(series.levels))
            ]
        except SlideError:
            self._tif.close()
            raise
        except Exception as error:  # tifffile's and zarr's many ways of refusing a file
            self._tif.close()
            raise SlideError(f"{path}: cannot read its image series ({error})") from None
        y_axis, x_axis = axes.index("Y"), axes.index("X")
        base = self._arrays[0].shape
        self.levels = [
            Level(
                int(a.shape[x_axis]),
                int(a.shape[y_axis]),
                (base[x_axis] / a.shape[x_axis], base[y_axis] / a.shape[y_axis]),
            )
            for a in self._arrays
        ]
        self.metadata_mpp = tiff_mpp(self._tif)

    def _read_inside(self, level, x0, y0, x1, y1):
        rows, cols = slice(y0, y1), slice(x0, x1)
        index = {"YXS": (rows, cols), "SYX": (slice(None), rows, cols), "YX": (rows, cols)}
        return _rgb(np.asarray(self._arrays[level][index[self._axes]]), self._axes)

    def close(self) -> None:
        self._tif.close()


def tiff_mpp(tif) -> tuple[float, float] | None:
    """Level-0 µm per pixel from a TIFF's metadata, or None when it says nothing usable."""
    if tif.is_svs and tif.svs_metadata and "MPP" in tif.svs_metadata:
        mpp = float(tif.svs_metadata["MPP"])
        return mpp, mpp
    if tif.is_ome and tif.ome_metadata:
        found = _ome_mpp(tif.ome_metadata)
        if found is not None:
            return found
    page = tif.pages[0]
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    unit = _MICROMETRES_PER_UNIT.get(getattr(page.resolutionunit, "name", ""))
    x_resolution, y_resolution = page.resolution
    if unit is None or not x_resolution or not y_resolution:
        return None  # resolution without a unit (ResolutionUnit NONE): a ratio, not a size
    return unit / x_resolution, unit / y_resolution


def _ome_mpp(xml: str) -> tuple[float, float] | None:
    """PhysicalSizeX/Y of the first OME ``Pixels`` element, in µm."""
    pixels = re.search(r"<(?:\w+:)?Pixels\b[^>]*>", xml)
    if pixels is None:
        return None
    attributes = dict(re.findall(r'(\w+)="([^"]*)"', pixels.group(0)))
    sizes = []
    for axis in "XY":
        if f"PhysicalSize{axis}" not in attributes:
            return None
        scale = _OME_UNITS_UM.get(attributes.get(f"PhysicalSize{axis}Unit", "µm"))
        if scale is None:
            return None
        sizes.append(float(attributes[f"PhysicalSize{axis}"]) * scale)
    return sizes[0], sizes[1]


class OpenSlideSlide(Slide):
    """A slide in any format OpenSlide reads."""

    def __init__(self, path: Path):
        import openslide

        self.path = path
        try:
            self._slide = openslide.OpenSlide(os.fspath(path))
        except (openslide.OpenSlideError, OSError) as error:
            raise SlideError(f"{path}: not a slide OpenSlide can read ({error})") from None
        self.levels = [
            Level(int(w), int(h), (float(d), float(d)))
            for (w, h), d in zip(self._slide.level_dimensions, self._slide.level_downsamples)
        ]
        self.metadata_mpp = openslide_mpp(self._slide.properties)

    def _read_inside(self, level, x0, y0, x1, y1):
        scale_x, scale_y = self.levels[level].downsample
        rgba = np.asarray(
            self._slide.read_region(
                (round(x0 * scale_x), round(y0 * scale_y)), level, (x1 - x0, y1 - y0)
            )
        )
        # Transparent pixels (no scanned data) become white, as outside the slide.
        alpha = rgba[..., 3:4].astype(np.uint16)
        return ((rgba[..., :3] * alpha + WHITE * (255 - alpha)) // 255).astype(np.uint8)

    def close(self) -> None:
        self._slide.close()


def openslide_mpp(properties) -> tuple[float, float] | None:
    """Level-0 µm per pixel from OpenSlide's properties, or None."""
    if "openslide.mpp-x" in properties and "openslide.mpp-y" in properties:
        return float(properties["openslide.mpp-x"]), float(properties["openslide.mpp-y"])
    unit = _MICROMETRES_PER_UNIT.get(properties.get("tiff.ResolutionUnit", "").upper())
    try:
        x_resolution = float(properties["tiff.XResolution"])
        y_resolution = float(properties["tiff.YResolution"])
    except (KeyError, ValueError):
        return None
    if unit is None or not x_resolution or not y_resolution:
        return None
    return unit / x_resolution, unit / y_resolution


def open_slide(path: str | os.PathLike) -> Slide:
    """Open ``path`` with tifffile, else with OpenSlide when it is installed.

    Raises
    ------
    SlideError
        The file is missing, or neither reader can read it (one line, naming the extra when
        OpenSlide is missing).
    """
    path = Path(path)
    if not path.is_file():
        raise SlideError(f"{path}: slide not found")
    try:
        return TiffSlide(path)
    except SlideError as tiff_error:
        try:
            import openslide  # noqa: F401  (its library comes with the slides extra)
        except ImportError:
            raise SlideError(
                f"{tiff_error}; other slide formats need OpenSlide: {OPENSLIDE_HINT}"
            ) from None
        return OpenSlideSlide(path)


def slide_mpp(slide: Slide, given: float | None) -> tuple[float, float]:
    """Level-0 µm per pixel (x, y): ``given``, else the slide's metadata; never a guess.

    Raises
    ------
    SlideError
        Neither is known, or the value is not a positive finite number.
    """
    if given is not None:
        found, source = (given, given), "--mpp"
    elif slide.metadata_mpp is not None:
        found, source = slide.metadata_mpp, "its metadata"
    else:
        raise SlideError(
            f"{slide.path}: the slide's metadata gives no resolution "
            "(µm per pixel); give it with --mpp"
        )
    if not all(math.isfinite(v) and v > 0 for v in found):
        raise SlideError(
            f"{slide.path}: resolution from {source} is "
            f"{preview(list(found))} µm per pixel, expected positive numbers"
        )
    return float(found[0]), float(found[1])


def best_level(slide: Slide, downsample: Sequence[float]) -> int:
    """The coarsest level no coarser than ``downsample`` (x, y) from level 0: no upsampling.

    Levels are accepted up to 0.1% coarser: pyramids round their levels' sizes, so a level meant
    as 4x may measure 4.003x.
    """
    fitting = [
        index
        for index, level in enumerate(slide.levels)
        if level.downsample[0] <= downsample[0] * (1 + LEVEL_TOLERANCE)
        and level.downsample[1] <= downsample[1] * (1 + LEVEL_TOLERANCE)
    ]
    return max(fitting, key=lambda i: slide.levels[i].downsample[0]) if fitting else 0

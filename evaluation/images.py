"""Reading and writing the release's image files: RGB patches and tissue masks.

Needs the ``images`` extra (pillow, tifffile); the imports happen on first use, so that
scoring never pays for them.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from evaluation.constants import TISSUE_VALUES
from evaluation.errors import DataError
from evaluation.limits import LimitError, current_limits

__all__ = ["IMAGE_SUFFIXES", "read_rgb", "read_tissue_mask", "write_image"]

#: File types a release folder may hold its patches in.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def _decode(path: Path, what: str) -> np.ndarray:
    """Decode ``path`` with tifffile (TIFF) or pillow (the rest); ``DataError`` on any failure."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    limits = current_limits()
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tiff:
                page = tiff.pages.first
                limits.check(
                    "patch_side_px",
                    max(page.imagelength, page.imagewidth),
                    str(path),
                    "pixels per image side",
                )
                return page.asarray()
        from PIL import Image

        with Image.open(path) as image:  # reads the header only
            limits.check("patch_side_px", max(image.size), str(path), "pixels per image side")
            return np.array(image)  # decodes into a writable copy
    except LimitError:
        raise
    except OSError as error:
        raise DataError(f"{path}: cannot read {what}: {error.strerror or error}") from None
    except Exception as error:  # noqa: BLE001 - any decoder failure is the same problem for the user
        message = f"{path}: cannot read {what} ({type(error).__name__}: {error})"
        raise DataError(message.replace("\n", " ")) from None


def read_rgb(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit RGB image.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)

    Raises
    ------
    DataError
        Missing, unreadable, or not an RGB uint8 image.
    """
    path = Path(path)
    image = _decode(path, "image")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(
            f"{path}: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}"
        )
    return image


def read_tissue_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a release tissue mask: 1 background, 2 cancer area, 255 unknown.

    Returns
    -------
    ndarray of uint8, shape (H, W)

    Raises
    ------
    DataError
        Missing, unreadable, not single-channel uint8, or a value outside {1, 2, 255}.
    """
    path = Path(path)
    mask = _decode(path, "mask")
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise DataError(
            f"{path}: expected a single-channel uint8 mask (H, W), got {mask.dtype} {mask.shape}"
        )
    bad = ~np.isin(mask, TISSUE_VALUES)
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise DataError(
            f"{path}: pixel (x={x}, y={y}) has value {mask[y, x]}, expected 1, 2 or 255"
        )
    return mask


def write_image(path: str | os.PathLike, image: np.ndarray, *, jpeg_quality: int = 95) -> None:
    """Write an RGB image or a mask; the suffix picks the format (JPEG is lossy, as released)."""
    from PIL import Image

    Image.fromarray(image).save(path, quality=jpeg_quality)

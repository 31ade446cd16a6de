"""Reader and writer of the OCELOT 2023 release layout.

::

    ROOT/metadata.json                           {"sample_pairs": {"001": {...}, ...}}
    ROOT/images/{split}/cell/NNN.jpg             cell patch, RGB
    ROOT/images/{split}/tissue/NNN.jpg           tissue patch, RGB, 4x the field of view
    ROOT/annotations/{split}/cell/NNN.csv        headerless "x,y,label" lines, label 1 = BC, 2 = TC
    ROOT/annotations/{split}/tissue/NNN.png      1 background, 2 cancer area, 255 unknown
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import skimage.io
from PIL import Image

from .pairs import BC, TC, TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN, DataError, Pair, cell_box_in_tissue

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def read_rgb(path: Path) -> np.ndarray:
    """Read an 8-bit RGB image; ``DataError`` if missing, unreadable or not (H, W, 3) uint8."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        image = skimage.io.imread(path)
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the same problem for the user
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DataError(f"{path}: expected an RGB uint8 image (H, W, 3), got {image.dtype} {image.shape}")
    return image


def read_tissue_mask(path: Path) -> np.ndarray:
    """Read a tissue mask PNG; ``DataError`` unless it is (H, W) uint8 with values in {1, 2, 255}."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        mask = skimage.io.imread(path)
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: cannot read mask ({type(exc).__name__}: {exc})".replace("\n", " ")) from None
    if mask.dtype != np.uint8 or mask.ndim != 2:
        raise DataError(f"{path}: expected a single-channel uint8 mask (H, W), got {mask.dtype} {mask.shape}")
    bad = ~np.isin(mask, (TISSUE_BACKGROUND, TISSUE_CANCER, TISSUE_UNKNOWN))
    if bad.any():
        y, x = np.argwhere(bad)[0]
        raise DataError(f"{path}: pixel (x={x}, y={y}) has value {mask[y, x]}, expected 1, 2 or 255")
    return mask


def read_cell_csv(path: Path, image_shape: tuple[int, int] | None = None) -> np.ndarray:
    """Read headerless ``x,y,label`` lines into an int64 array of shape (N, 3).

    Parameters
    ----------
    path : Path
    image_shape : (H, W), optional
        When given, points must lie inside the image (pixels).
    """
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file is a valid "no cells"
            points = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError as exc:
        raise DataError(f"{path}: {exc}".replace("\n", " ")) from None
    if points.size == 0:
        return np.zeros((0, 3), dtype=np.int64)
    if points.shape[1] != 3:
        raise DataError(f"{path}: expected 3 columns x,y,label, got {points.shape[1]}")
    bad_label = ~np.isin(points[:, 2], (BC, TC))
    if bad_label.any():
        row = int(np.flatnonzero(bad_label)[0])
        raise DataError(f"{path}: line {row + 1} has label {points[row, 2]}, expected 1 (BC) or 2 (TC)")
    if image_shape is not None:
        height, width = image_shape
        outside = (points[:, 0] < 0) | (points[:, 0] >= width) | (points[:, 1] < 0) | (points[:, 1] >= height)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise DataError(
                f"{path}: line {row + 1} point ({points[row, 0]}, {points[row, 1]}) lies outside the "
                f"{width}x{height} cell image"
            )
    return points


def read_json(path: Path):
    """Parse a JSON file; ``DataError`` naming the file if missing or malformed."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: invalid JSON ({exc})") from None


class ReleaseDataset:
    """One split of a dataset in the OCELOT 2023 release layout.

    Pairs are sorted by file stem, so item ``k`` is ``image_k`` of the organisers' GT converter.
    Annotations are optional as a whole (``annotations/{split}`` absent: ``cell_points`` has shape
    (0, 3) and ``tissue_mask`` is None) but, when present, required for every pair.

    Parameters
    ----------
    root : path
        The release root (holds ``metadata.json``, ``images/``, ``annotations/``).
    split : {"train", "val", "test"}
    """

    def __init__(self, root: str | os.PathLike, split: str):
        self.root = Path(root)
        self.split = split
        cell_dir = self.root / "images" / split / "cell"
        if not cell_dir.is_dir():
            raise DataError(f"{cell_dir}: directory not found (is {self.root} an OCELOT release root?)")
        self._cell_images = {p.stem: p for p in cell_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        self.names = sorted(self._cell_images)
        tissue_dir = self.root / "images" / split / "tissue"
        self._tissue_images = {
            p.stem: p for p in (tissue_dir.iterdir() if tissue_dir.is_dir() else ()) if p.suffix.lower() in IMAGE_SUFFIXES
        }
        missing = sorted(set(self.names) - set(self._tissue_images))
        if missing:
            raise DataError(f"{tissue_dir}: no tissue image for cell image {self._cell_images[missing[0]].name}")
        extra = sorted(set(self._tissue_images) - set(self.names))
        if extra:
            raise DataError(f"{cell_dir}: no cell image for tissue image {self._tissue_images[extra[0]].name}")
        metadata_path = self.root / "metadata.json"
        metadata = read_json(metadata_path)
        sample_pairs = metadata.get("sample_pairs") if isinstance(metadata, dict) else None
        if not isinstance(sample_pairs, dict):
            raise DataError(f"{metadata_path}: expected an object with a \"sample_pairs\" object")
        unknown = [name for name in self.names if name not in sample_pairs]
        if unknown:
            raise DataError(f"{metadata_path}: sample_pairs has no entry \"{unknown[0]}\" for {split} pair {unknown[0]}")
        self._meta = {name: sample_pairs[name] for name in self.names}
        self.annotation_dir = self.root / "annotations" / split
        self.annotated = self.annotation_dir.is_dir()

    def __len__(self) -> int:
        return len(self.names)

    def meta(self, index: int) -> dict:
        """Metadata entry of pair ``index``."""
        return self._meta[self.names[index]]

    def cell_image_path(self, index: int) -> Path:
        """Path of the cell image of pair ``index``."""
        return self._cell_images[self.names[index]]

    def tissue_mask(self, index: int) -> np.ndarray | None:
        """Tissue mask (H, W) uint8 of pair ``index``, None when the split has no annotations."""
        if not self.annotated:
            return None
        return read_tissue_mask(self.annotation_dir / "tissue" / f"{self.names[index]}.png")

    def cell_points(self, index: int, cell_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Cell points (N, 3) int64 ``[x, y, label]`` of pair ``index`` in cell-patch pixels."""
        if not self.annotated:
            return np.zeros((0, 3), dtype=np.int64)
        return read_cell_csv(self.annotation_dir / "cell" / f"{self.names[index]}.csv", cell_shape)

    def __getitem__(self, index: int) -> Pair:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        name = self.names[index]
        cell_image = read_rgb(self._cell_images[name])
        tissue_path = self._tissue_images[name]
        tissue_image = read_rgb(tissue_path)
        mask = self.tissue_mask(index)
        if mask is not None and mask.shape != tissue_image.shape[:2]:
            raise DataError(
                f"{self.annotation_dir / 'tissue' / (name + '.png')}: mask shape {mask.shape} differs from "
                f"tissue image {tissue_path.name} shape {tissue_image.shape[:2]}"
            )
        meta = self._meta[name]
        try:
            box = cell_box_in_tissue(meta, *tissue_image.shape[:2])
        except DataError as exc:
            raise DataError(f"{self.root / 'metadata.json'}: sample_pairs[\"{name}\"]: {exc}") from None
        return Pair(
            name=name,
            cell_image=cell_image,
            tissue_image=tissue_image,
            cell_points=self.cell_points(index, cell_image.shape[:2]),
            tissue_mask=mask,
            meta=meta,
            cell_box=box,
        )


def write_release_pair(root: Path, split: str, pair: Pair, jpeg_quality: int = 95) -> None:
    """Write one pair's images and annotations into the release layout (not ``metadata.json``).

    Images are JPEG (lossy, as in the release); masks PNG; points headerless CSV.
    """
    paths = {
        "cell": root / "images" / split / "cell" / f"{pair.name}.jpg",
        "tissue": root / "images" / split / "tissue" / f"{pair.name}.jpg",
        "csv": root / "annotations" / split / "cell" / f"{pair.name}.csv",
        "mask": root / "annotations" / split / "tissue" / f"{pair.name}.png",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pair.cell_image).save(paths["cell"], quality=jpeg_quality)
    Image.fromarray(pair.tissue_image).save(paths["tissue"], quality=jpeg_quality)
    if pair.tissue_mask is not None:
        Image.fromarray(pair.tissue_mask).save(paths["mask"])
    np.savetxt(paths["csv"], pair.cell_points, fmt="%d", delimiter=",")

"""The tissue annotation under each cell point: cell-patch pixels mapped into the tissue mask.

A pair's cell patch covers the box :func:`evaluation.pairs.cell_box_in_tissue` of its tissue
patch (centre from ``patch_x_offset`` and ``patch_y_offset``, side a quarter of the tissue side).
Cell-patch pixel ``(x, y)`` of a patch of ``W x H`` pixels has its centre at tissue coordinate
``x0 + (x + 0.5) (x1 - x0) / W`` (and likewise in y); ``floor`` of it is the tissue pixel whose
value the point gets: 1 background, 2 cancer area, 255 unknown. A tissue pixel outside the
mask, and a point outside the cell patch, count as unknown.

The cell patch has as many pixels as the tissue patch, as in the release (1024 x 1024 both),
the Grand Challenge input and the synthetic data: the mask's shape gives both. Only the part of
each mask under its cell patch is kept (a sixteenth of it), so that the tissue of a whole test
set travels cheaply to the processes that score submissions.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evaluation.constants import TISSUE_UNKNOWN
from evaluation.errors import DataError
from evaluation.metadata import release_sample_pairs
from evaluation.pairs import cell_box_in_tissue
from evaluation.points import PointSet
from evaluation.release import check_release_file
from evaluation.strict_json import read_json_document

__all__ = [
    "TissueMaps",
    "read_release_tissue",
    "read_tissue",
    "read_tissue_folder",
    "release_has_tissue",
    "tissue_maps",
]


@dataclass(frozen=True)
class TissueMaps:
    """The tissue value under every pixel of each image's cell patch.

    Attributes
    ----------
    crops : tuple of ndarray of uint8, one (h, w) per image
        The tissue pixels under the cell patch (255 where the box leaves the mask).
    origin : ndarray of int64, shape (N, 2)
        Tissue pixel ``(x, y)`` of each crop's ``[0, 0]``.
    cell_box : ndarray of float64, shape (N, 4)
        ``(x0, y0, x1, y1)`` of each cell patch in tissue pixels (continuous coordinates).
    cell_shape : ndarray of int64, shape (N, 2)
        ``(H, W)`` of each cell patch in pixels.
    """

    crops: tuple
    origin: np.ndarray
    cell_box: np.ndarray
    cell_shape: np.ndarray

    def __len__(self) -> int:
        return len(self.crops)

    def values_at(self, points: PointSet) -> np.ndarray:
        """Tissue value under each point (cell-patch pixels; image ``k`` uses map ``k``).

        Returns
        -------
        ndarray of uint8, shape (len(points),)
            1 background, 2 cancer area, 255 unknown.
        """
        values = np.full(len(points), TISSUE_UNKNOWN, dtype=np.uint8)
        if not len(points):
            return values
        if points.image.max() >= len(self):
            raise ValueError(
                f"points name image_{points.image.max()}, but there are tissue "
                f"maps of {len(self)} images"
            )
        order = np.argsort(points.image, kind="stable")
        bounds = np.searchsorted(points.image[order], np.arange(len(self) + 1))
        for image in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[image] : bounds[image + 1]]
            values[rows] = self._image_values(int(image), points.xy[rows])
        return values

    def _image_values(self, image: int, xy: np.ndarray) -> np.ndarray:
        height, width = (int(side) for side in self.cell_shape[image])
        tissue_xy = _tissue_pixels(xy, self.cell_box[image], (height, width)) - self.origin[image]
        crop = self.crops[image]
        inside = (
            (xy[:, 0] >= 0)
            & (xy[:, 0] < width)
            & (xy[:, 1] >= 0)
            & (xy[:, 1] < height)
            & (tissue_xy[:, 0] >= 0)
            & (tissue_xy[:, 0] < crop.shape[1])
            & (tissue_xy[:, 1] >= 0)
            & (tissue_xy[:, 1] < crop.shape[0])
        )
        values = np.full(len(xy), TISSUE_UNKNOWN, dtype=np.uint8)
        values[inside] = crop[tissue_xy[inside, 1], tissue_xy[inside, 0]]
        return values


def _tissue_pixels(xy: np.ndarray, cell_box, cell_shape: tuple[int, int]) -> np.ndarray:
    """Tissue pixel (x, y) under each cell-patch pixel, as int64 (N, 2)."""
    x0, y0, x1, y1 = (float(value) for value in cell_box)
    scale = np.array([(x1 - x0) / cell_shape[1], (y1 - y0) / cell_shape[0]])
    centre = np.array([x0, y0]) + (np.asarray(xy, dtype=np.float64).reshape(-1, 2) + 0.5) * scale
    return np.floor(centre).astype(np.int64)


def tissue_maps(
    masks: Iterable[np.ndarray], metas: Sequence[dict], where: Sequence[str] | None = None
) -> TissueMaps:
    """Keep, for each image, the part of its tissue mask under its cell patch.

    Parameters
    ----------
    masks : iterable of ndarray of uint8, shape (H, W)
        Tissue mask of image ``k`` (1, 2 or 255), one per entry of ``metas``; its cell patch has
        the same shape. Each is dropped once cropped, so a generator keeps one in memory.
    metas : sequence of dict
        Metadata entry of image ``k`` with ``patch_x_offset`` and ``patch_y_offset``.
    where : sequence of str, optional
        Names of the metadata entries, to start the error of a bad offset.

    Returns
    -------
    TissueMaps
    """
    crops, origins, boxes, shapes = [], [], [], []
    for index, (mask, meta) in enumerate(zip(masks, metas, strict=True)):
        crop, origin, box = _crop_under_cell_patch(
            mask, meta, None if where is None else where[index]
        )
        crops.append(crop)
        origins.append(origin)
        boxes.append(box)
        shapes.append(mask.shape)
    return TissueMaps(
        crops=tuple(crops),
        origin=np.array(origins, np.int64).reshape(-1, 2),
        cell_box=np.array(boxes, np.float64).reshape(-1, 4),
        cell_shape=np.array(shapes, np.int64).reshape(-1, 2),
    )


def _crop_under_cell_patch(mask: np.ndarray, meta: dict, where: str | None):
    height, width = mask.shape
    try:
        box = cell_box_in_tissue(meta, height, width)
    except DataError as error:
        raise DataError(f"{where}.{error}" if where else str(error)) from None
    # The mapping grows with x and y, so the first and last cell pixels bound the tissue pixels.
    first, last = _tissue_pixels(np.array([[0, 0], [width - 1, height - 1]]), box, (height, width))
    crop = np.full((last[1] - first[1] + 1, last[0] - first[0] + 1), TISSUE_UNKNOWN, np.uint8)
    low = np.maximum(first, 0)
    high = np.minimum(last + 1, (width, height))
    if np.all(high > low):
        crop[low[1] - first[1] : high[1] - first[1], low[0] - first[0] : high[0] - first[0]] = mask[
            low[1] : high[1], low[0] : high[0]
        ]
    return crop, first, box


def read_tissue(
    ground_truth: str | os.PathLike,
    *,
    split: str | None,
    stems: Sequence[str] | None,
    folder: str | os.PathLike | None,
    metadata: str | os.PathLike | None,
    num_images: int,
) -> TissueMaps | None:
    """The tissue of the scored images, where annotations are given.

    Parameters
    ----------
    ground_truth : path-like
        The ground truth as given: a release folder (``stems`` known) or a JSON document.
    split : str or None
    stems : sequence of str or None
        Release CSV stems in image order; None for a JSON document.
    folder : path-like or None
        ``--tissue``: a folder of PNG masks (:func:`read_tissue_folder`); it wins over a
        release's own masks.
    metadata : path-like or None
        The metadata that places each cell patch, for ``folder``.
    num_images : int

    Returns
    -------
    TissueMaps or None
        None where neither ``folder`` nor the release's ``annotations/<split>/tissue/`` exists.
    """
    if folder is not None:
        return read_tissue_folder(folder, metadata, num_images=num_images)
    if stems is not None and split is not None and release_has_tissue(ground_truth, split):
        return read_release_tissue(ground_truth, split, stems)
    return None


def release_has_tissue(root: str | os.PathLike, split: str) -> bool:
    """Whether a release folder holds tissue annotations for ``split``."""
    return (Path(root) / "annotations" / split / "tissue").is_dir()


def read_release_tissue(root: str | os.PathLike, split: str, stems: Sequence[str]) -> TissueMaps:
    """The tissue maps of a release split: ``annotations/<split>/tissue/<stem>.png``.

    Parameters
    ----------
    root : path-like
        Release folder with ``metadata.json``.
    split : str
    stems : sequence of str
        CSV stems in image order (:func:`evaluation.release.read_release_ground_truth`).
    """
    folder = Path(root) / "annotations" / split / "tissue"
    metadata = Path(root) / "metadata.json"
    paths = [folder / f"{stem}.png" for stem in stems]
    for path in paths:  # regular files inside the release, as for its other files
        check_release_file(root, path)
    return _read_masks(paths, *_release_metas(metadata, release_sample_pairs(metadata), stems))


def read_tissue_folder(
    folder: str | os.PathLike, metadata: str | os.PathLike | None, *, num_images: int
) -> TissueMaps:
    """The tissue maps of a folder of PNG masks, the k-th in sorted name order for ``image_k``.

    Parameters
    ----------
    folder : path-like
        ``*.png`` masks named like the release's cell CSVs (``001.png``, ...).
    metadata : path-like
        A release ``metadata.json`` (entries looked up by mask stem) or a Grand Challenge
        metadata list (entry k for ``image_k``): it places each cell patch in its tissue patch.
    num_images : int
        Images of the ground truth; the folder must hold exactly as many masks.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: --tissue must be a folder of PNG tissue masks")
    paths = sorted(path for path in folder.glob("*.png") if path.is_file())
    if len(paths) != num_images:
        raise DataError(
            f"{folder}: holds {len(paths)} tissue masks (*.png) but the ground truth "
            f"has {num_images} images"
        )
    if metadata is None:
        raise DataError(
            f"{folder}: tissue masks need the pairs' metadata (--metadata), which "
            "places each cell patch in its tissue patch"
        )
    document = read_json_document(metadata)
    if type(document) is list:
        if len(document) != num_images:
            raise DataError(
                f"{metadata}: describes {len(document)} images but the ground truth "
                f"has {num_images}"
            )
        return _read_masks(paths, document, [f"{metadata}: [{k}]" for k in range(num_images)])
    pairs = document.get("sample_pairs") if type(document) is dict else None
    if type(pairs) is not dict:
        raise DataError(
            f"{metadata}: expected a Grand Challenge metadata list or a release "
            'metadata object with "sample_pairs"'
        )
    return _read_masks(paths, *_release_metas(metadata, pairs, [path.stem for path in paths]))


def _release_metas(metadata: Path, pairs: dict, stems: Sequence[str]) -> tuple[list, list]:
    missing = [stem for stem in stems if stem not in pairs]
    if missing:
        raise DataError(
            f'{metadata}: sample_pairs["{missing[0]}"]: missing, but there is a '
            f"tissue mask {missing[0]}.png"
        )
    return (
        [pairs[stem] for stem in stems],
        [f'{metadata}: sample_pairs["{stem}"]' for stem in stems],
    )


def _read_masks(paths: Sequence[Path], metas: Sequence[dict], where: Sequence[str]) -> TissueMaps:
    from evaluation.images import read_tissue_mask  # pillow, only where masks are read

    return tissue_maps((read_tissue_mask(path) for path in paths), metas, where)

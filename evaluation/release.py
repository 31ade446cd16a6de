"""The OCELOT 2023 release layout: ground truth, organs, and every pair, read and written.

::

    ROOT/metadata.json                           {"sample_pairs": {"001": {...}, ...}}
    ROOT/images/{split}/cell/NNN.jpg             cell patch, RGB, 0.2 µm/px at 1024 px
    ROOT/images/{split}/tissue/NNN.jpg           tissue patch, RGB, 4x the field of view
    ROOT/annotations/{split}/cell/NNN.csv        headerless "x,y,label" lines, 1 = BC, 2 = TC
    ROOT/annotations/{split}/tissue/NNN.png      1 background, 2 cancer area, 255 unknown

The organisers' converter numbers the images of a split in sorted CSV-path order: the k-th CSV
becomes ``image_k``. Ground truth needs numpy alone; images need the ``images`` extra.
"""

from __future__ import annotations

import glob
import math
import os
import stat
from pathlib import Path

import numpy as np

from evaluation.constants import CLASS_NAMES, SPLITS
from evaluation.errors import DataError, preview
from evaluation.ground_truth import GroundTruth
from evaluation.images import IMAGE_SUFFIXES, read_rgb, read_tissue_mask, write_image
from evaluation.limits import current_limits
from evaluation.metadata import release_sample_pairs
from evaluation.multiple_points import read_points_document
from evaluation.pairs import Pair, cell_box_in_tissue
from evaluation.points import PATCH_COORDINATE_MAX, WHOLE_SLIDE_COORDINATE_MAX, PointSet

__all__ = [
    "ReleaseDataset",
    "check_release_file",
    "check_split",
    "read_cell_csv",
    "read_ground_truth",
    "read_release_ground_truth",
    "release_cell_csvs",
    "write_release_pair",
]


def check_split(split: str) -> str:
    """``split`` if it names a split of the release; ``DataError`` otherwise."""
    if split not in SPLITS:
        raise DataError(f"split must be one of {', '.join(SPLITS)}, got {preview(split)}")
    return split


def release_cell_csvs(root: str | os.PathLike, split: str) -> list[Path]:
    """The cell-annotation CSVs of ``split``, in the order that numbers the images.

    Uses ``sorted(glob.glob(".../*.csv"))`` like the organisers' converter, so hidden files are
    skipped and the order is Python string order of the paths.
    """
    folder = Path(root) / "annotations" / check_split(split) / "cell"
    if not folder.is_dir():
        raise DataError(
            f"{root}: not an OCELOT release folder for split {split!r}: {folder} does not exist"
        )
    pattern = os.path.join(glob.escape(str(folder)), "*.csv")
    paths = [Path(path) for path in sorted(glob.glob(pattern))]
    # Each CSV is one image: the bound on num_images holds for the ground truth written.
    current_limits().check("images", len(paths), f"{folder}: *.csv", "images")
    for path in paths:
        check_release_file(root, path)
    return paths


def check_release_file(root: str | os.PathLike, path: Path) -> None:
    """Refuse a release file that is not a regular file within the release folder.

    A link out of the folder could make the reader quote another file (``/etc/passwd``) or read
    forever (``/dev/zero``); a FIFO would block it.

    Raises
    ------
    DataError
    """
    if not path.resolve().is_relative_to(Path(root).resolve()):
        raise DataError(
            f"{path}: leads outside the release folder {root} through a symbolic "
            "link; only files inside it are read"
        )
    _check_regular_file(path)


def _check_regular_file(path: Path) -> None:
    try:
        status = os.stat(path)
    except OSError as error:
        raise DataError(f"{path}: cannot read file: {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        raise DataError(f"{path}: not a regular file")
    current_limits().check("document_mb", math.ceil(status.st_size / 1e6), str(path), "MB of CSV")


def read_cell_csv(
    path: str | os.PathLike,
    *,
    whole_slide: bool = False,
    image_shape: tuple[int, int] | None = None,
) -> np.ndarray:
    """Read one release CSV of headerless ``x,y,label`` lines.

    Each field is read with ``int()`` as the organisers' converter does, then checked with the
    validity rule (x, y in 0..1023 unless ``whole_slide``; label 1 or 2).

    Parameters
    ----------
    path : path-like
    whole_slide : bool
        Lift the 0..1023 pixel bound on x and y.
    image_shape : (H, W), optional
        When given, points must also lie inside an image of this size (pixels).

    Returns
    -------
    ndarray of int64, shape (N, 3)
        Rows ``[x, y, label]``, x and y in pixels.

    Raises
    ------
    DataError
        Missing, unreadable or not UTF-8, or a line that breaks the rule.
    """
    coordinate_max = WHOLE_SLIDE_COORDINATE_MAX if whole_slide else PATCH_COORDINATE_MAX
    limits = (coordinate_max, coordinate_max)
    if image_shape is not None:
        limits = (min(coordinate_max, image_shape[1] - 1), min(coordinate_max, image_shape[0] - 1))
    _check_regular_file(Path(path))  # a FIFO would block the read, a device never end it
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise DataError(f"{path}: cannot read file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text: byte offset {error.start}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            x, y, label = (int(field) for field in line.split(","))
        except ValueError:
            raise DataError(
                f"{path}: line {number}: expected three integers x,y,label, got {preview(line)}"
            ) from None
        for name, value, limit in (("x", x, limits[0]), ("y", y, limits[1])):
            if not 0 <= value <= limit:
                raise DataError(
                    f"{path}: line {number}: {name} must be an integer in 0..{limit}, "
                    f"got {preview(value)}"
                )
        if label not in CLASS_NAMES:
            raise DataError(
                f"{path}: line {number}: label must be 1 (BC) or 2 (TC), got {preview(label)}"
            )
        rows.append((x, y, label))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def read_release_ground_truth(
    root: str | os.PathLike, split: str, *, whole_slide: bool = False
) -> GroundTruth:
    """Ground truth of one split of an OCELOT release folder.

    Returns
    -------
    GroundTruth
        All cells, image ``k`` from the k-th sorted CSV, probability 1.0; ``num_images`` the
        number of CSVs; ``stems`` their file stems (e.g. ``"001"``) in image order, the keys of
        the release ``sample_pairs``; no organs.
    """
    csvs = release_cell_csvs(root, split)
    tables = [read_cell_csv(path, whole_slide=whole_slide) for path in csvs]
    image = np.repeat(np.arange(len(tables), dtype=np.int64), [len(table) for table in tables])
    table = np.concatenate(tables) if tables else np.zeros((0, 3), dtype=np.int64)
    points = PointSet.from_arrays(image, table[:, :2], table[:, 2], np.ones(len(table)))
    return GroundTruth(
        points, len(csvs), f"{root} (split {split})", stems=[path.stem for path in csvs]
    )


def read_ground_truth(
    path: str | os.PathLike, *, split: str | None = None, whole_slide: bool = False
) -> GroundTruth:
    """Ground truth from a "Multiple points" JSON file or a release folder (needs ``split``).

    Returns
    -------
    GroundTruth
        ``stems`` are the release CSV stems in image order, None for a JSON document; no organs.
    """
    if Path(path).is_dir():
        if split is None:
            raise DataError(f"{path}: a release folder as ground truth needs a split to read")
        return read_release_ground_truth(path, split, whole_slide=whole_slide)
    points, num_images = read_points_document(path, role="ground_truth", whole_slide=whole_slide)
    return GroundTruth(points, num_images, str(path))


class ReleaseDataset:
    """One split of a dataset in the OCELOT 2023 release layout, pair by pair.

    Pairs are sorted by file stem, so item ``k`` is ``image_k`` of the organisers' GT converter.
    Annotations are optional as a whole (``annotations/{split}`` absent: ``cell_points`` has shape
    (0, 3) and ``tissue_mask`` is None) but, when present, required for every pair.

    Parameters
    ----------
    root : path-like
        The release root (holds ``metadata.json``, ``images/``, ``annotations/``).
    split : {"train", "val", "test"}

    Examples
    --------
    >>> dataset = ReleaseDataset("ocelot2023_v1.0.1", "val")  # doctest: +SKIP
    >>> pair = dataset[0]  # doctest: +SKIP
    >>> pair.cell_image.shape, pair.cell_points.shape  # doctest: +SKIP
    ((1024, 1024, 3), (57, 3))
    """

    def __init__(self, root: str | os.PathLike, split: str):
        self.root = Path(root)
        self.split = check_split(split)
        cell_dir = self.root / "images" / split / "cell"
        if not cell_dir.is_dir():
            raise DataError(
                f"{cell_dir}: folder not found (is {self.root} an OCELOT release root?)"
            )
        self._cell_images = _images_by_stem(cell_dir)
        self.names = sorted(self._cell_images)
        tissue_dir = self.root / "images" / split / "tissue"
        self._tissue_images = _images_by_stem(tissue_dir) if tissue_dir.is_dir() else {}
        missing = sorted(set(self.names) - set(self._tissue_images))
        if missing:
            raise DataError(
                f"{tissue_dir}: no tissue image for cell image {self._cell_images[missing[0]].name}"
            )
        extra = sorted(set(self._tissue_images) - set(self.names))
        if extra:
            raise DataError(
                f"{cell_dir}: no cell image for tissue image {self._tissue_images[extra[0]].name}"
            )
        self.metadata_path = self.root / "metadata.json"
        sample_pairs = release_sample_pairs(self.metadata_path)
        unknown = [name for name in self.names if name not in sample_pairs]
        if unknown:
            raise DataError(
                f'{self.metadata_path}: sample_pairs has no entry "{unknown[0]}" for {split} '
                f"pair {unknown[0]}"
            )
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
        path = self.annotation_dir / "tissue" / f"{self.names[index]}.png"
        if path.exists():
            check_release_file(self.root, path)
        return read_tissue_mask(path)

    def cell_points(self, index: int, cell_shape: tuple[int, int] | None = None) -> np.ndarray:
        """Cell points (N, 3) int64 ``[x, y, label]`` of pair ``index`` in cell-patch pixels."""
        if not self.annotated:
            return np.zeros((0, 3), dtype=np.int64)
        path = self.annotation_dir / "cell" / f"{self.names[index]}.csv"
        if not path.is_file():
            raise DataError(f"{path}: file not found")
        check_release_file(self.root, path)
        return read_cell_csv(path, image_shape=cell_shape)

    def __getitem__(self, index: int) -> Pair:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        name = self.names[index]
        tissue_path = self._tissue_images[name]
        for path in (self._cell_images[name], tissue_path):
            check_release_file(self.root, path)
        cell_image = read_rgb(self._cell_images[name])
        tissue_image = read_rgb(tissue_path)
        mask = self.tissue_mask(index)
        if mask is not None and mask.shape != tissue_image.shape[:2]:
            raise DataError(
                f"{self.annotation_dir / 'tissue' / (name + '.png')}: mask shape {mask.shape} "
                f"differs from tissue image {tissue_path.name} shape {tissue_image.shape[:2]}"
            )
        meta = self._meta[name]
        try:
            box = cell_box_in_tissue(meta, *tissue_image.shape[:2])
        except DataError as error:
            raise DataError(f'{self.metadata_path}: sample_pairs["{name}"].{error}') from None
        return Pair(
            name=name,
            cell_image=cell_image,
            tissue_image=tissue_image,
            cell_points=self.cell_points(index, cell_image.shape[:2]),
            tissue_mask=mask,
            meta=meta,
            cell_box=box,
        )


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {path.stem: path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES}


def write_release_pair(
    root: str | os.PathLike, split: str, pair: Pair, jpeg_quality: int = 95
) -> None:
    """Write one pair's images and annotations into the release layout (not ``metadata.json``).

    Images are JPEG (lossy, as in the release); masks PNG; points headerless CSV.
    """
    root = Path(root)
    paths = {
        "cell": root / "images" / split / "cell" / f"{pair.name}.jpg",
        "tissue": root / "images" / split / "tissue" / f"{pair.name}.jpg",
        "csv": root / "annotations" / split / "cell" / f"{pair.name}.csv",
        "mask": root / "annotations" / split / "tissue" / f"{pair.name}.png",
    }
    for path in paths.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    write_image(paths["cell"], pair.cell_image, jpeg_quality=jpeg_quality)
    write_image(paths["tissue"], pair.tissue_image, jpeg_quality=jpeg_quality)
    if pair.tissue_mask is not None:
        write_image(paths["mask"], pair.tissue_mask)
    np.savetxt(paths["csv"], pair.cell_points, fmt="%d", delimiter=",")

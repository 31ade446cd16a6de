"""Ground truth and organs from the OCELOT 2023 release or Grand Challenge metadata.

The release (``ocelot2023_v1.0.1/``) stores cell annotations as headerless CSV lines
``x,y,label`` in ``annotations/<split>/cell/NNN.csv``. The organisers' converter numbers the
images of a split in sorted CSV-path order: the k-th CSV becomes ``image_k``.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np

from evaluation.formats import (
    CLASS_NAMES,
    PATCH_COORDINATE_MAX,
    WHOLE_SLIDE_COORDINATE_MAX,
    InputError,
    PointSet,
    read_json_document,
    read_points_document,
)

__all__ = ["release_cell_csvs", "read_cell_csv", "read_release_ground_truth", "read_ground_truth",
           "read_organs"]

SPLITS = ("train", "val", "test")


def release_cell_csvs(root: str | os.PathLike, split: str) -> list[Path]:
    """The cell-annotation CSVs of ``split``, in the order that numbers the images.

    Uses ``sorted(glob.glob(".../*.csv"))`` like the organisers' converter, so hidden files are
    skipped and the order is Python string order of the paths.
    """
    folder = Path(root) / "annotations" / split / "cell"
    if not folder.is_dir():
        raise InputError(
            f"{root}: not an OCELOT release folder for split {split!r}: {folder} does not exist"
        )
    return [Path(path) for path in sorted(glob.glob(os.path.join(glob.escape(str(folder)), "*.csv")))]


def read_cell_csv(path: str | os.PathLike, *, whole_slide: bool = False) -> np.ndarray:
    """Read one release CSV of headerless ``x,y,label`` lines.

    Each field is read with ``int()`` as the organisers' converter does, then checked with the
    validity rule (x, y in 0..1023 unless ``whole_slide``; label 1 or 2).

    Returns
    -------
    ndarray of int64, shape (N, 3)
        Rows ``[x, y, label]``, x and y in pixels.
    """
    coordinate_max = WHOLE_SLIDE_COORDINATE_MAX if whole_slide else PATCH_COORDINATE_MAX
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise InputError(f"{path}: cannot read file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text: byte offset {error.start}") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split(",")
        try:
            x, y, label = (int(field) for field in fields)
        except ValueError:
            raise InputError(
                f"{path}: line {number}: expected three integers x,y,label, got {line[:60]!r}"
            ) from None
        for name, value in (("x", x), ("y", y)):
            if not 0 <= value <= coordinate_max:
                raise InputError(
                    f"{path}: line {number}: {name} must be an integer in 0..{coordinate_max}, "
                    f"got {value}"
                )
        if label not in CLASS_NAMES:
            raise InputError(
                f"{path}: line {number}: label must be 1 (BC) or 2 (TC), got {label}"
            )
        rows.append((x, y, label))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def read_release_ground_truth(
    root: str | os.PathLike, split: str, *, whole_slide: bool = False
) -> tuple[PointSet, int, list[str]]:
    """Ground truth of one split of an OCELOT release folder.

    Returns
    -------
    points : PointSet
        All cells, image ``k`` from the k-th sorted CSV, probability 1.0.
    num_images : int
        Number of CSVs.
    stems : list of str
        CSV file stems (e.g. ``"001"``) in image order: keys of the release ``sample_pairs``.
    """
    if split not in SPLITS:
        raise InputError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    csvs = release_cell_csvs(root, split)
    tables = [read_cell_csv(path, whole_slide=whole_slide) for path in csvs]
    image = np.repeat(np.arange(len(tables), dtype=np.int64), [len(table) for table in tables])
    table = np.concatenate(tables) if tables else np.zeros((0, 3), dtype=np.int64)
    points = PointSet.from_arrays(image, table[:, :2], table[:, 2], np.ones(len(table)))
    return points, len(csvs), [path.stem for path in csvs]


def read_ground_truth(
    path: str | os.PathLike, *, split: str | None = None, whole_slide: bool = False
) -> tuple[PointSet, int, list[str] | None]:
    """Ground truth from a "Multiple points" JSON file or a release folder (needs ``split``).

    Returns
    -------
    points : PointSet
    num_images : int
    stems : list of str or None
        Release CSV stems in image order; None for a JSON document.
    """
    if Path(path).is_dir():
        if split is None:
            raise InputError(f"{path}: a release folder as ground truth needs --split")
        return read_release_ground_truth(path, split, whole_slide=whole_slide)
    points, num_images = read_points_document(path, role="ground_truth", whole_slide=whole_slide)
    return points, num_images, None


def read_organs(
    path: str | os.PathLike,
    *,
    num_images: int,
    split: str | None = None,
    stems: list[str] | None = None,
) -> list[str]:
    """The organ of each image ``0..num_images-1``.

    Parameters
    ----------
    path : path-like
        Either the release ``metadata.json`` (``{"sample_pairs": {"001": {...}, ...}}``) or a
        Grand Challenge metadata list (entry k describes ``image_k``).
    num_images : int
        Number of images of the ground truth; the metadata must describe exactly these.
    split : str, optional
        For release metadata without ``stems``: the images are the pairs whose ``subset`` is
        ``split``, sorted by key (the order of the sorted CSVs).
    stems : list of str, optional
        Release CSV stems in image order (from :func:`read_release_ground_truth`).
    """
    document = read_json_document(path)
    if type(document) is list:
        entries = [(f"[{index}]", entry) for index, entry in enumerate(document)]
    elif type(document) is dict and type(document.get("sample_pairs")) is dict:
        entries = _release_entries(path, document["sample_pairs"], split, stems)
    else:
        raise InputError(
            f'{path}: expected a Grand Challenge metadata list or a release metadata object with '
            f'"sample_pairs"'
        )
    if len(entries) != num_images:
        raise InputError(
            f"{path}: describes {len(entries)} images but the ground truth has {num_images}"
        )
    organs = []
    for where, entry in entries:
        organ = entry.get("organ") if type(entry) is dict else None
        if type(organ) is not str:
            raise InputError(f'{path}: {where}.organ: must be a string, got {organ!r}')
        organs.append(organ)
    return organs


def _release_entries(path, pairs: dict, split: str | None, stems: list[str] | None) -> list:
    if stems is None:
        if split is None:
            raise InputError(f"{path}: release metadata needs --split to select the images")
        stems = sorted(key for key, entry in pairs.items()
                       if type(entry) is dict and entry.get("subset") == split)
    entries = []
    for stem in stems:
        where = f'sample_pairs["{stem}"]'
        if stem not in pairs:
            raise InputError(f"{path}: {where}: missing, but annotations have {stem}.csv")
        entry = pairs[stem]
        subset = entry.get("subset", split) if type(entry) is dict else split
        if split is not None and subset != split:
            raise InputError(f'{path}: {where}.subset: expected "{split}", got {subset!r}')
        entries.append((where, entry))
    return entries

"""Pair metadata: the release's ``sample_pairs`` object and the platform's metadata list.

Each entry describes one pair: ``organ``, ``patch_x_offset`` and ``patch_y_offset`` (the cell
patch centre as a fraction of the tissue patch width and height), the ``cell`` and ``tissue``
boxes with their resolution (µm per pixel), ``slide_name`` and ``subset``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from evaluation.errors import DataError, preview
from evaluation.strict_json import json_kind, read_json_document
from evaluation.text import has_control_character

__all__ = [
    "METADATA_FILE",
    "patch_offsets",
    "read_gc_metadata",
    "read_organs",
    "release_sample_pairs",
    "resolve_organs",
]

#: The metadata file of a release folder and of a Grand Challenge input folder.
METADATA_FILE = "metadata.json"


def patch_offsets(entry: Any, where: str = "") -> tuple[float, float]:
    """``patch_x_offset`` and ``patch_y_offset`` of a metadata entry: the cell patch centre as a
    fraction of the tissue patch width and height.

    Raises
    ------
    DataError
        An offset is missing or not a number in [0, 1]; the line starts with ``where``.
    """
    offsets = []
    for key in ("patch_x_offset", "patch_y_offset"):
        value = entry.get(key) if isinstance(entry, Mapping) else None
        if type(value) not in (int, float) or not 0 <= value <= 1:
            raise DataError(f"{where}{key}: must be a number in [0, 1], got {preview(value)}")
        offsets.append(float(value))
    return offsets[0], offsets[1]


def release_sample_pairs(path: str | os.PathLike) -> dict:
    """The ``sample_pairs`` object of a release ``metadata.json``: stem -> entry."""
    document = read_json_document(path)
    pairs = document.get("sample_pairs") if type(document) is dict else None
    if type(pairs) is not dict:
        raise DataError(f'{path}: expected an object with a "sample_pairs" object')
    return pairs


def read_gc_metadata(input_dir: str | os.PathLike) -> list[dict]:
    """The metadata list of a Grand Challenge input folder: entry k describes pair k.

    Raises
    ------
    DataError
        Not a list of objects, or an entry without patch offsets in [0, 1].
    """
    path = Path(input_dir) / "metadata.json"
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    metadata = read_json_document(path)
    if type(metadata) is not list:
        raise DataError(
            f"{path}: expected a JSON list with one entry per pair, got {json_kind(metadata)}"
        )
    for k, entry in enumerate(metadata):
        if type(entry) is not dict:
            raise DataError(f"{path}: [{k}]: expected an object, got {json_kind(entry)}")
        patch_offsets(entry, f"{path}: [{k}].")
    return metadata


def resolve_organs(
    metadata: Path | None,
    *,
    num_images: int,
    split: str | None = None,
    stems: list[str] | None = None,
    search: tuple[Path | None, ...] = (),
) -> tuple[list[str] | None, Path | None]:
    """The organ of each image and the metadata file that names them.

    Parameters
    ----------
    metadata : Path or None
        The metadata file the user named; None: the ``metadata.json`` of the first folder of
        ``search`` that holds one (None entries are skipped).
    num_images, split, stems
        As for :func:`read_organs`.

    Returns
    -------
    organs : list of str or None
        None when no metadata file is named or found.
    metadata : Path or None
        The file read.
    """
    if metadata is None:
        metadata = next(
            (
                folder / METADATA_FILE
                for folder in search
                if folder is not None and (folder / METADATA_FILE).is_file()
            ),
            None,
        )
    if metadata is None:
        return None, None
    return read_organs(metadata, num_images=num_images, split=split, stems=stems), metadata


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
        raise DataError(
            f"{path}: expected a Grand Challenge metadata list or a release metadata object with "
            f'"sample_pairs"'
        )
    if len(entries) != num_images:
        raise DataError(
            f"{path}: describes {len(entries)} images but the ground truth has {num_images}"
        )
    organs = []
    for where, entry in entries:
        organ = entry.get("organ") if type(entry) is dict else None
        if type(organ) is not str:
            raise DataError(f"{path}: {where}.organ: must be a string, got {preview(organ)}")
        if has_control_character(organ):
            raise DataError(
                f"{path}: {where}.organ: must not hold control characters, got {preview(organ)}"
            )
        organs.append(organ)
    return organs


def _release_entries(path, pairs: dict, split: str | None, stems: list[str] | None) -> list:
    if stems is None:
        if split is None:
            raise DataError(f"{path}: release metadata needs a split to select the images")
        stems = sorted(
            key
            for key, entry in pairs.items()
            if type(entry) is dict and entry.get("subset") == split
        )
    entries = []
    for stem in stems:
        where = f'sample_pairs["{stem}"]'
        if stem not in pairs:
            raise DataError(f"{path}: {where}: missing, but annotations have {stem}.csv")
        entry = pairs[stem]
        subset = entry.get("subset", split) if type(entry) is dict else split
        if split is not None and subset != split:
            raise DataError(f'{path}: {where}.subset: expected "{split}", got {preview(subset)}')
        entries.append((where, entry))
    return entries

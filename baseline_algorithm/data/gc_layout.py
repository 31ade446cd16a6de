"""Grand Challenge layouts of a split: algorithm input, ground truth and evaluation input.

::

    GC/input/images/cell_patches/000.tif      N*S x S x 3 stacked cell patches
    GC/input/images/tissue_patches/000.tif    N*S x S x 3 stacked tissue patches
    GC/input/metadata.json                    list, entry k describes pair k
    GC/ground_truth/cell_gt.json              "Multiple points" with num_images
    GC/ground_truth/metadata.json             the input's metadata list (gives the scorer organs)
    GC/evaluation/input/predictions.json      the platform's list of algorithm jobs
    GC/evaluation/input/<pk>/output/cell_classification.json   that job's predictions
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from evaluation import PointSet, points_document, write_json_atomic

from .pairs import BC, TC, Pair
from .stacked import write_stacked_tiff

STACK_NAME = "000.tif"


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, obj)


def _point_set(image: np.ndarray, points: np.ndarray, probability: np.ndarray) -> PointSet:
    return PointSet.from_arrays(image, points[:, :2], points[:, 2], probability)


class GrandChallengeWriter:
    """Collects the pairs of one split and writes its Grand Challenge layouts.

    Patches are buffered in memory-mapped temporary files, so memory stays at one pair.

    Parameters
    ----------
    directory : Path
        Receives ``input/``, ``ground_truth/`` and ``evaluation/``.
    count, size : int
        Number of pairs and patch side in pixels.
    compression : str or None
        TIFF compression (``None``: uncompressed single strip, as the platform writes; ``"zlib"``).
    """

    def __init__(self, directory: Path, count: int, size: int, compression: str | None = None):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.compression = compression
        self._scratch = tempfile.TemporaryDirectory(dir=self.directory, prefix=".stacking-")
        shape = (count, size, size, 3)
        self._cells = np.lib.format.open_memmap(Path(self._scratch.name) / "cells.npy", "w+", np.uint8, shape)
        self._tissues = np.lib.format.open_memmap(Path(self._scratch.name) / "tissues.npy", "w+", np.uint8, shape)
        self._metadata: list[dict | None] = [None] * count
        self._points: list[np.ndarray | None] = [None] * count

    def add(self, index: int, pair: Pair) -> None:
        """Store pair ``index`` (becomes ``image_<index>``)."""
        self._cells[index] = pair.cell_image
        self._tissues[index] = pair.tissue_image
        self._metadata[index] = pair.meta
        self._points[index] = pair.cell_points

    def finish(self, rng: np.random.Generator, cell_mpp: float) -> None:
        """Write every layout and remove the temporary buffers.

        Parameters
        ----------
        rng : Generator
            Draws the noisy predictions of the evaluation input and the job id.
        cell_mpp : float
            Cell-patch pixel size in µm (scales the prediction jitter).
        """
        if any(meta is None for meta in self._metadata):
            raise ValueError("not every pair was added")
        images = self.directory / "input" / "images"
        for kind, stack in (("cell_patches", self._cells), ("tissue_patches", self._tissues)):
            (images / kind).mkdir(parents=True, exist_ok=True)
            write_stacked_tiff(images / kind / STACK_NAME, stack, compression=self.compression)
        _write_json(self.directory / "input" / "metadata.json", self._metadata)
        _write_json(self.directory / "ground_truth" / "metadata.json", self._metadata)

        image = np.concatenate([np.full(len(p), k) for k, p in enumerate(self._points)]).astype(np.int64)
        points = np.concatenate(self._points).reshape(-1, 3)
        _write_json(
            self.directory / "ground_truth" / "cell_gt.json",
            points_document(_point_set(image, points, np.ones(len(points))), num_images=len(self._points)),
        )
        size = self._cells.shape[1]
        pred_image, pred_points, pred_probability = noisy_predictions(rng, image, points, size, jitter_px=0.5 / cell_mpp)
        write_evaluation_input(
            self.directory / "evaluation" / "input",
            str(uuid.UUID(bytes=rng.bytes(16), version=4)),
            points_document(_point_set(pred_image, pred_points, pred_probability)),
        )
        self._cells = self._tissues = None
        self._scratch.cleanup()


def noisy_predictions(
    rng: np.random.Generator,
    image: np.ndarray,
    points: np.ndarray,
    size: int,
    *,
    jitter_px: float,
    drop: float = 0.12,
    flip: float = 0.12,
    false_positive: float = 0.10,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A plausible detector output made from ground truth: jittered, incomplete, partly wrong.

    Parameters
    ----------
    rng : Generator
    image : (N,) int
        Image index of each ground-truth point.
    points : (N, 3) int
        Ground truth ``[x, y, label]``, cell-patch pixels.
    size : int
        Patch side in pixels (predictions are clipped into it).
    jitter_px : float
        Standard deviation of the position error, pixels.
    drop, flip, false_positive : float
        Share of missed cells, of kept cells given the other class, and number of false positives
        per ground-truth point.

    Returns
    -------
    image : (M,) int64, points : (M, 3) int64, probability : (M,) float64 in [0, 1]
        Sorted by image; within an image, in random order.
    """
    keep = rng.random(len(points)) >= drop
    kept_image, kept = image[keep], points[keep].copy()
    flipped = rng.random(len(kept)) < flip
    kept[flipped, 2] = np.where(kept[flipped, 2] == TC, BC, TC)
    kept[:, :2] = np.clip(np.round(kept[:, :2] + rng.normal(0, jitter_px, (len(kept), 2))), 0, size - 1)
    probability = np.where(flipped, rng.beta(3, 3, len(kept)), rng.beta(6, 2, len(kept)))

    num_images = int(image.max()) + 1 if len(image) else 0
    extra = int(rng.poisson(false_positive * len(points))) if num_images else 0
    extra_image = rng.integers(0, max(num_images, 1), extra)
    extra_points = np.column_stack(
        [rng.integers(0, size, (extra, 2)), np.where(rng.random(extra) < 0.35, TC, BC)]
    )
    all_image = np.concatenate([kept_image, extra_image]).astype(np.int64)
    all_points = np.concatenate([kept, extra_points]).astype(np.int64).reshape(-1, 3)
    all_probability = np.round(np.concatenate([probability, rng.beta(2, 4, extra)]), 4)
    order = np.lexsort((rng.random(len(all_image)), all_image))
    return all_image[order], all_points[order], all_probability[order]


def write_evaluation_input(directory: Path, pk: str, predictions: dict) -> None:
    """Write the evaluation container's ``/input``: one succeeded job and its output file."""
    jobs = [
        {
            "pk": pk,
            "status": "Succeeded",
            "inputs": [
                {
                    "interface": {"slug": "cell-patches", "kind": "Image", "relative_path": "images/cell_patches"},
                    "image": {"name": STACK_NAME},
                },
                {
                    "interface": {"slug": "tissue-patches", "kind": "Image", "relative_path": "images/tissue_patches"},
                    "image": {"name": STACK_NAME},
                },
            ],
            "outputs": [
                {
                    "interface": {
                        "slug": "cell-classification",
                        "kind": "Multiple points",
                        "relative_path": "cell_classification.json",
                    },
                    "value": None,
                }
            ],
        }
    ]
    if directory.exists():
        shutil.rmtree(directory)
    _write_json(directory / "predictions.json", jobs)
    _write_json(directory / pk / "output" / "cell_classification.json", predictions)

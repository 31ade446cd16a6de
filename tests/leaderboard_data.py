"""Small synthetic test sets for the leaderboard tests: ground truth and submissions as files.

Ground-truth cells lie on a grid 64 px apart, so a prediction placed a few pixels from a cell can
only match that cell: which predictions are true positives is decided here, not by the matcher.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from evaluation import PointSet, points_document

GRID_PX = 64
CELLS_PER_SIDE = 1024 // GRID_PX


def ground_truth(num_images: int, cells_per_image: int, seed: int = 0) -> PointSet:
    """``cells_per_image`` cells per image at distinct grid nodes, random classes."""
    rng = np.random.default_rng(seed)
    nodes = np.stack(
        [rng.choice(CELLS_PER_SIDE**2, cells_per_image, replace=False) for _ in range(num_images)]
    )
    xy = np.stack([nodes % CELLS_PER_SIDE, nodes // CELLS_PER_SIDE], axis=-1).reshape(-1, 2)
    image = np.repeat(np.arange(num_images), cells_per_image)
    label = rng.choice([1, 2], size=len(image))
    return PointSet.from_arrays(image, xy * GRID_PX + GRID_PX // 2, label, np.ones(len(image)))


def submission(
    truth: PointSet,
    found: np.ndarray,
    *,
    wrong_class: np.ndarray | None = None,
    spurious: int = 0,
    num_images: int | None = None,
    seed: int = 0,
) -> PointSet:
    """Predictions: the cells where ``found`` (a few px off), ``spurious`` far from every cell.

    Parameters
    ----------
    truth : PointSet
    found : ndarray of bool, shape (len(truth),)
        Cells that get a prediction of their class (a true positive each) ...
    wrong_class : ndarray of bool, shape (len(truth),), optional
        ... or of the other class (a false positive and a false negative) where also set here.
    spurious : int
        Predictions on the half-way points between grid nodes (false positives).
    num_images : int, optional
        Images the spurious points spread over (default: those of ``truth``).
    """
    rng = np.random.default_rng(seed)
    wrong_class = np.zeros(len(truth), dtype=bool) if wrong_class is None else wrong_class
    label = np.where(wrong_class, 3 - truth.label, truth.label)[found]
    xy = truth.xy[found] + rng.integers(-4, 5, size=(int(found.sum()), 2))
    images = int(truth.image.max()) + 1 if num_images is None else num_images
    corner = rng.integers(0, CELLS_PER_SIDE, size=(spurious, 2)) * GRID_PX
    return PointSet.from_arrays(
        np.concatenate([truth.image[found], rng.integers(0, images, spurious)]),
        np.concatenate([xy, corner]),
        np.concatenate([label, rng.choice([1, 2], size=spurious)]),
        np.round(rng.random(int(found.sum()) + spurious), 4),
    )


def write_points(path: Path, points: PointSet, num_images: int | None = None) -> Path:
    """Write ``points`` as a "Multiple points" file (with ``num_images`` for ground truth)."""
    path.write_text(json.dumps(points_document(points, num_images)))
    return path

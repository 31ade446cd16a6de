"""The points of many images: the :class:`PointSet` every reader returns and every scorer takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evaluation.constants import PATCH_SIZE_PX

__all__ = ["PATCH_COORDINATE_MAX", "WHOLE_SLIDE_COORDINATE_MAX", "PointSet"]

#: Largest x or y (pixels) the organisers accept: cell patches are 1024 x 1024.
PATCH_COORDINATE_MAX = PATCH_SIZE_PX - 1

#: Largest x or y (pixels) in whole-slide mode: float32, in which distances are computed,
#: represents every integer only up to 2**24.
WHOLE_SLIDE_COORDINATE_MAX = 2**24 - 1


@dataclass(frozen=True)
class PointSet:
    """Points of many images, one row per point, in file order.

    Attributes
    ----------
    image : ndarray of int64, shape (N,)
        Image index ``k`` of the entry's name ``image_k``.
    xy : ndarray of int64, shape (N, 2)
        Pixel coordinates (x, y).
    label : ndarray of int64, shape (N,)
        Class: 1 = BC (background cell), 2 = TC (tumour cell).
    probability : ndarray of float64, shape (N,)
        Confidence as given (1.0 for ground truth).
    """

    image: np.ndarray
    xy: np.ndarray
    label: np.ndarray
    probability: np.ndarray

    def __post_init__(self) -> None:
        n = self.image.shape[0]
        if (
            self.image.shape != (n,)
            or self.xy.shape != (n, 2)
            or self.label.shape != (n,)
            or self.probability.shape != (n,)
        ):
            raise ValueError(
                "PointSet arrays must have shapes (N,), (N, 2), (N,), (N,); got "
                f"{self.image.shape}, {self.xy.shape}, {self.label.shape}, {self.probability.shape}"
            )

    def __len__(self) -> int:
        return int(self.image.shape[0])

    @classmethod
    def empty(cls) -> PointSet:
        """A point set without points."""
        return cls.from_arrays(np.zeros(0), np.zeros((0, 2)), np.zeros(0), np.zeros(0))

    @classmethod
    def from_arrays(cls, image, xy, label, probability) -> PointSet:
        """Build a point set from array-likes, checking dtypes and values.

        Parameters
        ----------
        image : array_like of int, shape (N,)
            Image index of each point, >= 0.
        xy : array_like of int, shape (N, 2)
            Pixel coordinates (x, y), >= 0.
        label : array_like of int, shape (N,)
            1 (BC) or 2 (TC).
        probability : array_like of float, shape (N,)
            Values in [0, 1].
        """
        image = _integer_array(image, "image")
        xy = _integer_array(xy, "xy")
        if xy.size == 0:
            xy = xy.reshape(0, 2)
        label = _integer_array(label, "label")
        probability = np.asarray(probability, dtype=np.float64)
        if np.any(image < 0):
            raise ValueError("image indices must be >= 0")
        if np.any(xy < 0):
            raise ValueError("coordinates must be >= 0")
        if not np.all((label == 1) | (label == 2)):
            raise ValueError("labels must be 1 (BC) or 2 (TC)")
        if not np.all((probability >= 0.0) & (probability <= 1.0)):
            raise ValueError("probabilities must lie in [0, 1]")
        return cls(image=image, xy=xy, label=label, probability=probability)

    @classmethod
    def concatenate(cls, sets: Sequence[PointSet]) -> PointSet:
        """The points of ``sets`` one after the other, in order."""
        if not sets:
            return cls.empty()
        return cls(
            *(
                np.concatenate([getattr(points, name) for points in sets])
                for name in ("image", "xy", "label", "probability")
            )
        )

    def take(self, rows) -> PointSet:
        """The points at ``rows`` (indices or boolean mask), in that order."""
        return PointSet(self.image[rows], self.xy[rows], self.label[rows], self.probability[rows])


def _integer_array(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {array.dtype}")
    return array.astype(np.int64)

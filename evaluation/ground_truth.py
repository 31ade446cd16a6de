"""The ground truth as one value: the cells of images ``0..num_images-1`` and what is known of
those images. Every ground-truth reader returns it (:func:`evaluation.release.read_ground_truth`)
and every command and entry passes it on."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from evaluation.points import PointSet

__all__ = ["GroundTruth"]


@dataclass(frozen=True)
class GroundTruth:
    """Ground truth of one document or one release split.

    Attributes
    ----------
    points : PointSet
        Every cell, probability 1.0; image ``k`` is the k-th image of the split.
    num_images : int
        Number of images, cells or not.
    source : str
        The file or folder it came from, for messages (``release (split test)`` for a release).
    stems : list of str or None
        Release CSV stems in image order; None for a "Multiple points" document.
    organs : list of str or None
        The organ of each image; None when no metadata names them.
    """

    points: PointSet
    num_images: int
    source: str
    stems: list[str] | None = None
    organs: list[str] | None = None

    def with_organs(self, organs: list[str] | None) -> GroundTruth:
        """The same ground truth with ``organs`` (None: unknown)."""
        return dataclasses.replace(self, organs=organs)

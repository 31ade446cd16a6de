"""Test-time augmentation: the model sees flipped and rotated views of a pair, and its maps are
averaged in the pair's own frame before cells are found once.

A view is an element of the dihedral group D4 of the square: ``k`` quarter turns counter-clockwise
(``numpy.rot90``), then a left-right mirror if ``mirror``. Each view moves the cell patch, the
tissue patch and the cell box together, so the cell region inside the tissue patch moves with
them; :func:`to_original` turns a map computed on the view back.

``none`` is the identity alone, ``flips`` the identity and the horizontal and vertical flips,
``d4`` all eight views.

:func:`averaged_log_probabilities` is independent of the model: any detector that computes
per-pixel class log-probabilities (``log_probabilities_of(pairs) -> (B, C, S, S)``) can average
them over the views with it, and find its cells once on the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

from evaluation.pairs import Pair

__all__ = [
    "TTA_MODES",
    "View",
    "averaged_log_probabilities",
    "to_original",
    "view_of_pair",
    "views",
]


class View(NamedTuple):
    """``quarter_turns`` counter-clockwise quarter turns, then a left-right mirror if ``mirror``."""

    quarter_turns: int
    mirror: bool


IDENTITY = View(0, False)
#: The views of each ``--tta`` mode. A vertical flip is a half turn then a left-right mirror.
TTA_MODES = {
    "none": (IDENTITY,),
    "flips": (IDENTITY, View(0, True), View(2, True)),
    "d4": tuple(View(turns, mirror) for mirror in (False, True) for turns in range(4)),
}


def views(mode: str) -> tuple[View, ...]:
    """The views of ``mode`` (one of :data:`TTA_MODES`)."""
    if mode not in TTA_MODES:
        raise ValueError(f"tta {mode!r} is not one of {', '.join(TTA_MODES)}")
    return TTA_MODES[mode]


def _image_in_view(image: np.ndarray, view: View) -> np.ndarray:
    """(H, W, ...) -> the array as the view shows it."""
    turned = np.rot90(image, view.quarter_turns, axes=(0, 1))
    return np.ascontiguousarray(turned[:, ::-1] if view.mirror else turned)


def _box_in_view(
    box: tuple[float, float, float, float], height: int, width: int, view: View
) -> tuple[float, float, float, float]:
    """A box ``(x0, y0, x1, y1)`` in continuous pixel coordinates of an H x W image, in the view.

    One counter-clockwise quarter turn sends ``(x, y)`` to ``(y, W - x)`` on the W x H result.
    """
    x0, y0, x1, y1 = box
    for _ in range(view.quarter_turns % 4):
        x0, y0, x1, y1 = y0, width - x1, y1, width - x0
        height, width = width, height
    if view.mirror:
        x0, x1 = width - x1, width - x0
    return (x0, y0, x1, y1)


def view_of_pair(pair: Pair, view: View) -> Pair:
    """``pair`` as ``view`` shows it: both patches and the cell box moved together (annotations,
    which inference does not read, are dropped)."""
    if view == IDENTITY:
        return pair
    height, width = pair.tissue_image.shape[:2]
    return dataclasses.replace(
        pair,
        cell_image=_image_in_view(pair.cell_image, view),
        tissue_image=_image_in_view(pair.tissue_image, view),
        cell_box=_box_in_view(pair.cell_box, height, width, view),
        cell_points=np.zeros((0, 3), dtype=np.int64),
        tissue_mask=None,
    )


def to_original(maps: np.ndarray, view: View) -> np.ndarray:
    """Maps ``(..., S, S)`` computed on a view, in the original frame (the view undone)."""
    if view.mirror:
        maps = maps[..., ::-1]
    return np.rot90(maps, -view.quarter_turns, axes=(-2, -1))


def averaged_log_probabilities(
    pairs: Sequence[Pair],
    mode: str,
    log_probabilities_of: Callable[[Sequence[Pair]], np.ndarray],
) -> np.ndarray:
    """The log of the mean probability over the views of ``mode``, each view's map in the
    original frame.

    The mean is taken in log space (``logaddexp``), so a probability that float32 would round to
    1.0 keeps its distance to 1 in the log-odds that peaks are searched on.

    Parameters
    ----------
    pairs : sequence of Pair
        Square patches (a quarter turn keeps the shape).
    mode : {"none", "flips", "d4"}
    log_probabilities_of : callable
        ``log_probabilities_of(pairs) -> ndarray (B, C, S, S)``: per-pixel class
        log-probabilities for pairs as the view shows them.

    Returns
    -------
    ndarray, shape (B, C, S, S), float32
        ``log(mean over views of p)``.
    """
    total = None
    chosen = views(mode)
    for view in chosen:
        maps = to_original(log_probabilities_of([view_of_pair(p, view) for p in pairs]), view)
        total = maps if total is None else np.logaddexp(total, maps)
    return np.ascontiguousarray(total - np.float32(np.log(len(chosen))), dtype=np.float32)

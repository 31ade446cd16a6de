"""Greedy matching of predicted to ground-truth cells, exactly as the OCELOT 2023 scorer does it.

For one image and one class the organisers visit the predictions in the order
``np.argsort(-probability.astype(np.float32))`` (numpy's default, unstable sort, so ties resolve
the way that call resolves them), and give each visited prediction the nearest still-free GT point
whose float32 Euclidean distance is ``<= cutoff`` (distance ties: the lowest GT index).

The organisers compute the full (#predictions x #GT) distance matrix. Here a grid of cells a hair
larger than the cutoff finds the candidate pairs, the exact float32 distance decides,
and one pass over the pairs, sorted by (visit rank, distance, GT index), does the greedy
assignment: time and memory grow with the number of close pairs, not with #predictions x #GT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from evaluation.constants import CLASS_NAMES, MATCH_RADIUS_PX
from evaluation.limits import LimitError, current_limits
from evaluation.points import PointSet

__all__ = ["candidate_pairs", "match_greedy", "match_point_sets", "visit_order"]

# The grid is laid out in float64; the float32 distance may be smaller by a few ulps.
_SEARCH_SLACK = 1e-5


def visit_order(probability: np.ndarray) -> np.ndarray:
    """The order in which the organisers visit predictions: highest float32 probability first.

    Parameters
    ----------
    probability : ndarray, shape (P,)
        Probabilities of one image and one class, in file order.

    Returns
    -------
    ndarray of int64, shape (P,)
        ``np.argsort(-probability.astype(np.float32))``, the very call the organisers make, so
        that tied probabilities are visited in the same (not necessarily file) order.
    """
    return np.argsort(-np.asarray(probability).astype(np.float32))


def candidate_pairs(
    pred_xy: np.ndarray, gt_xy: np.ndarray, radius_px: float = MATCH_RADIUS_PX
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All (prediction, GT) pairs whose float32 distance is ``<= radius_px`` (in float32).

    Parameters
    ----------
    pred_xy : ndarray, shape (P, 2)
        Predicted (x, y) in pixels.
    gt_xy : ndarray, shape (G, 2)
        Ground-truth (x, y) in pixels.
    radius_px : float
        Cutoff in pixels; compared in float32 like the organisers' ``distance <= 15``.

    Returns
    -------
    pred_index, gt_index : ndarray of int64, shape (K,)
        Rows of ``pred_xy`` and ``gt_xy`` of each pair, in no particular order.
    distance : ndarray of float32, shape (K,)
        ``sqrt(dx*dx + dy*dy)`` computed in float32, as ``np.linalg.norm`` does on float32 input.
    """
    pred_xy = _as_xy(pred_xy, "pred_xy")
    gt_xy = _as_xy(gt_xy, "gt_xy")
    cutoff = _float32_cutoff(radius_px)
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
    if len(pred_xy) == 0 or len(gt_xy) == 0:
        return empty
    search_radius = _search_radius(cutoff)
    ranges = _neighbour_ranges(pred_xy, gt_xy, search_radius)
    _check_candidate_pairs(int(ranges.count.sum()), search_radius)
    return ranges.pairs_within(pred_xy, gt_xy, cutoff)


def _search_radius(cutoff: np.float32) -> float:
    return float(cutoff) * (1.0 + _SEARCH_SLACK) + _SEARCH_SLACK


@dataclass(frozen=True)
class _NeighbourRanges:
    """For each prediction, three runs of ground truth (in ``gt_order``) in neighbouring cells.

    ``first`` and ``count`` have shape (P, 3): the runs of the cell columns left of, at and right
    of the prediction's cell, each spanning the rows above, at and below it.
    """

    pred_order: np.ndarray
    gt_order: np.ndarray
    first: np.ndarray
    count: np.ndarray

    def pairs_per_prediction(self) -> np.ndarray:
        """Number of candidate pairs of each prediction (in ``pred_order``)."""
        return self.count.sum(axis=1)

    def pairs_within(
        self, pred_xy: np.ndarray, gt_xy: np.ndarray, cutoff: np.float32
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The candidate pairs whose float32 distance is ``<= cutoff``, and that distance.

        Returns (prediction row, GT row, distance), each prediction's pairs together. The
        distances are computed on the points in grid order, where both sides of consecutive
        pairs lie close together in memory.
        """
        count = self.count.ravel()
        total = int(count.sum())
        pred_position = np.repeat(np.arange(len(self.pred_order)), self.pairs_per_prediction())
        within = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        gt_position = np.repeat(self.first.ravel(), count) + within
        # One axis at a time: numpy gathers 1-D arrays far faster than rows of a 2-D one.
        dx, dy = (
            pred_xy[:, axis].astype(np.float32)[self.pred_order][pred_position]
            - gt_xy[:, axis].astype(np.float32)[self.gt_order][gt_position]
            for axis in (0, 1)
        )
        distance = np.sqrt(dx * dx + dy * dy)
        keep = distance <= cutoff
        return (
            self.pred_order[pred_position[keep]],
            self.gt_order[gt_position[keep]],
            distance[keep],
        )


def _neighbour_ranges(
    pred_xy: np.ndarray,
    gt_xy: np.ndarray,
    cell_side: float,
    pred_group: np.ndarray | None = None,
    gt_group: np.ndarray | None = None,
) -> _NeighbourRanges | None:
    """Find, on a square grid, the ground truth in the same or adjacent cells of each prediction.

    With cells of side ``cell_side`` >= the radius, each pair within the radius is among them.
    Points may carry a group (image and class), and only points of one group pair up. The ground
    truth is sorted by (group, column, row) once; the three cells of one column next to a
    prediction are consecutive in that order, so each prediction needs three runs, found by
    binary searches made in sorted order (cache-friendly). Numpy alone: importing
    ``scipy.spatial`` for a KD-tree costs more time than scoring the whole OCELOT test set.

    Returns None when the (group, column, row) keys would not fit in int64.
    """
    # Column and row of each point's cell, from 1 (so that neighbours are >= 0); one axis at a
    # time, as numpy is faster on contiguous 1-D arrays.
    pred_column, pred_row, gt_column, gt_row = (
        np.floor(xy[:, axis] / cell_side).astype(np.int64)
        for xy in (pred_xy, gt_xy)
        for axis in (0, 1)
    )
    extents = []
    for pred_cells, gt_cells in ((pred_column, gt_column), (pred_row, gt_row)):
        origin = min(pred_cells.min(), gt_cells.min()) - 1
        pred_cells -= origin
        gt_cells -= origin
        extents.append(int(max(pred_cells.max(), gt_cells.max())) + 2)
    columns, rows = extents
    gt_key = gt_column * rows + gt_row
    pred_key = pred_column * rows + pred_row
    groups = 1
    if pred_group is not None:
        groups = int(max(pred_group.max(), gt_group.max())) + 1
        if groups * columns * rows >= 2**62:
            return None
        gt_key += gt_group * (columns * rows)
        pred_key += pred_group * (columns * rows)
    # Any order within a cell will do: the pairs are put in a total order before assignment.
    gt_order, sorted_key = _sort_keys(gt_key, groups * columns * rows)
    pred_order, needles = _sort_keys(pred_key, groups * columns * rows)
    first = np.empty((len(needles), 3), np.int64)
    count = np.empty((len(needles), 3), np.int64)
    for column, dx in enumerate((-1, 0, 1)):
        first[:, column] = np.searchsorted(sorted_key, needles + (dx * rows - 1), side="left")
        count[:, column] = (
            np.searchsorted(sorted_key, needles + (dx * rows + 1), side="right") - first[:, column]
        )
    return _NeighbourRanges(pred_order, gt_order, first, count)


def _sort_keys(key: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows that sort ``key`` (int64 in ``0..bound-1``; any order among equal keys) and the
    sorted keys.

    Where key and row fit in 63 bits together, the row rides in the key's low bits and one
    value sort does the work, cheaper than ``np.argsort`` and the gather (the matcher's share
    of the whole-slide time: docs/benchmarks.md, "Whole slides").
    """
    shift = max(1, (len(key) - 1).bit_length())
    if bound >= 2 ** (63 - shift):
        order = np.argsort(key)
        return order, key[order]
    packed = np.sort((key << shift) | np.arange(len(key)))
    return packed & ((1 << shift) - 1), packed >> shift


def _check_candidate_pairs(total: int, cell_side: float) -> None:
    current_limits().check(
        "candidate_pairs",
        total,
        "predictions against ground truth",
        f"candidate pairs (points in neighbouring {cell_side:.4g} px cells)",
    )


def match_greedy(
    pred_xy: np.ndarray,
    pred_probability: np.ndarray,
    gt_xy: np.ndarray,
    radius_px: float = MATCH_RADIUS_PX,
) -> np.ndarray:
    """Match the predictions of ONE image and ONE class to its ground truth.

    Parameters
    ----------
    pred_xy : ndarray, shape (P, 2)
        Predicted (x, y) in pixels, in file order.
    pred_probability : ndarray, shape (P,)
        Their probabilities (cast to float32 for ordering, as the organisers do).
    gt_xy : ndarray, shape (G, 2)
        Ground-truth (x, y) in pixels, in file order (the row is the GT index).
    radius_px : float
        Cutoff in pixels (inclusive, compared in float32); 15 px = 3 µm at 0.2 µm/px.

    Returns
    -------
    ndarray of int64, shape (P,)
        For each prediction (file order) the row of the GT point it matched, or -1 (FP).
    """
    pred_probability = np.asarray(pred_probability)
    if pred_probability.shape != (len(pred_xy),):
        raise ValueError(
            f"pred_probability must have shape ({len(pred_xy)},), got {pred_probability.shape}"
        )
    pred_index, gt_index, distance = candidate_pairs(pred_xy, gt_xy, radius_px)
    rank = np.empty(len(pred_probability), dtype=np.int64)
    rank[visit_order(pred_probability)] = np.arange(len(pred_probability))
    return _assign_greedily(pred_index, gt_index, distance, rank, len(gt_xy))


def _assign_greedily(
    pred_index: np.ndarray,
    gt_index: np.ndarray,
    distance: np.ndarray,
    rank: np.ndarray,
    num_gt: int,
) -> np.ndarray:
    """The greedy rule on candidate pairs: matched GT row per prediction, or -1.

    ``rank`` orders the predictions (lowest visited first). A prediction and a GT point that
    share a pair and no other match each other whatever the order, so only the other pairs go
    through the ordered pass.
    """
    matched = np.full(len(rank), -1, dtype=np.int64)
    if pred_index.size == 0:
        return matched
    alone = (np.bincount(pred_index, minlength=len(rank)) == 1)[pred_index] & (
        np.bincount(gt_index, minlength=num_gt) == 1
    )[gt_index]
    matched[pred_index[alone]] = gt_index[alone]
    contested = ~alone
    pred_index = pred_index[contested]
    gt_index = gt_index[contested]
    # Pairs grouped by visit rank, each prediction's candidates nearest first, then lowest GT.
    by_rank = np.lexsort((gt_index, distance[contested], rank[pred_index]))
    pred_index = pred_index[by_rank]
    gt_index = gt_index[by_rank]
    winners = _assign_in_order(pred_index.tolist(), gt_index.tolist(), num_gt)
    matched[pred_index[winners]] = gt_index[winners]
    return matched


def _assign_in_order(pair_pred: list[int], pair_gt: list[int], num_gt: int) -> list[int]:
    """Positions of the pairs the greedy rule accepts.

    ``pair_pred`` must list each prediction's pairs together, predictions in visit order and
    each prediction's pairs in preference order: a prediction takes its first free GT point.
    """
    taken = bytearray(num_gt)
    winners = []
    last_matched = -1
    for position, (pred, gt) in enumerate(zip(pair_pred, pair_gt)):
        if pred != last_matched and not taken[gt]:
            taken[gt] = 1
            last_matched = pred
            winners.append(position)
    return winners


def match_point_sets(
    predictions: PointSet,
    ground_truth: PointSet,
    *,
    radius_px: float = MATCH_RADIUS_PX,
    matcher=match_greedy,
) -> np.ndarray:
    """Match every image and class of two point sets.

    Parameters
    ----------
    predictions, ground_truth : PointSet
        Points of any number of images; rows are in file order.
    radius_px : float
        Cutoff in pixels (inclusive, compared in float32).
    matcher : callable
        Matches one image and class, with the signature of :func:`match_greedy` (the challenge's
        rule, the default) or :func:`evaluation.hungarian.match_hungarian`.

    Returns
    -------
    ndarray of int64, shape (len(predictions),)
        For each prediction row the ground-truth row it matched, or -1 (a false positive).
        Unmatched ground-truth rows are the false negatives.
    """
    if matcher is match_greedy and len(predictions) and len(ground_truth):
        matched = _match_all_greedy(predictions, ground_truth, radius_px)
        if matched is not None:
            return matched
    matched = np.full(len(predictions), -1, dtype=np.int64)
    pred_groups = _rows_by_image_and_class(predictions)
    for key, gt_rows in _rows_by_image_and_class(ground_truth).items():
        pred_rows = pred_groups.get(key)
        if pred_rows is None:
            continue
        try:
            local = matcher(
                predictions.xy[pred_rows],
                predictions.probability[pred_rows],
                ground_truth.xy[gt_rows],
                radius_px,
            )
        except LimitError as error:
            image, label = key
            raise LimitError(f"image_{image}, class {CLASS_NAMES[label]}: {error}") from None
        hit = local >= 0
        matched[pred_rows[hit]] = gt_rows[local[hit]]
    return matched


def _match_all_greedy(
    predictions: PointSet, ground_truth: PointSet, radius_px: float
) -> np.ndarray | None:
    """:func:`match_greedy` of every image and class at once: one grid, one ordered pass.

    The same matching as one :func:`match_greedy` call per image and class, without a numpy
    call per group (the OCELOT test set has 260). Returns None where the per-group path must
    decide: a group over the candidate-pair limit (whose error that path names), or grid keys
    too large for int64.
    """
    cutoff = _float32_cutoff(radius_px)
    pred_group, gt_group = _group_codes(predictions, ground_truth)
    search_radius = _search_radius(cutoff)
    ranges = _neighbour_ranges(predictions.xy, ground_truth.xy, search_radius, pred_group, gt_group)
    if ranges is None:
        return None
    pairs_per_group = np.bincount(
        pred_group[ranges.pred_order], weights=ranges.pairs_per_prediction()
    )
    if pairs_per_group.max() > current_limits().candidate_pairs:
        return None
    pred_index, gt_index, distance = ranges.pairs_within(predictions.xy, ground_truth.xy, cutoff)
    rank = _visit_ranks(predictions.probability, pred_group)
    return _assign_greedily(pred_index, gt_index, distance, rank, len(ground_truth))


def _group_codes(predictions: PointSet, ground_truth: PointSet) -> tuple[np.ndarray, np.ndarray]:
    """Small integer codes of (image, class), shared by both point sets."""
    image = np.concatenate([predictions.image, ground_truth.image])
    if image.min() == image.max():  # one image, e.g. a whole slide
        image_code = np.zeros(len(image), np.int64)
    elif image.max() < 4 * len(image) + 1024:
        present = np.zeros(int(image.max()) + 1, np.int64)
        present[image] = 1
        image_code = np.cumsum(present)[image] - 1
    else:
        image_code = np.unique(image, return_inverse=True)[1].reshape(-1)
    code = image_code * len(CLASS_NAMES) + (
        np.concatenate([predictions.label, ground_truth.label]) - 1
    )
    return code[: len(predictions)], code[len(predictions) :]


def _visit_ranks(probability: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Position of each prediction in the visit order of all groups, one group after another.

    Within a group the order is :func:`visit_order` of the group's probabilities in file
    order. Where no two predictions of a group tie in float32, every sort gives that order, so
    one sort serves all groups; a group with ties is ordered by that very call.
    """
    # Probabilities lie in [0, 1]: as float32 (+0.0 turns -0.0 into 0.0) their bit patterns
    # order like the numbers, so one int64 key sorts by group, then highest probability first.
    bits = (probability.astype(np.float32) + np.float32(0.0)).view(np.int32)
    key = group.astype(np.int64) * 2**31 + (2**31 - 1 - bits.astype(np.int64))
    order, sorted_key = _sort_keys(key, (int(group.max()) + 1) * 2**31 if len(group) else 1)
    tied = sorted_key[1:] == sorted_key[:-1]
    if tied.any():
        sorted_group = group[order]
        starts = np.flatnonzero(np.concatenate([[True], sorted_group[1:] != sorted_group[:-1]]))
        ends = np.append(starts[1:], len(order))
        for run in np.unique(np.searchsorted(starts, np.flatnonzero(tied), side="right") - 1):
            rows = np.sort(order[starts[run] : ends[run]])  # the group's rows in file order
            order[starts[run] : ends[run]] = rows[visit_order(probability[rows])]
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _rows_by_image_and_class(points: PointSet) -> dict[tuple[int, int], np.ndarray]:
    """Rows of each (image, class), each in ascending (file) order."""
    order = np.lexsort((points.label, points.image))  # stable: file order within a group
    image = points.image[order]
    label = points.label[order]
    starts = (
        np.flatnonzero(
            np.concatenate([[True], (image[1:] != image[:-1]) | (label[1:] != label[:-1])])
        )
        if len(order)
        else np.zeros(0, np.int64)
    )
    ends = np.append(starts[1:], len(order))
    return {
        (int(image[start]), int(label[start])): order[start:end]
        for start, end in zip(starts.tolist(), ends.tolist())
    }


def _as_xy(xy, name: str) -> np.ndarray:
    array = np.asarray(xy)
    if array.size == 0:
        return array.reshape(0, 2)
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {array.shape}")
    return array


def _float32_cutoff(radius_px: float) -> np.float32:
    radius = float(radius_px)
    if not np.isfinite(radius) or radius < 0:
        raise ValueError(f"radius_px must be a finite number >= 0, got {radius_px!r}")
    # The organisers compare a float32 distance array with the Python number 15: numpy
    # compares in float32, so the cutoff is the float32 nearest to the radius.
    return np.float32(radius)

"""Optimal one-to-one matching within a radius, for research comparison.

The challenge matches greedily in descending confidence (`evaluation.matching.match_greedy`).
Point-detection papers (HoVer-Net and its successors) instead pair predictions and ground truth
optimally. This module gives that alternative with the same signature as `match_greedy`, so either
can be passed wherever a matching function is expected.

"Optimal" here means, lexicographically: the largest number of pairs closer than the radius (so the
TP count is never below the greedy one), and among those pairings the smallest total distance.
The problem splits into the connected components of the candidate graph (an edge joins a
prediction and a ground-truth point within the radius); each component is solved on its own, with
`scipy.optimize.linear_sum_assignment` on a dense block when the block is small and with the sparse
`scipy.sparse.csgraph.min_weight_full_bipartite_matching` otherwise, so memory stays proportional to
the number of candidate pairs even when the graph does not split.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from evaluation.constants import MATCH_RADIUS_PX
from evaluation.matching import candidate_pairs

__all__ = ["match_hungarian"]

# Components with at most this many (prediction, ground truth) cells in their dense block are solved
# with linear_sum_assignment; larger ones with the sparse solver (a 1000 x 1000 block is 8 MB).
DENSE_BLOCK_LIMIT = 1_000_000


def match_hungarian(pred_xy, pred_probability, gt_xy, radius_px=MATCH_RADIUS_PX):
    """Pair predictions with ground truth of ONE image and ONE class optimally within the radius.

    Parameters
    ----------
    pred_xy : (P, 2) array
        Prediction coordinates (x, y) in pixels, in file order.
    pred_probability : (P,) array
        Prediction confidences. Accepted so that this function is interchangeable with
        `evaluation.matching.match_greedy`; an optimal pairing does not depend on them.
    gt_xy : (G, 2) array
        Ground-truth coordinates (x, y) in pixels, in file order.
    radius_px : float
        Inclusive matching cutoff in pixels (15 px = 3 µm at 0.2 µm/px).

    Returns
    -------
    (P,) int64 array
        For each prediction, the index of the ground-truth point it is paired with, or -1 (a false
        positive). The pairing has the most pairs possible, and the least total distance among
        those.
    """
    num_pred = len(np.asarray(pred_xy).reshape(-1, 2))
    if len(np.asarray(pred_probability).reshape(-1)) != num_pred:
        raise ValueError("pred_xy and pred_probability must have the same length")
    num_gt = len(np.asarray(gt_xy).reshape(-1, 2))
    matched = np.full(num_pred, -1, dtype=np.int64)
    # The challenge's own candidate search: the same float32 distances and inclusive cutoff.
    pred_index, gt_index, distance = candidate_pairs(pred_xy, gt_xy, radius_px)
    if len(pred_index) == 0:
        return matched
    # Distances are scaled to [0, 1] so that the solvers' costs stay small numbers.
    scaled = distance.astype(np.float64) / (float(radius_px) if radius_px > 0 else 1.0)

    # Components of the bipartite candidate graph: predictions are nodes 0..P-1, GT P..P+G-1.
    graph = coo_array(
        (np.ones(len(pred_index)), (pred_index, num_pred + gt_index)),
        shape=(num_pred + num_gt,) * 2,
    )
    _, node_component = connected_components(graph, directed=False)
    edge_component = node_component[pred_index]
    preds_in = np.bincount(node_component[:num_pred])[edge_component]
    gts_in = np.bincount(node_component[num_pred:], minlength=len(preds_in))[edge_component]

    # Most components hold one prediction or one GT point: there the best pairing is the single
    # nearest candidate (ties: lowest GT, then lowest prediction index), found for all at once.
    star = (preds_in == 1) | (gts_in == 1)
    order = np.flatnonzero(star)[
        np.lexsort((pred_index[star], gt_index[star], scaled[star], edge_component[star]))
    ]
    first = order[np.r_[True, np.diff(edge_component[order]) != 0]] if len(order) else order
    matched[pred_index[first]] = gt_index[first]

    # The other components are solved one by one, with nodes numbered within their component.
    pred_rank, pred_of_rank, pred_start = _rank_within_component(node_component[:num_pred])
    gt_rank, gt_of_rank, gt_start = _rank_within_component(node_component[num_pred:])
    order = np.flatnonzero(~star)[np.argsort(edge_component[~star], kind="stable")]
    boundaries = np.flatnonzero(np.diff(edge_component[order])) + 1
    for edges in np.split(order, boundaries) if len(order) else []:
        component = edge_component[edges[0]]
        rows, cols = _solve_component(
            pred_rank[pred_index[edges]],
            gt_rank[gt_index[edges]],
            scaled[edges],
            preds_in[edges[0]],
            gts_in[edges[0]],
        )
        matched[pred_of_rank[pred_start[component] + rows]] = gt_of_rank[gt_start[component] + cols]
    return matched


def _rank_within_component(component):
    """Number the nodes 0, 1, ... within each component (in index order).

    Returns each node's rank, the nodes sorted by component, and where each component starts in
    that sorted list.
    """
    by_component = np.argsort(component, kind="stable")
    start = np.searchsorted(component[by_component], np.arange(component.max(initial=-1) + 1))
    rank = np.empty_like(by_component)
    rank[by_component] = np.arange(len(component)) - start[component[by_component]]
    return rank, by_component, start


def _solve_component(local_pred, local_gt, cost, num_pred, num_gt):
    """Optimal pairs (local row, local column) of one component, given its candidate edges."""
    if num_pred * num_gt <= DENSE_BLOCK_LIMIT:
        return _solve_dense(local_pred, local_gt, cost, num_pred, num_gt)
    return _solve_sparse(local_pred, local_gt, cost, num_pred, num_gt)


def _solve_dense(local_pred, local_gt, cost, num_pred, num_gt):
    # A candidate edge costs (cost - bonus) < 0 and a non-edge 0. With bonus > (pairs possible + 1),
    # one more pair always outweighs any change of total distance, so the minimum-cost assignment
    # has the most pairs, then the least distance.
    bonus = min(num_pred, num_gt) + 2.0
    block = np.zeros((num_pred, num_gt))
    block[local_pred, local_gt] = cost - bonus
    rows, cols = linear_sum_assignment(block)
    is_edge = block[rows, cols] < 0
    return rows[is_edge], cols[is_edge]


def _solve_sparse(local_pred, local_gt, cost, num_pred, num_gt):
    # min_weight_full_bipartite_matching needs a matching that covers one side. Augment the graph so
    # that a perfect matching always exists and its cost ranks pairings like the dense block does:
    # rows = predictions + one stand-in per GT point; columns = GT points + one stand-in per
    # prediction.
    #   prediction i -- GT j            (candidate)   1 + distance
    #   prediction i -- its stand-in                  penalty
    #   stand-in of GT j -- GT j                      penalty
    #   stand-in of GT j -- stand-in of prediction i  penalty, for every candidate (i, j)
    # Every perfect matching with k real pairs costs sum(1 + distance) + (P + G - k) * penalty; with
    # penalty > k + 2 one more pair always lowers the cost. All weights are non-zero, as required.
    penalty = min(num_pred, num_gt) + 3.0
    pred_nodes = np.arange(num_pred)
    gt_nodes = np.arange(num_gt)
    rows = np.concatenate([local_pred, pred_nodes, num_pred + gt_nodes, num_pred + local_gt])
    cols = np.concatenate([local_gt, num_gt + pred_nodes, gt_nodes, num_gt + local_pred])
    weights = np.concatenate([1.0 + cost, np.full(num_pred + num_gt + len(cost), penalty)])
    size = num_pred + num_gt
    row_ind, col_ind = min_weight_full_bipartite_matching(
        coo_array((weights, (rows, cols)), shape=(size, size)).tocsr()
    )
    is_pair = (row_ind < num_pred) & (col_ind < num_gt)
    return row_ind[is_pair], col_ind[is_pair]

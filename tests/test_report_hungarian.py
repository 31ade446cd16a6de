"""Optimal (Hungarian) matching against an exhaustive search on small random cases."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evaluation.hungarian as hungarian
from evaluation import PointSet, score
from evaluation.hungarian import match_hungarian
from evaluation.matching import match_greedy

RADIUS = 15.0


def exhaustive_best(pred_xy, gt_xy, radius_px):
    """(most pairs, least total distance among those) over every one-to-one pairing."""
    distance = np.sqrt(
        ((pred_xy[:, None, :].astype(np.float32) - gt_xy[None, :, :].astype(np.float32)) ** 2).sum(
            -1
        )
    )
    best = (0, 0.0)

    def visit(i, used, pairs, total):
        nonlocal best
        if (pairs, -total) > (best[0], -best[1]):
            best = (pairs, total)
        if i == len(pred_xy):
            return
        visit(i + 1, used, pairs, total)
        for j in range(len(gt_xy)):
            if j not in used and distance[i, j] <= radius_px:
                visit(i + 1, used | {j}, pairs + 1, total + float(distance[i, j]))

    visit(0, frozenset(), 0, 0.0)
    return best


def pairing_cost(matched, pred_xy, gt_xy):
    pairs = np.flatnonzero(matched >= 0)
    difference = pred_xy[pairs].astype(np.float64) - gt_xy[matched[pairs]].astype(np.float64)
    return len(pairs), float(np.sqrt((difference**2).sum(-1)).sum())


small_points = st.integers(0, 6).flatmap(
    lambda n: st.lists(st.tuples(st.integers(0, 40), st.integers(0, 40)), min_size=n, max_size=n)
)


def as_xy(points):
    return np.array(points, dtype=np.int64).reshape(-1, 2)


def check_optimal(pred_xy, gt_xy):
    matched = match_hungarian(pred_xy, np.ones(len(pred_xy)), gt_xy, RADIUS)
    # One-to-one, within the radius.
    paired = matched[matched >= 0]
    assert len(np.unique(paired)) == len(paired)
    if len(paired):
        gap = pred_xy[matched >= 0] - gt_xy[paired]
        assert np.all(np.hypot(gap[:, 0], gap[:, 1]) <= RADIUS)
    pairs, total = pairing_cost(matched, pred_xy, gt_xy)
    best_pairs, best_total = exhaustive_best(pred_xy, gt_xy, RADIUS)
    assert pairs == best_pairs
    assert total == pytest.approx(best_total, abs=1e-4)
    return matched


@settings(max_examples=200, deadline=None)
@given(small_points, small_points)
def test_hungarian_is_optimal_and_never_below_greedy(pred_points, gt_points):
    pred_xy, gt_xy = as_xy(pred_points), as_xy(gt_points)
    matched = check_optimal(pred_xy, gt_xy)
    greedy = match_greedy(pred_xy, np.linspace(1, 0, len(pred_xy)), gt_xy, RADIUS)
    assert np.count_nonzero(matched >= 0) >= np.count_nonzero(greedy >= 0)


@settings(max_examples=100, deadline=None)
@given(small_points, small_points)
def test_sparse_solver_agrees_with_exhaustive_search(pred_points, gt_points):
    # Every component goes through the sparse augmented-graph solver instead of the dense block.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hungarian, "DENSE_BLOCK_LIMIT", 0)
        check_optimal(as_xy(pred_points), as_xy(gt_points))


def test_greedy_is_suboptimal_where_hungarian_is_not():
    # The most confident prediction takes the GT point that the other one needed.
    pred_xy = np.array([[10, 0], [0, 0]])
    gt_xy = np.array([[5, 0], [20, 0]])
    greedy = match_greedy(pred_xy, np.array([0.9, 0.8]), gt_xy, 10.0)
    assert np.count_nonzero(greedy >= 0) == 1
    assert match_hungarian(pred_xy, np.array([0.9, 0.8]), gt_xy, 10.0).tolist() == [1, 0]


def test_radius_is_inclusive_like_the_challenge():
    origin = np.array([[0, 0]])
    assert match_hungarian(origin, np.ones(1), np.array([[9, 12]]), 15.0).tolist() == [0]
    assert match_hungarian(origin, np.ones(1), np.array([[9, 13]]), 15.0).tolist() == [-1]


def test_empty_inputs():
    none = np.zeros((0, 2), dtype=np.int64)
    assert match_hungarian(none, np.zeros(0), np.array([[1, 1]])).shape == (0,)
    assert match_hungarian(np.array([[1, 1]]), np.ones(1), none).tolist() == [-1]


def test_dense_cluster_uses_sparse_solver_and_matches_everything(monkeypatch):
    # A percolating candidate graph (one component); shifted copies must all pair up at distance 1.
    rng = np.random.default_rng(3)
    gt_xy = rng.choice(60 * 60, size=400, replace=False)
    gt_xy = np.stack([gt_xy % 60, gt_xy // 60], axis=1) * 3
    pred_xy = gt_xy + [1, 0]
    monkeypatch.setattr(hungarian, "DENSE_BLOCK_LIMIT", 0)
    matched = match_hungarian(pred_xy, np.ones(len(pred_xy)), gt_xy, RADIUS)
    assert matched.tolist() == list(range(len(gt_xy)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1),
            st.integers(0, 40),
            st.integers(0, 40),
            st.sampled_from([1, 2]),
            st.floats(0, 1),
        ),
        max_size=20,
    ),
    st.lists(
        st.tuples(
            st.integers(0, 1), st.integers(0, 40), st.integers(0, 40), st.sampled_from([1, 2])
        ),
        max_size=20,
    ),
)
def test_score_with_hungarian_matching_never_has_fewer_true_positives(pred_rows, gt_rows):
    predictions = PointSet.from_arrays(
        [r[0] for r in pred_rows],
        [r[1:3] for r in pred_rows],
        [r[3] for r in pred_rows],
        [r[4] for r in pred_rows],
    )
    ground_truth = PointSet.from_arrays(
        [r[0] for r in gt_rows],
        [r[1:3] for r in gt_rows],
        [r[3] for r in gt_rows],
        [1.0] * len(gt_rows),
    )
    greedy = score(predictions, ground_truth, 2).aggregates
    optimal = score(predictions, ground_truth, 2, matching="hungarian").aggregates
    for name in ("BC", "TC"):
        assert optimal[f"TP/{name}"] >= greedy[f"TP/{name}"]
        # Same points, so the totals of predictions and of GT are unchanged.
        assert (
            optimal[f"TP/{name}"] + optimal[f"FP/{name}"]
            == greedy[f"TP/{name}"] + greedy[f"FP/{name}"]
        )
        assert (
            optimal[f"TP/{name}"] + optimal[f"FN/{name}"]
            == greedy[f"TP/{name}"] + greedy[f"FN/{name}"]
        )


def test_score_rejects_an_unknown_matching_rule():
    with pytest.raises(ValueError, match="matching must be one of greedy, hungarian"):
        score(PointSet.empty(), PointSet.empty(), 1, matching="nearest")

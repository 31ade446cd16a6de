"""The grid greedy matcher against an independent brute-force reference, and its invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from evaluation import PointSet, score
from evaluation.matching import _sort_keys, candidate_pairs, match_greedy, match_point_sets


def brute_force_match(pred_xy, pred_probability, gt_xy, radius_px=15.0):
    """O(P x G) reference written from the rule's text: full float32 distance matrix, visit
    predictions in ``np.argsort(-float32 probability)`` order, take the nearest free GT within
    the cutoff, distance ties to the lowest GT index."""
    pred = np.asarray(pred_xy, dtype=np.float32).reshape(-1, 2)
    gt = np.asarray(gt_xy, dtype=np.float32).reshape(-1, 2)
    distance = np.linalg.norm(pred[:, None, :] - gt[None, :, :], axis=2)
    free = np.ones(len(gt), dtype=bool)
    matched = np.full(len(pred), -1)
    for p in np.argsort(-np.asarray(pred_probability).astype(np.float32)):
        best = -1
        for g in range(len(gt)):
            if free[g] and distance[p, g] <= radius_px:
                if best < 0 or distance[p, g] < distance[p, best]:
                    best = g
        if best >= 0:
            matched[p] = best
            free[best] = False
    return matched


# Crowded scenes (many candidates per prediction) with tied and near-tied probabilities.
coordinates = st.integers(min_value=0, max_value=60)
probabilities = st.one_of(
    st.sampled_from([0.0, 0.5, 0.5 + 1e-12, 0.75, 1.0]),
    st.floats(min_value=0.0, max_value=1.0, allow_nan=False),
)


@st.composite
def scenes(draw, max_points=40):
    num_pred = draw(st.integers(0, max_points))
    num_gt = draw(st.integers(0, max_points))
    pred_xy = draw(hnp.arrays(np.int64, (num_pred, 2), elements=coordinates))
    gt_xy = draw(hnp.arrays(np.int64, (num_gt, 2), elements=coordinates))
    probability = np.array(draw(st.lists(probabilities, min_size=num_pred, max_size=num_pred)))
    return pred_xy, probability.reshape(num_pred), gt_xy


@st.composite
def point_sets(draw, max_points=40, num_images=3):
    def one(with_probability):
        n = draw(st.integers(0, max_points))
        image = draw(hnp.arrays(np.int64, n, elements=st.integers(0, num_images - 1)))
        xy = draw(hnp.arrays(np.int64, (n, 2), elements=coordinates))
        label = draw(hnp.arrays(np.int64, n, elements=st.sampled_from([1, 2])))
        probability = (
            np.array(draw(st.lists(probabilities, min_size=n, max_size=n))).reshape(n)
            if with_probability
            else np.ones(n)
        )
        return PointSet.from_arrays(image, xy, label, probability)

    return one(True), one(False)


@settings(max_examples=300, deadline=None)
@given(scenes(), st.sampled_from([0.0, 5.0, 10.0, 15.0, 20.5]))
def test_matches_brute_force_reference(scene, radius_px):
    pred_xy, probability, gt_xy = scene
    np.testing.assert_array_equal(
        match_greedy(pred_xy, probability, gt_xy, radius_px),
        brute_force_match(pred_xy, probability, gt_xy, radius_px),
    )


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_point_sets_match_brute_force_per_image_and_class(sets):
    predictions, ground_truth = sets
    expected = np.full(len(predictions), -1)
    for image in range(3):
        for label in (1, 2):
            pred_rows = np.flatnonzero((predictions.image == image) & (predictions.label == label))
            gt_rows = np.flatnonzero((ground_truth.image == image) & (ground_truth.label == label))
            local = brute_force_match(
                predictions.xy[pred_rows],
                predictions.probability[pred_rows],
                ground_truth.xy[gt_rows],
            )
            expected[pred_rows[local >= 0]] = gt_rows[local[local >= 0]]
    np.testing.assert_array_equal(match_point_sets(predictions, ground_truth), expected)


@settings(max_examples=150, deadline=None)
@given(point_sets())
def test_counts_add_up_per_class(sets):
    predictions, ground_truth = sets
    aggregates = score(predictions, ground_truth, 3).aggregates
    for label, name in ((1, "BC"), (2, "TC")):
        assert aggregates[f"TP/{name}"] + aggregates[f"FP/{name}"] == np.sum(
            predictions.label == label
        )
        assert aggregates[f"TP/{name}"] + aggregates[f"FN/{name}"] == np.sum(
            ground_truth.label == label
        )


@settings(max_examples=100, deadline=None)
@given(scenes(), st.integers(0, 16_000_000), st.integers(0, 16_000_000))
def test_translation_does_not_change_matches(scene, dx, dy):
    pred_xy, probability, gt_xy = scene
    shift = np.array([dx, dy])
    np.testing.assert_array_equal(
        match_greedy(pred_xy + shift, probability, gt_xy + shift),
        match_greedy(pred_xy, probability, gt_xy),
    )


@settings(max_examples=100, deadline=None)
@given(scenes(), st.randoms(use_true_random=False))
def test_order_of_predictions_with_distinct_probabilities_does_not_matter(scene, random):
    pred_xy, _, gt_xy = scene
    # Distinct in float32, so the visit order is fixed by the values alone.
    probability = (np.arange(len(pred_xy)) + 1) / (len(pred_xy) + 1)
    random.shuffle(probability)
    permutation = np.array(random.sample(range(len(pred_xy)), len(pred_xy)), dtype=np.int64)
    original = match_greedy(pred_xy, probability, gt_xy)
    permuted = match_greedy(pred_xy[permutation], probability[permutation], gt_xy)
    np.testing.assert_array_equal(permuted, original[permutation])


@settings(max_examples=100, deadline=None)
@given(point_sets())
def test_exact_predictions_score_f1_one(sets):
    _, ground_truth = sets
    rng = np.random.default_rng(len(ground_truth))
    predictions = PointSet.from_arrays(
        ground_truth.image, ground_truth.xy, ground_truth.label, rng.random(len(ground_truth))
    )
    aggregates = score(predictions, ground_truth, 3).aggregates
    for name in ("BC", "TC"):
        assert aggregates[f"FP/{name}"] == 0 and aggregates[f"FN/{name}"] == 0
        if aggregates[f"TP/{name}"]:
            assert aggregates[f"F1/{name}"] == 1.0


@settings(max_examples=100, deadline=None)
@given(point_sets())
def test_a_prediction_of_the_other_class_never_matches(sets):
    predictions, ground_truth = sets
    matched = match_point_sets(predictions, ground_truth)
    hit = matched >= 0
    np.testing.assert_array_equal(predictions.label[hit], ground_truth.label[matched[hit]])
    swapped = PointSet.from_arrays(
        predictions.image, predictions.xy, 3 - predictions.label, predictions.probability
    )
    only_bc_truth = ground_truth.take(ground_truth.label == 1)
    exact_but_tc = PointSet.from_arrays(
        only_bc_truth.image,
        only_bc_truth.xy,
        np.full(len(only_bc_truth), 2),
        only_bc_truth.probability,
    )
    assert np.all(match_point_sets(exact_but_tc, only_bc_truth) == -1)
    assert score(swapped.take(swapped.label == 2), only_bc_truth, 3).aggregates["TP/TC"] == 0


def test_cutoff_is_inclusive_at_exactly_15_px():
    gt = np.array([[100, 100]])
    assert match_greedy(np.array([[109, 112]]), np.array([0.9]), gt)[0] == 0  # distance 15
    assert match_greedy(np.array([[115, 101]]), np.array([0.9]), gt)[0] == -1  # 15.03


def test_cutoff_is_compared_in_float32():
    # 15 + 1e-9 rounds to float32 15.0: a pair at 15.03 px stays unmatched, one at 15 matches.
    gt = np.array([[0, 0]])
    assert match_greedy(np.array([[9, 12]]), np.array([0.5]), gt, 15 + 1e-9)[0] == 0
    assert match_greedy(np.array([[15, 1]]), np.array([0.5]), gt, 15 + 1e-9)[0] == -1


def test_probabilities_equal_in_float32_tie():
    # 0.5 + 1e-12 is larger in float64 but the same float32: the tie goes to argsort's order.
    pred = np.array([[0, 0], [1, 0]])
    probability = np.array([0.5, 0.5 + 1e-12])
    winner = np.argsort(-probability.astype(np.float32))[0]
    matched = match_greedy(pred, probability, np.array([[0, 1]]))
    assert matched[winner] == 0 and matched[1 - winner] == -1


def test_many_tied_probabilities_follow_numpys_unstable_argsort():
    # Above 16 elements numpy's quicksort does not keep file order for ties.
    rng = np.random.default_rng(3)
    probability = rng.choice([0.3, 0.6], size=200)
    pred = rng.integers(40, 60, size=(200, 2))
    gt = rng.integers(40, 60, size=(30, 2))
    np.testing.assert_array_equal(
        match_greedy(pred, probability, gt), brute_force_match(pred, probability, gt)
    )


def test_distance_tie_goes_to_lowest_gt_index():
    gt = np.array([[10, 0], [0, 10], [0, 0], [-0, 10]])
    assert match_greedy(np.array([[5, 5]]), np.array([1.0]), gt[:2])[0] == 0
    assert match_greedy(np.array([[0, 5]]), np.array([1.0]), gt[1:])[0] == 0


def test_candidate_pairs_are_exactly_those_within_the_cutoff():
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 200, size=(300, 2))
    gt = rng.integers(0, 200, size=(300, 2))
    pred_index, gt_index, distance = candidate_pairs(pred, gt, 15.0)
    full = np.linalg.norm(pred.astype(np.float32)[:, None] - gt.astype(np.float32)[None], axis=2)
    expected = set(zip(*np.nonzero(full <= 15)))
    assert set(zip(pred_index.tolist(), gt_index.tolist())) == expected
    np.testing.assert_array_equal(distance, full[pred_index, gt_index])
    assert distance.dtype == np.float32


@pytest.mark.parametrize("radius", [-1.0, float("nan"), float("inf")])
def test_bad_radius_is_rejected(radius):
    with pytest.raises(ValueError, match="radius_px"):
        match_greedy(np.zeros((1, 2)), np.ones(1), np.zeros((1, 2)), radius)


def test_empty_inputs_match_nothing():
    assert match_greedy(np.zeros((0, 2)), np.zeros(0), np.zeros((3, 2))).shape == (0,)
    np.testing.assert_array_equal(
        match_greedy(np.zeros((2, 2)), np.ones(2), np.zeros((0, 2))), [-1, -1]
    )
    assert match_point_sets(PointSet.empty(), PointSet.empty()).shape == (0,)


def test_probability_shape_must_match_points():
    with pytest.raises(ValueError, match="pred_probability"):
        match_greedy(np.zeros((2, 2)), np.ones(3), np.zeros((1, 2)))


@st.composite
def point_clouds(draw):
    """Two clouds anywhere a whole slide allows, at any density, and a radius."""
    scale = draw(st.sampled_from([3, 40, 1000, 2**24 - 1]))
    cloud = hnp.arrays(
        np.int64, st.tuples(st.integers(0, 60), st.just(2)), elements=st.integers(0, scale)
    )
    return draw(cloud), draw(cloud), draw(st.sampled_from([0.0, 1.0, 14.999, 15.0, 22.5, 300.0]))


@settings(max_examples=200, deadline=None)
@given(point_clouds())
def test_candidate_pairs_equal_a_kd_tree_query(clouds):
    from scipy.spatial import cKDTree  # the independent reference

    pred, gt, radius = clouds
    pred_index, gt_index, distance = candidate_pairs(pred, gt, radius)
    found = set(zip(pred_index.tolist(), gt_index.tolist()))
    expected = set()
    if len(pred) and len(gt):
        near = cKDTree(pred).query_ball_tree(cKDTree(gt), radius * (1 + 1e-5) + 1e-5)
        for row, columns in enumerate(near):
            for column in columns:
                delta = pred[row].astype(np.float32) - gt[column].astype(np.float32)
                if np.sqrt(delta @ delta) <= np.float32(radius):
                    expected.add((row, column))
    assert found == expected
    assert len(found) == len(pred_index)  # each pair once


def _one_group_at_a_time(pred_xy, probability, gt_xy, radius_px):
    """match_greedy behind another name: match_point_sets then matches group by group."""
    return match_greedy(pred_xy, probability, gt_xy, radius_px)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 400), st.sampled_from([5.0, 15.0, 40.0]))
def test_all_groups_at_once_equal_one_group_at_a_time(seed, num_points, radius_px):
    # Large groups full of float32 ties: numpy's default argsort does not keep tied
    # predictions in file order there, and both paths must visit them as it does.
    rng = np.random.default_rng(seed)

    def points(probability):
        return PointSet.from_arrays(
            rng.integers(0, 3, num_points),
            rng.integers(0, 120, (num_points, 2)),
            rng.integers(1, 3, num_points),
            probability,
        )

    predictions = points(rng.choice([0.25, 0.5, 0.5 + 1e-12, 1.0], num_points))
    ground_truth = points(np.ones(num_points))
    np.testing.assert_array_equal(
        match_point_sets(predictions, ground_truth, radius_px=radius_px),
        match_point_sets(
            predictions, ground_truth, radius_px=radius_px, matcher=_one_group_at_a_time
        ),
    )


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.integers(0, 2**40), max_size=300), huge=st.booleans())
def test_sort_keys_orders_rows_by_key_packed_or_not(keys, huge):
    key = np.array(keys, dtype=np.int64)
    bound = 2**62 if huge else 2**40 + 1  # the packed path, or np.argsort's
    order, sorted_key = _sort_keys(key, bound)
    assert sorted(order.tolist()) == list(range(len(key)))
    assert sorted_key.tolist() == sorted(keys)
    assert key[order].tolist() == sorted_key.tolist()

"""Confidence-aware metrics against the scorer and against re-scoring after thresholding."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_scoring_parity import PARITY_CASES

from evaluation import PointSet, class_metrics, points_from_document, score
from evaluation.confidence import ThresholdCurve, class_curves, shared_threshold_mf1
from evaluation.matching import match_point_sets

# Few distinct values, so that ties (within an image and class, and in float32) are common.
TIED_PROBABILITIES = [0.0, 0.1, 0.3, 0.30000000001, 0.5, 0.9, 1.0]


@st.composite
def point_sets(draw, max_points=25, ground_truth=False, distinct=False):
    """Random points; ``distinct``: no two predictions share a float32 probability.

    The organisers visit tied predictions in the order of numpy's unstable argsort, which depends on
    which other predictions are present: with ties, thresholding the one matching of all predictions
    (what the curves do) and re-scoring the thresholded predictions may pair points differently.
    The comparisons with re-scoring therefore draw distinct probabilities; threshold 0, where both
    see the same predictions, is tested with ties.
    """
    num_points = draw(st.integers(0, max_points))
    image = draw(st.lists(st.integers(0, 2), min_size=num_points, max_size=num_points))
    xy = draw(
        st.lists(
            st.tuples(st.integers(0, 50), st.integers(0, 50)),
            min_size=num_points,
            max_size=num_points,
        )
    )
    label = draw(st.lists(st.sampled_from([1, 2]), min_size=num_points, max_size=num_points))
    if ground_truth:
        probability = [1.0] * num_points
    else:
        probability = draw(
            st.lists(
                st.one_of(st.sampled_from(TIED_PROBABILITIES), st.floats(0, 1)),
                min_size=num_points,
                max_size=num_points,
                unique_by=np.float32 if distinct else None,
            )
        )
    return PointSet.from_arrays(
        image, np.array(xy, dtype=np.int64).reshape(-1, 2), label, probability
    )


def curves_of(predictions, ground_truth):
    return class_curves(predictions, ground_truth, match_point_sets(predictions, ground_truth))


@settings(max_examples=150, deadline=None)
@given(point_sets(), point_sets(ground_truth=True))
def test_threshold_zero_equals_score_exactly(predictions, ground_truth):
    aggregates = score(predictions, ground_truth, 3).aggregates
    for name, curve in curves_of(predictions, ground_truth).items():
        tp, fp, fn = curve.counts_at(0.0)
        assert (int(tp), int(fp), int(fn)) == (
            aggregates[f"TP/{name}"],
            aggregates[f"FP/{name}"],
            aggregates[f"FN/{name}"],
        )
        assert class_metrics(tp, fp, fn) == (
            aggregates[f"Pre/{name}"],
            aggregates[f"Rec/{name}"],
            aggregates[f"F1/{name}"],
        )
        if len(curve.threshold):
            # The lowest threshold keeps everything too; its unrounded F1 rounds to score's.
            assert round(float(curve.f1[-1]), 4) == aggregates[f"F1/{name}"]


def rescored_counts(predictions, ground_truth, threshold):
    """Brute-force reference: drop predictions below the threshold, then score from scratch."""
    kept = predictions.take(predictions.probability.astype(np.float32) >= threshold)
    aggregates = score(kept, ground_truth, 3).aggregates
    return {
        name: (aggregates[f"TP/{name}"], aggregates[f"FP/{name}"], aggregates[f"FN/{name}"])
        for name in ("BC", "TC")
    }


@settings(max_examples=100, deadline=None)
@given(
    point_sets(distinct=True), point_sets(ground_truth=True), st.lists(st.floats(0, 1), max_size=3)
)
def test_curves_equal_rescoring_after_thresholding(predictions, ground_truth, extra_thresholds):
    curves = curves_of(predictions, ground_truth)
    for name, curve in curves.items():
        thresholds = np.concatenate(
            [curve.threshold.astype(np.float64), extra_thresholds, [0.0, 1.0, 1.5]]
        )
        for threshold in thresholds:
            tp, fp, fn = curve.counts_at(threshold)
            assert (int(tp), int(fp), int(fn)) == rescored_counts(
                predictions, ground_truth, threshold
            )[name]
        # Each curve point is the rescored result at its own threshold.
        for k, threshold in enumerate(curve.threshold):
            expected = rescored_counts(predictions, ground_truth, threshold)[name]
            assert (curve.tp[k], curve.fp[k], curve.fn[k]) == expected


def reference_summary(predictions, ground_truth, name):
    """AP and best F1 from rescoring at every distinct confidence of the class, in plain Python."""
    of_class = predictions.probability[predictions.label == {"BC": 1, "TC": 2}[name]]
    thresholds = sorted(set(of_class.astype(np.float32).tolist()), reverse=True)
    ap, previous_recall, best = 0.0, 0.0, (0.0, None)
    for threshold in thresholds:
        tp, fp, fn = rescored_counts(predictions, ground_truth, threshold)[name]
        precision = tp / (tp + fp + 1e-7)
        recall = tp / (tp + fn + 1e-7)
        f1 = 2 * precision * recall / (precision + recall + 1e-7)
        ap += (recall - previous_recall) * precision
        previous_recall = recall
        if f1 > best[0]:
            best = (f1, threshold)
    return ap, best


@settings(max_examples=80, deadline=None)
@given(point_sets(distinct=True), point_sets(ground_truth=True))
def test_average_precision_and_best_f1_against_rescoring(predictions, ground_truth):
    for name, curve in curves_of(predictions, ground_truth).items():
        ap, (best_f1, best_threshold) = reference_summary(predictions, ground_truth, name)
        assert curve.average_precision() == pytest.approx(ap, abs=1e-12)
        best = curve.best()
        assert best["f1"] == pytest.approx(best_f1, abs=1e-12)
        if best_threshold is not None:
            assert best["threshold"] == best_threshold


@settings(max_examples=50, deadline=None)
@given(point_sets(distinct=True), point_sets(ground_truth=True))
def test_shared_threshold_mf1_is_the_mean_of_rescored_f1(predictions, ground_truth):
    thresholds, mf1 = shared_threshold_mf1(curves_of(predictions, ground_truth))
    assert np.all(np.diff(thresholds) < 0)
    for threshold, value in zip(thresholds, mf1):
        counts = rescored_counts(predictions, ground_truth, threshold)
        f1 = [
            2
            * (tp / (tp + fp + 1e-7))
            * (tp / (tp + fn + 1e-7))
            / (tp / (tp + fp + 1e-7) + tp / (tp + fn + 1e-7) + 1e-7)
            for tp, fp, fn in counts.values()
        ]
        assert value == pytest.approx(sum(f1) / 2, abs=1e-12)


def test_worked_example():
    # Three predictions on one GT point: the most confident one takes it.
    curve = ThresholdCurve.from_matches([0.2, 0.9, 0.5], [False, True, False], num_gt=2)
    assert curve.threshold.tolist() == pytest.approx([0.9, 0.5, 0.2])
    assert curve.tp.tolist() == [1, 1, 1]
    assert curve.fp.tolist() == [0, 1, 2]
    assert curve.fn.tolist() == [1, 1, 1]
    # AP = 0.5 * 1 (recall rises to 0.5 at the first threshold, at precision 1).
    assert curve.average_precision() == pytest.approx(0.5, abs=1e-6)
    best = curve.best()
    assert best["threshold"] == pytest.approx(0.9)
    assert best["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert [int(value) for value in curve.counts_at(0.95)] == [0, 0, 2]


def test_class_without_predictions():
    curve = ThresholdCurve.from_matches([], [], num_gt=4)
    assert len(curve.threshold) == 0
    assert [int(value) for value in curve.counts_at(0.0)] == [0, 0, 4]
    assert curve.average_precision() == 0.0
    assert curve.best() == {
        "threshold": None,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "tp": 0,
        "fp": 0,
        "fn": 4,
    }


def test_threshold_zero_reproduces_the_organisers_counts():
    assert len(PARITY_CASES) == 400  # vendored with the repository (test_scoring_parity.py)
    for case in PARITY_CASES:
        predictions, _ = points_from_document(case["predictions"], source="predictions")
        ground_truth, _ = points_from_document(
            case["ground_truth"], source="ground truth", role="ground_truth"
        )
        for name, curve in curves_of(predictions, ground_truth).items():
            counts = [int(value) for value in curve.counts_at(0.0)]
            expected = case["expected"]
            assert counts == [
                expected[f"TP/{name}"],
                expected[f"FP/{name}"],
                expected[f"FN/{name}"],
            ], f"case {case['case']} {name}"

"""score(): counts, rounding, per-image and per-organ results, valid edge cases."""

import numpy as np
import pytest

from evaluation import InputError, PointSet, class_metrics, score, score_documents
from evaluation.metrics import COUNT_KEYS, PUBLISHED_KEYS


def points(rows, probability=None):
    """PointSet from rows (image, x, y, label)."""
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    if probability is None:
        probability = np.ones(len(table))
    return PointSet.from_arrays(table[:, 0], table[:, 1:3], table[:, 3], probability)


def test_class_metrics_follow_the_organisers_formulas():
    assert class_metrics(31, 24, 18) == (0.5636, 0.6327, 0.5962)
    assert class_metrics(0, 0, 0) == (0.0, 0.0, 0.0)
    assert class_metrics(5, 0, 0) == (1.0, 1.0, 1.0)
    # F1 comes from the unrounded precision and recall.
    precision, recall = 2 / (2 + 1 + 1e-7), 2 / (2 + 2 + 1e-7)
    assert class_metrics(2, 1, 2)[2] == round(
        2 * precision * recall / (precision + recall + 1e-7), 4
    )


def test_counts_per_class_and_image():
    ground_truth = points([(0, 10, 10, 1), (0, 100, 100, 2), (1, 50, 50, 1), (1, 60, 60, 1)])
    predictions = points(
        [(0, 12, 10, 1), (0, 100, 100, 1), (1, 50, 52, 1), (1, 500, 500, 2)],
        [0.9, 0.8, 0.7, 0.6],
    )
    report = score(predictions, ground_truth, 3)
    aggregates = report.aggregates
    assert list(aggregates) == [*PUBLISHED_KEYS, *COUNT_KEYS]
    assert {key: aggregates[key] for key in COUNT_KEYS} == {
        "TP/BC": 2,
        "FP/BC": 1,
        "FN/BC": 1,
        "TP/TC": 0,
        "FP/TC": 1,
        "FN/TC": 1,
    }
    assert aggregates["F1/BC"] == class_metrics(2, 1, 1)[2]
    assert aggregates["mF1"] == (aggregates["F1/BC"] + aggregates["F1/TC"]) / 2
    assert [result["name"] for result in report.results] == ["image_0", "image_1", "image_2"]
    assert report.results[0] == {
        "name": "image_0",
        "TP/BC": 1,
        "FP/BC": 1,
        "FN/BC": 0,
        "TP/TC": 0,
        "FP/TC": 0,
        "FN/TC": 1,
        "F1/BC": class_metrics(1, 1, 0)[2],
        "F1/TC": 0.0,
    }
    assert report.results[2]["TP/BC"] == 0 and report.per_organ is None
    assert "per_organ" not in report.to_dict()


def test_mf1_is_the_unrounded_mean_of_rounded_f1():
    # F1/BC = 1.0 and F1/TC = 0.1667 -> mF1 = 0.58335 (five decimals, as published).
    ground_truth = points([(0, 0, 0, 1)] + [(0, 100 * k, 500, 2) for k in range(1, 12)])
    predictions = points([(0, 0, 0, 1), (0, 100, 500, 2)], [0.5, 0.5])
    aggregates = score(predictions, ground_truth, 1).aggregates
    assert aggregates["F1/BC"] == 1.0
    assert aggregates["mF1"] == (1.0 + aggregates["F1/TC"]) / 2
    assert aggregates["F1/TC"] == 0.1667 and aggregates["mF1"] == 0.58335


def test_valid_edge_cases_score_normally():
    ground_truth = points([(0, 0, 0, 1), (0, 1023, 1023, 2)])
    assert score(PointSet.empty(), ground_truth, 2).aggregates["FN/BC"] == 1
    edge = points([(0, 0, 0, 1), (0, 1023, 1023, 2)], [0.0, 1.0])
    aggregates = score(edge, ground_truth, 2).aggregates
    assert aggregates["F1/BC"] == aggregates["F1/TC"] == aggregates["mF1"] == 1.0
    nothing = score(PointSet.empty(), PointSet.empty(), 0)
    assert nothing.aggregates["mF1"] == 0.0 and nothing.results == []


def test_per_organ_micro_averages_over_the_organs_images():
    ground_truth = points([(0, 10, 10, 1), (1, 10, 10, 1), (2, 10, 10, 2)])
    predictions = points([(0, 10, 10, 1), (2, 10, 10, 2), (2, 500, 500, 2)], [0.9, 0.9, 0.1])
    report = score(predictions, ground_truth, 3, organs=["kidney", "bladder", "kidney"])
    assert list(report.per_organ) == ["bladder", "kidney"]
    kidney = report.per_organ["kidney"]
    assert kidney["images"] == 2
    assert (kidney["TP/BC"], kidney["TP/TC"], kidney["FP/TC"]) == (1, 1, 1)
    assert kidney["F1/TC"] == class_metrics(1, 1, 0)[2]
    assert report.per_organ["bladder"]["FN/BC"] == 1
    assert [result["organ"] for result in report.results] == ["kidney", "bladder", "kidney"]
    assert report.to_dict()["per_organ"] is report.per_organ


def test_radius_is_a_parameter():
    ground_truth = points([(0, 0, 0, 1)])
    predictions = points([(0, 20, 0, 1)], [0.5])
    assert score(predictions, ground_truth, 1).aggregates["TP/BC"] == 0
    assert score(predictions, ground_truth, 1, radius_px=20).aggregates["TP/BC"] == 1


def test_images_outside_num_images_are_input_errors():
    with pytest.raises(InputError, match=r"predictions: points\[1\]\.name: image_4 is outside"):
        score(points([(0, 1, 1, 1), (4, 1, 1, 1)], [0.5, 0.5]), PointSet.empty(), 2)
    with pytest.raises(InputError, match=r"ground truth: points\[0\]\.name: image_2 is outside"):
        score(PointSet.empty(), points([(2, 1, 1, 1)]), 2)
    with pytest.raises(ValueError, match="organs"):
        score(PointSet.empty(), PointSet.empty(), 2, organs=["kidney"])


def test_score_documents_validates_and_scores_parsed_documents():
    ground_truth = {
        "num_images": 1,
        "points": [{"name": "image_0", "point": [5, 5, 2], "probability": 1.0}],
    }
    predictions = {"points": [{"name": "image_0", "point": [6, 5, 2], "probability": 0.5}]}
    assert score_documents(predictions, ground_truth).aggregates["F1/TC"] == 1.0
    predictions["points"].append({"name": "image_1", "point": [6, 5, 2], "probability": 0.5})
    with pytest.raises(InputError, match=r"^job 3: points\[1\]\.name: image_1 is outside"):
        score_documents(predictions, ground_truth, predictions_source="job 3")

"""The effect table's bootstrap: resampled images scored like the leaderboard scores them."""

import numpy as np
import pytest

from baseline_algorithm.reproduce import bootstrap_mf1, effect_rows, markdown_table
from evaluation import PointSet, score
from evaluation.metrics import COUNT_KEYS


def random_images(rng, n_images, n_points=30, jitter=25):
    truth_rows, prediction_rows = [], []
    for image in range(n_images):
        for _ in range(n_points):
            x, y, label = rng.integers(30, 230), rng.integers(30, 230), rng.integers(1, 3)
            truth_rows.append((image, x, y, label))
            if rng.random() < 0.8:
                dx, dy = rng.integers(-jitter, jitter + 1, size=2)
                flipped = 3 - label if rng.random() < 0.2 else label
                prediction_rows.append((image, x + dx, y + dy, flipped, rng.random()))
    truth = np.array(truth_rows)
    predictions = np.array(prediction_rows)
    return (
        PointSet.from_arrays(predictions[:, 0].astype(int), predictions[:, 1:3].astype(int),
                             predictions[:, 3].astype(int), predictions[:, 4]),
        PointSet.from_arrays(truth[:, 0], truth[:, 1:3], truth[:, 3], np.ones(len(truth))),
    )


def select_images(points, images):
    """Points of the listed images (repeats allowed), renumbered 0..len(images)-1."""
    parts = [np.flatnonzero(points.image == image) for image in images]
    rows = np.concatenate(parts)
    new_index = np.concatenate([np.full(len(part), k) for k, part in enumerate(parts)])
    return PointSet.from_arrays(new_index, points.xy[rows], points.label[rows], points.probability[rows])


def test_bootstrap_resamples_score_like_the_scorer_on_the_resampled_images():
    rng = np.random.default_rng(0)
    predictions, truth = random_images(rng, 6)
    report = score(predictions, truth, 6)
    counts = {key: np.array([image[key] for image in report.results]) for key in COUNT_KEYS}
    resamples = np.array([[0, 1, 2, 3, 4, 5], [0, 0, 2, 5, 5, 5], [3, 1, 1, 4, 2, 2]])
    boot = bootstrap_mf1(counts, resamples)
    assert boot[0] == report.aggregates["mF1"]
    for row, images in zip(boot[1:], resamples[1:]):
        expected = score(select_images(predictions, images), select_images(truth, images), len(images))
        assert row == pytest.approx(expected.aggregates["mF1"], abs=1e-12)


def test_effect_rows_give_gains_over_cell_only_with_paired_intervals():
    rng = np.random.default_rng(1)
    results = {}
    for variant, jitter in (("cell-only", 25), ("pred-to-inter-2", 10), ("tissue-label-leaking", 3)):
        predictions, truth = random_images(np.random.default_rng(7), 8, jitter=jitter)
        report = score(predictions, truth, 8)
        counts = {key: np.array([image[key] for image in report.results]) for key in COUNT_KEYS}
        results[variant] = {"aggregates": report.aggregates, "counts": counts}
    rows = effect_rows(results, resample_count=300, seed=rng.integers(1000))
    by_variant = {row["variant"]: row for row in rows}
    assert "gain" not in by_variant["cell-only"]
    for variant in ("pred-to-inter-2", "tissue-label-leaking"):
        row = by_variant[variant]
        assert row["gain"] == pytest.approx(row["mF1"] - by_variant["cell-only"]["mF1"])
        assert row["gain_ci"][0] <= row["gain"] <= row["gain_ci"][1]
        assert row["mF1_ci"][0] <= row["mF1"] <= row["mF1_ci"][1]
    table = markdown_table(rows, 8, 300)
    assert table.count("\n| ") == 3 and "pred-to-inter-2" in table

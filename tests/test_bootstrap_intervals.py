"""Bootstrap intervals over images: seeded, sensible in cases whose answer is known."""

import numpy as np
import pytest

from evaluation import class_metrics
from evaluation.bootstrap import (
    STATISTICS,
    bootstrap_f1,
    bootstrap_f1_by_group,
    paired_replicates,
    percentile_interval,
)
from evaluation.metrics import COUNT_KEYS


def random_counts(num_images, seed=0):
    rng = np.random.default_rng(seed)
    return {key: rng.integers(0, 30, num_images) for key in COUNT_KEYS}


def test_same_seed_same_intervals_other_seed_other_intervals():
    counts = random_counts(40)
    first = bootstrap_f1(counts, seed=7)
    assert bootstrap_f1(counts, seed=7) == first
    assert bootstrap_f1(counts, seed=8) != first


def test_identical_images_give_a_degenerate_interval_at_the_estimate():
    counts = {key: np.full(25, value) for key, value in zip(COUNT_KEYS, [8, 2, 3, 5, 5, 1])}
    result = bootstrap_f1(counts, replicates=200)
    for key in STATISTICS:
        assert result[key]["low"] == pytest.approx(result[key]["estimate"], abs=1e-12)
        assert result[key]["high"] == pytest.approx(result[key]["estimate"], abs=1e-12)
    # The estimate is the leaderboard's F1 before rounding.
    assert round(result["F1/BC"]["estimate"], 4) == class_metrics(8 * 25, 2 * 25, 3 * 25)[2]


def test_interval_contains_the_estimate_and_narrows_with_more_images():
    widths = []
    for num_images in (20, 500):
        result = bootstrap_f1(random_counts(num_images, seed=1), replicates=500)
        for key in STATISTICS:
            assert result[key]["low"] <= result[key]["estimate"] <= result[key]["high"]
        widths.append(result["mF1"]["high"] - result["mF1"]["low"])
    assert widths[1] < widths[0] / 2


def test_mf1_is_the_mean_of_the_class_f1_in_every_replicate_bound():
    # With BC perfect in every image, BC's interval is [1, 1] and mF1's is TC's shifted and halved.
    counts = random_counts(30, seed=2)
    counts.update(
        {"TP/BC": np.full(30, 10), "FP/BC": np.zeros(30, int), "FN/BC": np.zeros(30, int)}
    )
    result = bootstrap_f1(counts, replicates=300)
    assert result["F1/BC"]["low"] == result["F1/BC"]["high"] == pytest.approx(1.0, abs=1e-6)
    for bound in ("low", "high", "estimate"):
        assert result["mF1"][bound] == pytest.approx(
            (result["F1/BC"][bound] + result["F1/TC"][bound]) / 2, abs=1e-12
        )


def test_coverage_of_a_known_f1_is_near_nominal():
    # Images drawn from one population whose F1 is known: the 95% interval should cover the
    # population F1 in about 95% of repeated test sets (loosely: 85%..100% of 60 trials).
    rng = np.random.default_rng(5)
    hits = 0
    trials = 60
    for trial in range(trials):
        detected = rng.binomial(20, 0.7, size=80)  # recall 0.7 per GT point
        spurious = rng.poisson(3.0, size=80)  # 3 FP per image
        counts = {
            "TP/BC": detected,
            "FP/BC": spurious,
            "FN/BC": 20 - detected,
            "TP/TC": detected,
            "FP/TC": spurious,
            "FN/TC": 20 - detected,
        }
        interval = bootstrap_f1(counts, replicates=400, seed=trial)["F1/BC"]
        precision, recall = 14 / 17, 0.7
        population_f1 = 2 * precision * recall / (precision + recall)
        hits += interval["low"] <= population_f1 <= interval["high"]
    assert hits / trials >= 0.85


def test_groups_are_bootstrapped_separately_and_reproducibly():
    counts = random_counts(30, seed=3)
    organs = ["kidney"] * 10 + ["bladder"] * 20
    result = bootstrap_f1_by_group(counts, organs, replicates=100, seed=4)
    assert list(result) == ["bladder", "kidney"]
    assert result["kidney"]["images"] == 10 and result["bladder"]["images"] == 20
    assert bootstrap_f1_by_group(counts, organs, replicates=100, seed=4) == result
    kidney_only = {key: values[:10] for key, values in counts.items()}
    assert result["kidney"]["F1/TC"]["estimate"] == bootstrap_f1(kidney_only)["F1/TC"]["estimate"]


def test_no_images_and_bad_settings():
    empty = bootstrap_f1({key: np.zeros(0, int) for key in COUNT_KEYS})
    assert empty["mF1"] == {"estimate": None, "low": None, "high": None}
    with pytest.raises(ValueError, match="replicates"):
        bootstrap_f1(random_counts(3), replicates=0)
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_f1(random_counts(3), confidence=1.0)
    with pytest.raises(ValueError, match="groups"):
        bootstrap_f1_by_group(random_counts(3), ["a", "b"])


def test_paired_replicates_resample_the_same_images_for_every_run():
    first, second = random_counts(25, seed=6), random_counts(25, seed=7)
    replicates = paired_replicates({"first": first, "second": second}, replicates=200, seed=9)
    assert replicates["first"].shape == replicates["second"].shape == (200, len(STATISTICS))
    # A run compared with itself differs by exactly zero on every resample.
    again = paired_replicates({"a": first, "b": dict(first)}, replicates=200, seed=9)
    np.testing.assert_array_equal(again["a"], again["b"])
    # One run alone gives bootstrap_f1's interval: the same resamples for the same seed.
    alone = paired_replicates({"first": first}, replicates=200, seed=9)["first"]
    np.testing.assert_array_equal(alone, replicates["first"])
    low, high = percentile_interval(alone, 0.95)
    result = bootstrap_f1(first, replicates=200, seed=9)
    for column, key in enumerate(STATISTICS):
        assert (result[key]["low"], result[key]["high"]) == (low[column], high[column])


def test_paired_replicates_need_the_same_images():
    with pytest.raises(ValueError, match="same images"):
        paired_replicates({"a": random_counts(5), "b": random_counts(6)})
